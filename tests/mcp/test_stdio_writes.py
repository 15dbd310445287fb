"""The stdio transport's writes: each request goes to the child's stdin from the task
that sends it, so concurrent requests must reach the server as whole lines, and a child
that stops reading must fail the calls at once instead of leaving them waiting."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from loom import ActionCall, ActionStatus

from .conftest import python_server, wait_for


def rogue(**extra):
    return {"name": "rogue", "protocol": "legacy", **python_server("rogue"), **extra}


@pytest.mark.mcp
async def test_concurrent_calls_larger_than_the_pipe_arrive_whole(broker, manager, everything_bin):
    await manager.add_server(
        {"name": "everything", "command": str(everything_bin), "args": ["stdio"]}
    )
    # 100 kB each, more than a pipe holds: the writes queue in the transport, interleaved
    # with the senders' steps, and must still reach the server one whole line each.
    messages = [f"{i:03d}" + chr(ord("a") + i % 26) * 100_000 for i in range(24)]
    calls = [
        broker.invoke(ActionCall("everything:echo", json.dumps({"message": m}).encode()))
        for m in messages
    ]
    results = await asyncio.gather(*calls)
    for message, result in zip(messages, results, strict=True):
        assert result.status is ActionStatus.OK, result.error
        assert json.loads(result.output)["text"] == f"Echo: {message}"


async def test_a_child_that_stops_reading_fails_calls_at_once(broker, manager):
    session = await manager.add_server(rogue(backoff_initial_s=0.2))
    pid = session.pid
    assert pid is not None
    deaf = asyncio.create_task(broker.invoke(ActionCall("rogue:deaf", b"{}", timeout_ms=30_000)))
    await wait_for(lambda: not os.path.exists(f"/proc/{pid}/fd/0"), what="stdin closed")
    # Both within their 30 s timeout: the failed write ends the connection's reads.
    after = await broker.invoke(ActionCall("rogue:ok", b"{}", timeout_ms=30_000))
    assert (after.status, after.error.code) == (ActionStatus.RETRYABLE, "PROVIDER_UNAVAILABLE")
    stuck = await asyncio.wait_for(deaf, 10)
    assert (stuck.status, stuck.error.code) == (ActionStatus.RETRYABLE, "PROVIDER_UNAVAILABLE")
    await wait_for(lambda: session.connects == 2 and session.connected, what="the reconnection")
    assert (await broker.invoke(ActionCall("rogue:ok", b"{}"))).status is ActionStatus.OK
