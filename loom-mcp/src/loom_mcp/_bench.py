"""``loom bench`` scenarios of loom-mcp: MCP tool calls, bare SDK and through the broker.

All three call the ``echo`` tool of the same server with the same message, one call at a
time: server-everything's when ``scripts/mcp-peers.sh`` installed it, else the Python
echo server shipped here (:mod:`loom_mcp._echo_server`). ``LOOM_MCP_BENCH_SERVER=python``
or ``=everything`` picks one.

- ``baseline.mcp_sdk``: the SDK's ``Client.call_tool`` over its own stdio transport
  (``stdio_p50_us``, ``stdio_p99_us``) and over streamable HTTP (``http_p50_us``,
  ``http_p99_us``).
- ``mcp.stdio_call`` / ``mcp.http_call``: ``ActionBroker.invoke`` of the capability
  ``bench:echo`` that :class:`~loom_mcp.McpSessionManager` registered (``p50_us``,
  ``p99_us``): the broker, the provider, our transport and result mapping on top. The
  same scenario also times the bare SDK client against a second copy of the server, in
  alternating batches of ``_BATCH`` calls, so both paths see the same machine state:
  ``sdk_p50_us`` and ``overhead_pct`` (the broker's p50 over the SDK's, minus 1).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loom._action import ActionCall, ActionStatus
from loom.bench import Figure, percentile
from loom_mcp._peers import find_peer

if TYPE_CHECKING:
    from mcp import StdioServerParameters

__all__ = ["http_call", "sdk_baseline", "stdio_call"]

SERVER_ENV = "LOOM_MCP_BENCH_SERVER"
_MESSAGE = "hello from loom bench"
_ARGUMENTS = {"message": _MESSAGE}
_PAYLOAD = b'{"message":"hello from loom bench"}'
_WARMUP = 20
_STDIO_CALLS = 2000
_HTTP_CALLS = 400
_START_TIMEOUT_S = 15.0
_BATCH = 50


@dataclass(frozen=True)
class _Target:
    """How to start the echo server over stdio, and over HTTP on a port."""

    name: str
    stdio: list[str]
    http: Callable[[int], tuple[list[str], dict[str, str]]]


def _target() -> _Target:
    choice = os.environ.get(SERVER_ENV, "")
    everything = find_peer("mcp-server-everything")
    if choice == "everything" and everything is None:
        raise RuntimeError(
            f"{SERVER_ENV}=everything, but server-everything is not installed "
            "(run scripts/mcp-peers.sh)"
        )
    if everything is not None and choice != "python":
        exe = str(everything)
        return _Target(
            "server-everything",
            [exe, "stdio"],
            lambda port: ([exe, "streamableHttp"], {"PORT": str(port)}),
        )
    module = [sys.executable, "-m", "loom_mcp._echo_server"]
    return _Target("python", module, lambda port: ([*module, "--http", str(port)], {}))


async def _timed(
    calls: int, call: Callable[[], Awaitable[None]], *, warmup: int = _WARMUP
) -> list[float]:
    for _ in range(warmup):
        await call()
    clock = time.perf_counter_ns
    latencies: list[float] = []
    for _ in range(calls):
        start = clock()
        await call()
        latencies.append((clock() - start) / 1000)
    return latencies


def _figures(prefix: str, latencies: list[float]) -> list[Figure]:
    return [
        Figure(f"{prefix}p50_us", percentile(latencies, 0.50), "us"),
        Figure(f"{prefix}p99_us", percentile(latencies, 0.99), "us"),
    ]


@asynccontextmanager
async def _http_server(target: _Target) -> AsyncIterator[str]:
    """Starts the target over streamable HTTP on a free port; yields its URL."""
    port = _free_port()
    argv, env = target.http(port)
    process = subprocess.Popen(
        argv,
        env=os.environ | env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _listening(port):
            if process.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with status {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not listen on port {port}")
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 5)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _sdk_calls(server: str | StdioServerParameters, calls: int) -> list[float]:
    from mcp import Client
    from mcp.client.stdio import stdio_client

    with open(os.devnull, "w") as devnull:
        target: Any = server
        if not isinstance(server, str):
            # The SDK's own stdio transport, its child's stderr out of the way.
            target = stdio_client(server, errlog=devnull)
        async with Client(target, cache=None) as client:

            async def call() -> None:
                result = await client.call_tool("echo", _ARGUMENTS)
                if result.is_error:
                    raise RuntimeError(f"echo failed: {result.content}")

            return sorted(await _timed(calls, call))


async def sdk_baseline(scale: float) -> list[Figure]:
    """One run of ``baseline.mcp_sdk`` (about 1 s over stdio plus 2 s over HTTP at 1.0)."""
    from mcp import StdioServerParameters

    target = _target()
    params = StdioServerParameters(command=target.stdio[0], args=target.stdio[1:])
    stdio = await _sdk_calls(params, max(20, int(_STDIO_CALLS * scale)))
    async with _http_server(target) as url:
        http = await _sdk_calls(url, max(10, int(_HTTP_CALLS * scale)))
    return _figures("stdio_", stdio) + _figures("http_", http)


async def _interleaved(
    server: Mapping[str, object], sdk_target: Any, calls: int
) -> tuple[list[float], list[float]]:
    """Broker and bare SDK latencies, measured in alternating batches."""
    from mcp import Client

    from loom.actions import ActionBroker
    from loom_mcp._manager import McpSessionManager

    async with (
        ActionBroker() as broker,
        McpSessionManager(broker) as manager,
        Client(sdk_target, cache=None) as client,
    ):
        await manager.add_server({"name": "bench", **server})

        async def via_broker() -> None:
            result = await broker.invoke(ActionCall("bench:echo", _PAYLOAD))
            if result.status is not ActionStatus.OK:
                raise RuntimeError(f"bench:echo failed: {result.error}")

        async def via_sdk() -> None:
            result = await client.call_tool("echo", _ARGUMENTS)
            if result.is_error:
                raise RuntimeError(f"echo failed: {result.content}")

        broker_times: list[float] = []
        sdk_times: list[float] = []
        for start in range(0, calls, _BATCH):
            batch = min(_BATCH, calls - start)
            # Alternate which goes first, so neither always follows the other's batch.
            order = [(via_broker, broker_times), (via_sdk, sdk_times)]
            if (start // _BATCH) % 2:
                order.reverse()
            for call, times in order:
                times.extend(await _timed(batch, call, warmup=_WARMUP if start == 0 else 0))
        broker_times.sort()
        sdk_times.sort()
        return broker_times, sdk_times


def _compared(broker_times: list[float], sdk_times: list[float]) -> list[Figure]:
    broker_p50 = percentile(broker_times, 0.50)
    sdk_p50 = percentile(sdk_times, 0.50)
    return [
        *_figures("", broker_times),
        Figure("sdk_p50_us", sdk_p50, "us"),
        Figure("overhead_pct", (broker_p50 / sdk_p50 - 1) * 100 if sdk_p50 else 0.0, "%"),
    ]


async def stdio_call(scale: float) -> list[Figure]:
    """One run of ``mcp.stdio_call`` (broker and bare SDK interleaved)."""
    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    target = _target()
    server = {"command": target.stdio[0], "args": target.stdio[1:]}
    params = StdioServerParameters(command=target.stdio[0], args=target.stdio[1:])
    with open(os.devnull, "w") as devnull:
        sdk = stdio_client(params, errlog=devnull)
        calls = max(20, int(_STDIO_CALLS * scale))
        return _compared(*await _interleaved(server, sdk, calls))


async def http_call(scale: float) -> list[Figure]:
    """One run of ``mcp.http_call`` (broker and bare SDK interleaved)."""
    target = _target()
    async with _http_server(target) as url:
        calls = max(10, int(_HTTP_CALLS * scale))
        return _compared(*await _interleaved({"url": url}, url, calls))
