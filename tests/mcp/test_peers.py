"""server-filesystem (npm, roots honoured), mcp-server-time (PyPI, the 2026-07-28 era) and
server-everything over streamable HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

from loom import ActionCall, ActionStatus

from .conftest import wait_for

pytestmark = pytest.mark.mcp


async def invoke(broker, capability, arguments):
    return await broker.invoke(ActionCall(capability, json.dumps(arguments).encode()))


async def test_filesystem_honours_roots_and_denies_paths_outside(
    broker, manager, filesystem_bin, tmp_path
):
    allowed, started_with, outside = (tmp_path / n for n in ("allowed", "argv", "outside"))
    for folder in (allowed, started_with, outside):
        folder.mkdir()
    (allowed / "note.txt").write_text("inside the root\n")
    (outside / "secret.txt").write_text("not for the server\n")
    await manager.add_server(
        {
            "name": "fs",
            "command": str(filesystem_bin),
            "args": [str(started_with.resolve())],
            "roots": [str(allowed)],
        }
    )
    assert "fs:read_text_file" in {d.name for d in broker.list_capabilities()}

    async def allowed_now():
        result = await invoke(broker, "fs:list_allowed_directories", {})
        return json.loads(result.output)["text"]

    deadline = time.monotonic() + 10
    while str(allowed.resolve()) not in (listing := await allowed_now()):
        assert time.monotonic() < deadline, listing
    assert str(started_with.resolve()) not in listing  # the roots replaced the argv directory

    inside = await invoke(broker, "fs:read_text_file", {"path": str(allowed / "note.txt")})
    assert json.loads(inside.output)["text"] == "inside the root\n"

    denied = await invoke(broker, "fs:read_text_file", {"path": str(outside / "secret.txt")})
    assert (denied.status, denied.error.code) == (ActionStatus.ERROR, "CAPABILITY_ERROR")
    assert denied.error.details == {
        "mcp_error": "TOOL_ERROR",
        "server": "fs",
        "tool": "read_text_file",
    }
    assert "Access denied" in denied.error.message


async def test_time_server_on_the_newest_protocol(broker, manager, time_bin):
    await manager.add_server({"name": "time", "command": str(time_bin)})
    [status] = manager.servers()
    assert status.protocol_version == "2026-07-28"
    assert {d.name for d in broker.list_capabilities()} == {
        "time:get_current_time",
        "time:convert_time",
    }
    now = await invoke(broker, "time:get_current_time", {"timezone": "Asia/Tokyo"})
    structured = json.loads(now.output)["structured"]
    assert structured["timezone"] == "Asia/Tokyo" and structured["datetime"].endswith("+09:00")
    converted = await invoke(
        broker,
        "time:convert_time",
        {"source_timezone": "Etc/UTC", "time": "12:00", "target_timezone": "Asia/Kolkata"},
    )
    assert json.loads(converted.output)["structured"]["target"]["datetime"].endswith(
        "17:30:00+05:30"
    )
    bad_zone = await invoke(broker, "time:get_current_time", {"timezone": "Nowhere/City"})
    assert bad_zone.error.code == "CAPABILITY_ERROR"
    assert "Invalid timezone" in bad_zone.error.message


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_everything(everything_bin, mode):
    """Start server-everything in ``mode`` on a free port; yields (port, processes, start)."""
    port = free_port()
    processes = []

    def start():
        process = subprocess.Popen(
            [str(everything_bin), mode],
            env=os.environ | {"PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        deadline = time.monotonic() + 15
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return process
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)

    start()
    try:
        yield port, processes, start
    finally:
        for process in processes:
            process.kill()
            process.wait()


@pytest.fixture
def everything_http(everything_bin):
    """server-everything over streamable HTTP; yields (url, processes, start)."""
    for port, processes, start in serve_everything(everything_bin, "streamableHttp"):
        yield f"http://127.0.0.1:{port}/mcp", processes, start


@pytest.fixture
def everything_sse(everything_bin):
    """server-everything over the legacy SSE transport; yields its SSE endpoint."""
    for port, _, _ in serve_everything(everything_bin, "sse"):
        yield f"http://127.0.0.1:{port}/sse"


async def test_streamable_http_calls_and_reconnects(broker, manager, everything_http):
    url, processes, start = everything_http
    session = await manager.add_server(
        {"name": "remote", "url": url, "backoff_initial_s": 0.1, "backoff_max_s": 0.5}
    )
    assert manager.servers()[0].transport == "http"
    echo = await invoke(broker, "remote:echo", {"message": "over http"})
    assert json.loads(echo.output)["text"] == "Echo: over http"
    weather = await invoke(broker, "remote:get-structured-content", {"location": "New York"})
    assert "temperature" in json.loads(weather.output)["structured"]

    processes[-1].kill()
    processes[-1].wait()
    down = await invoke(broker, "remote:echo", {"message": "anyone?"})
    assert (down.status, down.error.code) == (ActionStatus.RETRYABLE, "PROVIDER_UNAVAILABLE")
    await wait_for(lambda: session.state == "reconnecting", what="reconnecting")

    start()
    await wait_for(lambda: session.connected, timeout=15, what="the reconnection")
    assert session.connects == 2
    back = await invoke(broker, "remote:echo", {"message": "back"})
    assert json.loads(back.output)["text"] == "Echo: back"


async def test_the_legacy_sse_transport(broker, manager, everything_sse):
    await manager.add_server({"name": "old", "url": everything_sse, "transport": "sse"})
    assert manager.servers()[0].transport == "sse"
    echo = await invoke(broker, "old:echo", {"message": "over sse"})
    assert json.loads(echo.output)["text"] == "Echo: over sse"
    total = await invoke(broker, "old:get-sum", {"a": 1.5, "b": 2})
    assert "3.5" in json.loads(total.output)["text"]
