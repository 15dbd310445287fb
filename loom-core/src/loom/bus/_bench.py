"""``loom bench`` scenarios of the event bus (registered by ``loom._builtins``).

Each is one run at a size multiplied by ``scale`` and returns :class:`~loom.bench.Figure`
records. The throughput scenarios mirror ``baseline.asyncio_queue`` item for item: the
same counts, each event built in the producer loop by :func:`~loom.bench.bench_event`
(64-byte payload, 4 metadata keys), one reader per subscription.
"""

from __future__ import annotations

import asyncio
import time

from loom._action import QoS
from loom.bench import Figure, bench_event, percentile
from loom.bus._memory import MemoryBus
from loom.bus._subscription import Subscription

__all__ = ["fanout10", "mixed_qos_latency", "publish_1sub", "realtime_overload"]

_TOPIC = "bench.bus.tick"


def _count(full: int, scale: float, minimum: int = 100) -> int:
    return max(minimum, int(full * scale))


async def _read(sub: Subscription, n: int) -> None:
    got = 0
    async for _ in sub:
        got += 1
        if got == n:
            return


async def _throughput(n: int, readers: int) -> float:
    """Deliveries per second from one publisher to ``readers`` Batched subscribers."""
    async with MemoryBus() as bus:
        subs = [await bus.subscribe(_TOPIC, qos=QoS.BATCHED) for _ in range(readers)]
        tasks = [asyncio.create_task(_read(sub, n)) for sub in subs]
        await asyncio.sleep(0)
        publish = bus.publish
        start = time.perf_counter()
        for i in range(n):
            await publish(_TOPIC, bench_event(i))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return readers * n / elapsed


async def publish_1sub(scale: float) -> list[Figure]:
    """One publisher, one Batched subscriber that reads: events per second."""
    n = _count(300_000, scale)  # the baseline's 1->1 count
    return [Figure("throughput", await _throughput(n, 1), "events/s")]


async def fanout10(scale: float) -> list[Figure]:
    """One publisher, ten Batched subscribers on the topic that read: deliveries per second."""
    n = _count(100_000, scale)  # the baseline's fan-out count
    return [Figure("throughput", await _throughput(n, 10), "deliveries/s")]


async def realtime_overload(scale: float) -> list[Figure]:
    """A Realtime publisher ten times faster than its reader: the publisher's rate (it never
    waits), the drops counted, the deliveries read."""
    n = _count(1_000_000, scale, minimum=1000)
    async with MemoryBus() as bus:
        sub = await bus.subscribe(_TOPIC, qos=QoS.REALTIME)
        received = 0
        done = False

        async def slow_reader() -> None:
            nonlocal received
            while not done or sub.qsize():
                try:
                    sub.get_nowait()
                    received += 1
                except asyncio.QueueEmpty:
                    pass
                await asyncio.sleep(0)  # one event per turn of the loop

        reader = asyncio.create_task(slow_reader())
        publish = bus.publish
        start = time.perf_counter()
        for i in range(n):
            await publish(_TOPIC, bench_event(i))
            if i % 10 == 9:
                await asyncio.sleep(0)  # let the reader run: it takes one per ten published
        elapsed = time.perf_counter() - start
        done = True
        await reader
        stats = bus.stats(_TOPIC)
    assert stats is not None
    return [
        Figure("publisher_rate", n / elapsed, "events/s"),
        Figure("dropped", float(stats.dropped), "count"),
        Figure("delivered", float(received), "count"),
    ]


async def mixed_qos_latency(scale: float) -> list[Figure]:
    """Publish at 10,000 events/s to a Realtime, a Batched and a Background subscriber
    (each reading) for about ``scale`` seconds: publish-to-receive latency percentiles."""
    rate = 10_000
    n = _count(rate, scale)
    latencies: dict[QoS, list[float]] = {qos: [] for qos in QoS}  # µs

    async def reader(sub: Subscription, sink: list[float]) -> None:
        clock = time.perf_counter_ns
        async for _, event in sub:  # until the bus shuts down
            sink.append((clock() - int(event.metadata["t_ns"])) / 1000)

    async with MemoryBus() as bus:
        tasks = [
            asyncio.create_task(reader(await bus.subscribe("mixed.>", qos=qos), sink))
            for qos, sink in latencies.items()
        ]
        clock = time.perf_counter_ns
        interval = 1_000_000_000 // rate
        start = clock()
        for i in range(n):
            due = start + i * interval
            await asyncio.sleep(0)  # the readers' turn
            while clock() < due:
                await asyncio.sleep(0)  # paced: spin on the loop until the event is due
            event = bench_event(i)
            event.metadata["t_ns"] = str(clock())
            await bus.publish("mixed.tick", event)
    await asyncio.gather(*tasks)
    everything = sorted(x for sink in latencies.values() for x in sink)
    figures = [
        Figure("p50_us", percentile(everything, 0.50), "us"),
        Figure("p99_us", percentile(everything, 0.99), "us"),
    ]
    for qos, sink in latencies.items():
        figures.append(Figure(f"p99_us_{qos.name.lower()}", percentile(sorted(sink), 0.99), "us"))
    return figures
