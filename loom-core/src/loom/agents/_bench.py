"""``agent.pipeline``: publish -> agent mailbox -> handler, end to end."""

from __future__ import annotations

import asyncio
import time

from loom._event import Event
from loom.agents._context import Context
from loom.agents._runtime import AgentRuntime
from loom.bench import Figure
from loom.bus import MemoryBus

__all__ = ["pipeline"]

_PAYLOAD = b"x" * 64


async def pipeline(scale: float) -> list[Figure]:
    """One publisher, one agent whose handler counts events; events/s through the handler.

    Events are built in the publisher loop like the baseline's (64-byte payload, 4 metadata
    keys), and every one goes through the runtime's envelope step.
    """
    count = max(1_000, int(300_000 * scale))
    bus = MemoryBus()
    await bus.start()
    runtime = AgentRuntime(bus)
    done = asyncio.Event()
    seen = 0

    async def handler(ctx: Context, event: Event) -> None:
        nonlocal seen
        seen += 1
        if seen == count:
            done.set()

    await runtime.spawn("sink", handler, topics=["bench.pipeline"])
    started = time.perf_counter()
    for i in range(count):
        await bus.publish(
            "bench.pipeline",
            Event(
                "bench.item",
                _PAYLOAD,
                metadata={"k1": "v", "k2": "v", "k3": "v", "seq": str(i)},
            ),
        )
    await done.wait()
    elapsed = time.perf_counter() - started
    await runtime.shutdown()
    await bus.shutdown()
    return [Figure("throughput", count / elapsed, "events/s")]
