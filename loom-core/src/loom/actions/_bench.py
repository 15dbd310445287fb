"""``broker.invoke_native`` and its floor ``baseline.python_call``.

Both time the same trivial async function, :func:`echo`, one call after another: once
awaited directly, once invoked through an :class:`~loom.actions.ActionBroker` as a native
capability (envelope headers, idempotency bookkeeping, lookup, circuit breaker, timeout,
concurrency slot, pydantic validation of the JSON input and JSON encoding of the output).
"""

from __future__ import annotations

import time

from loom._action import ActionCall, ActionStatus
from loom.actions._broker import ActionBroker
from loom.actions._capability import capability
from loom.actions._native import NativeProvider
from loom.bench import Figure, percentile

__all__ = ["broker_invoke_native", "echo", "python_call"]

_PAYLOAD = b'{"text":"hello"}'


@capability("bench.echo", description="Return the text")
async def echo(text: str) -> str:
    """Return ``text``: the work both scenarios time."""
    return text


def _figures(latencies_ns: list[int], elapsed_s: float) -> list[Figure]:
    latencies = sorted(n / 1000 for n in latencies_ns)
    return [
        Figure("p50_us", percentile(latencies, 0.50), "us"),
        Figure("p99_us", percentile(latencies, 0.99), "us"),
        Figure("throughput", len(latencies) / elapsed_s, "calls/s"),
    ]


async def python_call(scale: float) -> list[Figure]:
    """``await echo(text="hello")`` directly, 20,000 times at scale 1.0.

    Returns:
        ``p50_us``, ``p99_us`` (µs per call) and ``throughput`` (calls/s).
    """
    n = max(100, int(20_000 * scale))
    clock = time.perf_counter_ns
    latencies: list[int] = []
    append = latencies.append
    started = time.perf_counter()
    for _ in range(n):
        start = clock()
        await echo(text="hello")
        append(clock() - start)
    return _figures(latencies, time.perf_counter() - started)


async def broker_invoke_native(scale: float) -> list[Figure]:
    """``await broker.invoke(ActionCall("bench.echo", ...))``, 20,000 times at scale 1.0.

    Each call is a new :class:`~loom.ActionCall` (new id, empty headers) built outside
    the timed part.

    Returns:
        ``p50_us``, ``p99_us`` (µs per call) and ``throughput`` (calls/s).
    """
    n = max(100, int(20_000 * scale))
    broker = ActionBroker()
    broker.register(NativeProvider(echo))
    invoke = broker.invoke
    clock = time.perf_counter_ns
    latencies: list[int] = []
    append = latencies.append
    started = time.perf_counter()
    for _ in range(n):
        call = ActionCall("bench.echo", _PAYLOAD)
        start = clock()
        result = await invoke(call)
        append(clock() - start)
        if result.status is not ActionStatus.OK:
            raise AssertionError(f"bench.echo failed: {result.error}")
    elapsed = time.perf_counter() - started
    await broker.aclose()
    return _figures(latencies, elapsed)
