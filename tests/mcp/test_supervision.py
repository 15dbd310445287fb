"""Supervision: crashes, reconnection with backoff, timeouts, cancellation, misbehaving
servers and clean shutdown. Each server is a real process; the rogue one is a hand-written
JSON-RPC server that breaks the rules on purpose (tests/mcp/servers/rogue.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest

from loom import ActionCall, ActionStatus
from loom.bus import QoS
from loom_mcp import McpConnectError, McpSessionManager, ServerState

from .conftest import child_pids, python_server, reaped, wait_for


def rogue(*args, **extra):
    return {"name": "rogue", "protocol": "legacy", **python_server("rogue", *args), **extra}


async def call(broker, capability, arguments=None, **kwargs):
    payload = json.dumps(arguments or {}).encode()
    return await broker.invoke(ActionCall(capability, payload, **kwargs))


@pytest.mark.mcp
async def test_a_crashed_server_answers_unavailable_then_comes_back(broker, bus, everything_bin):
    statuses = await bus.subscribe("mcp.everything.status")
    async with McpSessionManager(broker, bus=bus) as manager:
        session = await manager.add_server(
            {
                "name": "everything",
                "command": str(everything_bin),
                "args": ["stdio"],
                "backoff_initial_s": 1.0,
            }
        )
        first_pid = session.pid
        assert (await call(broker, "everything:echo", {"message": "a"})).status is ActionStatus.OK

        os.kill(first_pid, signal.SIGKILL)
        # Enough failures to open the broker's circuit (5 in a row by default).
        failures = [await call(broker, "everything:echo", {"message": "b"}) for _ in range(6)]
        assert {r.error.code for r in failures} == {"PROVIDER_UNAVAILABLE"}
        assert failures[0].status is ActionStatus.RETRYABLE
        assert failures[-1].error.details["reason"] == "circuit_open"
        await wait_for(lambda: session.state is ServerState.RECONNECTING, what="reconnecting")
        assert "killed by SIGKILL" in manager.servers()[0].last_error
        await wait_for(lambda: reaped(first_pid), what="the dead child reaped")

        await wait_for(lambda: session.connected, timeout=15, what="the reconnection")
        assert session.connects == 2 and session.pid != first_pid
        back = await call(broker, "everything:echo", {"message": "c"})
        assert back.status is ActionStatus.OK, back.error
        assert json.loads(back.output)["text"] == "Echo: c"

    states = []
    while len(states) < 4:
        _, event = await asyncio.wait_for(statuses.get(), 5)
        states.append(json.loads(event.payload)["state"])
    assert states == ["connected", "reconnecting", "connected", "stopped"]


@pytest.mark.mcp
async def test_servers_are_isolated_from_each_others_failures(broker, manager, everything_bin):
    everything = await manager.add_server(
        {
            "name": "everything",
            "command": str(everything_bin),
            "args": ["stdio"],
            "backoff_initial_s": 5.0,
        }
    )
    await manager.add_server({"name": "dyn", "protocol": "legacy", **python_server("dynamic")})
    os.kill(everything.pid, signal.SIGKILL)
    await wait_for(lambda: not everything.connected, what="the crash noticed")
    down = await call(broker, "everything:echo", {"message": "x"})
    assert down.error.code == "PROVIDER_UNAVAILABLE"
    fine = await call(broker, "dyn:add_tool", {"name": "t", "text": "still here"})
    assert fine.status is ActionStatus.OK
    assert {s.name: str(s.state) for s in manager.servers()} == {
        "dyn": "connected",
        "everything": "reconnecting",
    }


async def test_a_missing_command_is_a_clear_error(broker, manager):
    with pytest.raises(McpConnectError, match=r"'ghost': cannot start '/nonexistent/ghost'"):
        await manager.add_server({"name": "ghost", "command": "/nonexistent/ghost"})
    assert manager.servers() == [] and broker.list_capabilities() == []


async def test_a_server_that_never_answers_initialize_times_out(manager):
    before = child_pids()
    started = time.monotonic()
    with pytest.raises(McpConnectError, match=r"no answer to the handshake within 1.0s"):
        await manager.add_server(rogue("--silent", connect_timeout_s=1.0))
    assert time.monotonic() - started < 6
    assert manager.servers() == []
    await wait_for(lambda: child_pids() <= before, what="the silent server reaped")


async def test_a_call_past_its_timeout_is_cancelled_on_the_server(broker, manager, tmp_path):
    log = tmp_path / "cancelled.jsonl"
    await manager.add_server(rogue(env={"ROGUE_LOG": str(log)}))
    hung = await call(broker, "rogue:hang", timeout_ms=300)
    assert (hung.status, hung.error.code) == (ActionStatus.TIMEOUT, "TIMEOUT")
    # The server opens the file, then writes the line: wait for the whole line.
    await wait_for(
        lambda: log.exists() and log.read_text().endswith("\n"),
        what="the cancellation to reach the server",
    )
    [cancelled] = [json.loads(line) for line in log.read_text().splitlines()]
    assert "requestId" in cancelled
    # The server's own bound (call_timeout_s) works the same way without a caller timeout.
    await manager.remove_server("rogue")
    await manager.add_server(rogue(env={"ROGUE_LOG": str(log)}, call_timeout_s=0.3))
    bounded = await call(broker, "rogue:hang")
    assert bounded.error.code == "TIMEOUT"
    assert bounded.error.details["jsonrpc_code"] == "-32001"
    await wait_for(lambda: len(log.read_text().splitlines()) == 2, what="the second cancel")
    assert (await call(broker, "rogue:ok")).status is ActionStatus.OK


async def test_garbage_and_oversized_lines_on_stdout_are_skipped(broker, manager):
    session = await manager.add_server(rogue("--banner", max_line_bytes=65536))
    assert session.status().garbage_lines == 3  # a banner, an envelope without result, 200 KB
    ok = await call(broker, "rogue:ok")
    assert json.loads(ok.output)["text"] == "fine"


async def test_error_results_and_results_that_break_the_rules(broker, manager):
    await manager.add_server(rogue())
    failed = await call(broker, "rogue:fail")
    assert (failed.error.code, failed.error.message) == ("CAPABILITY_ERROR", "it broke")
    assert failed.error.details["mcp_error"] == "TOOL_ERROR"
    invalid = await call(broker, "rogue:bad_result")
    assert invalid.error.code == "CAPABILITY_ERROR"
    assert invalid.error.details["mcp_error"] == "PROTOCOL_ERROR"
    assert "content" in invalid.error.message
    off_schema = await call(broker, "rogue:bad_output")
    assert off_schema.error.details["mcp_error"] == "OUTPUT_SCHEMA_VIOLATION"
    assert "'many' is not of type 'integer'" in off_schema.error.message
    assert (await call(broker, "rogue:ok")).status is ActionStatus.OK


async def test_a_notification_flood_is_bounded_and_counted(broker, bus):
    # Nobody reads this subscription: once its queue is full the publisher waits, so the
    # manager's event buffer fills and drops the oldest.
    stuck = await bus.subscribe("mcp.rogue.resource_updated", qos=QoS.BATCHED)
    async with McpSessionManager(broker, bus=bus, event_buffer=8) as manager:
        await manager.add_server(rogue())
        flood = await call(broker, "rogue:flood", {"count": 3000})
        assert flood.status is ActionStatus.OK
        await wait_for(lambda: manager.dropped_events > 0, what="dropped events")
        started = time.monotonic()
        assert (await call(broker, "rogue:ok")).status is ActionStatus.OK
        assert time.monotonic() - started < 2
    assert stuck.qsize() <= 1024
    assert manager.dropped_events + stuck.qsize() <= 3000


async def test_a_crash_during_a_call_and_reconnection(broker, manager):
    session = await manager.add_server(rogue(backoff_initial_s=0.5))
    crashed = await call(broker, "rogue:crash")
    assert (crashed.status, crashed.error.code) == (ActionStatus.RETRYABLE, "PROVIDER_UNAVAILABLE")
    await wait_for(lambda: session.state is ServerState.RECONNECTING, what="reconnecting")
    assert "exited with status 3" in session.last_error
    await wait_for(lambda: session.connects == 2 and session.connected, what="the reconnection")
    assert (await call(broker, "rogue:ok")).status is ActionStatus.OK


async def test_without_reconnect_a_dead_server_stays_failed(broker, manager):
    session = await manager.add_server(rogue(reconnect=False))
    await call(broker, "rogue:crash")
    await wait_for(lambda: session.state is ServerState.FAILED, what="failed")
    later = await call(broker, "rogue:ok")
    assert later.error.code == "PROVIDER_UNAVAILABLE"
    assert "not connected (failed)" in later.error.message


@pytest.mark.mcp
async def test_shutdown_ends_every_child_and_unregisters(broker, everything_bin):
    manager = McpSessionManager(broker)
    a = await manager.add_server(
        {"name": "everything", "command": str(everything_bin), "args": ["stdio"]}
    )
    b = await manager.add_server({"name": "dyn", "protocol": "legacy", **python_server("dynamic")})
    pids = {a.pid, b.pid}
    assert pids <= child_pids()
    await manager.remove_server("dyn")
    assert not any(d.name.startswith("dyn:") for d in broker.list_capabilities())
    await manager.aclose()
    assert broker.list_capabilities() == []
    assert all(reaped(pid) for pid in pids), pids
    assert not (pids & child_pids())
    await manager.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await manager.add_server(rogue())


async def test_reconnect_on_demand(broker, manager):
    session = await manager.add_server(rogue(backoff_initial_s=0.1))
    first = session.pid
    await session.reconnect()
    await wait_for(lambda: session.connects == 2 and session.connected, what="the reconnection")
    assert session.pid != first
    assert (await call(broker, "rogue:ok")).status is ActionStatus.OK


async def test_removing_a_server_that_is_still_connecting_is_prompt(manager):
    before = child_pids()
    session = await manager.add_server(rogue("--silent", connect_timeout_s=60), wait=False)
    await wait_for(lambda: child_pids() - before, what="the child started")
    assert session.state is ServerState.STARTING
    started = time.monotonic()
    await manager.remove_server("rogue")
    assert time.monotonic() - started < 5
    assert session.state is ServerState.STOPPED
    await wait_for(lambda: child_pids() <= before, what="the child reaped")


async def test_a_caller_that_gives_up_cancels_the_call_on_the_server(broker, manager, tmp_path):
    log = tmp_path / "cancelled.jsonl"
    await manager.add_server(rogue(env={"ROGUE_LOG": str(log)}))
    waiting = asyncio.create_task(call(broker, "rogue:hang", timeout_ms=30_000))
    await asyncio.sleep(0.3)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # The server opens the file, then writes the line: wait for the whole line.
    await wait_for(
        lambda: log.exists() and log.read_text().endswith("\n"),
        what="the cancellation to reach the server",
    )
    [cancelled] = [json.loads(line) for line in log.read_text().splitlines()]
    assert "requestId" in cancelled
    assert (await call(broker, "rogue:ok")).status is ActionStatus.OK
