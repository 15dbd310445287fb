"""``baseline.asyncio_queue``: the floor every bus figure is judged against.

Raw ``asyncio.Queue(1024)`` objects doing what the bus scenarios do, with the same work per
item: each item is a fresh :class:`~loom.Event` built in the producer loop by
:func:`bench_event` (type ``bench.item``, a 64-byte payload, 4 metadata keys, one of them
the sequence number). A bus scenario that builds its events with :func:`bench_event` and is
sized with the same counts compares like with like.
"""

from __future__ import annotations

import asyncio
import time

from loom._event import Event
from loom.bench._figures import Figure

__all__ = [
    "BENCH_EVENT_TYPE",
    "BENCH_PAYLOAD",
    "asyncio_queue",
    "bench_event",
    "percentile",
]

#: The type of every event the bench scenarios publish.
BENCH_EVENT_TYPE = "bench.item"

#: The payload of every bench event: 64 bytes.
BENCH_PAYLOAD = bytes(range(64))

_QUEUE_SIZE = 1024
_FANOUT = 10


def bench_event(seq: int) -> Event:
    """The item of every bench scenario: what a producer builds per event.

    A new :class:`~loom.Event` of type ``bench.item`` with a 64-byte payload and 4 metadata
    keys (``sender``, ``thread_id``, ``kind`` and ``seq``, the last one ``str(seq)``).
    """
    return Event(
        BENCH_EVENT_TYPE,
        BENCH_PAYLOAD,
        source="bench",
        metadata={"sender": "bench", "thread_id": "bench", "kind": "item", "seq": str(seq)},
    )


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value at ``floor(n * fraction)`` of an ascending list (the upstream definition)."""
    index = min(len(sorted_values) - 1, int(len(sorted_values) * fraction))
    return sorted_values[index]


async def asyncio_queue(scale: float) -> list[Figure]:
    """One run of the baseline.

    At scale 1.0 (about 2 s here): 300,000 events 1->1, 100,000 events fanned out to 10
    queues (1,000,000 deliveries), 20,000 sequential request/reply round trips over two
    queues, and 20,000 round trips through a mailbox and a future (the floor of an agent's
    request/reply: ``collab.request_reply`` is judged against it).

    Args:
        scale: multiplies the event counts.

    Returns:
        ``1to1_throughput`` (events/s), ``fanout10_throughput`` (deliveries/s),
        ``reqreply_p50_us`` and ``reqreply_p99_us`` (µs per round trip), and
        ``mailbox_future_rtt_p50_us`` and ``mailbox_future_rtt_p99_us`` (µs per round
        trip).
    """
    n_1to1 = max(100, int(300_000 * scale))
    n_fanout = max(100, int(100_000 * scale))
    n_rr = max(100, int(20_000 * scale))
    one = await _one_to_one(n_1to1)
    fan = await _fanout(n_fanout)
    latencies = await _request_reply(n_rr)
    latencies.sort()
    rtts = await _mailbox_future(n_rr)
    rtts.sort()
    return [
        Figure("1to1_throughput", n_1to1 / one, "events/s"),
        Figure("fanout10_throughput", n_fanout * _FANOUT / fan, "deliveries/s"),
        Figure("reqreply_p50_us", percentile(latencies, 0.50), "us"),
        Figure("reqreply_p99_us", percentile(latencies, 0.99), "us"),
        Figure("mailbox_future_rtt_p50_us", percentile(rtts, 0.50), "us"),
        Figure("mailbox_future_rtt_p99_us", percentile(rtts, 0.99), "us"),
    ]


async def _one_to_one(n: int) -> float:
    """Seconds for one producer to hand ``n`` events to one consumer through one queue."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue(_QUEUE_SIZE)

    async def consume() -> int:
        count = 0
        get = queue.get
        while await get() is not None:
            count += 1
        return count

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    start = time.perf_counter()
    put = queue.put
    for i in range(n):
        await put(bench_event(i))
    await put(None)
    received = await consumer
    elapsed = time.perf_counter() - start
    if received != n:
        raise AssertionError(f"1->1: {received} of {n} events arrived")
    return elapsed


async def _fanout(n: int) -> float:
    """Seconds for one producer to put each of ``n`` events into 10 queues, each read."""
    queues: list[asyncio.Queue[Event | None]] = [asyncio.Queue(_QUEUE_SIZE) for _ in range(_FANOUT)]

    async def consume(queue: asyncio.Queue[Event | None]) -> int:
        count = 0
        get = queue.get
        while await get() is not None:
            count += 1
        return count

    consumers = [asyncio.create_task(consume(q)) for q in queues]
    await asyncio.sleep(0)
    start = time.perf_counter()
    for i in range(n):
        event = bench_event(i)
        for queue in queues:
            await queue.put(event)
    for queue in queues:
        await queue.put(None)
    received = await asyncio.gather(*consumers)
    elapsed = time.perf_counter() - start
    if sum(received) != n * _FANOUT:
        raise AssertionError(f"fan-out: {sum(received)} of {n * _FANOUT} deliveries")
    return elapsed


async def _request_reply(n: int) -> list[float]:
    """Round-trip times in µs of ``n`` sequential requests, each answered on another queue."""
    requests: asyncio.Queue[Event | None] = asyncio.Queue(_QUEUE_SIZE)
    replies: asyncio.Queue[Event] = asyncio.Queue(_QUEUE_SIZE)

    async def serve() -> None:
        while (request := await requests.get()) is not None:
            reply = Event("bench.reply", request.payload, metadata={"seq": request.metadata["seq"]})
            await replies.put(reply)

    server = asyncio.create_task(serve())
    await asyncio.sleep(0)
    latencies: list[float] = []
    clock = time.perf_counter_ns
    for i in range(n):
        start = clock()
        await requests.put(bench_event(i))
        await replies.get()
        latencies.append((clock() - start) / 1000)
    await requests.put(None)
    await server
    return latencies


async def _mailbox_future(n: int) -> list[float]:
    """Round-trip times in µs of ``n`` sequential requests, each put on an actor's mailbox
    with a future that the actor resolves with its reply.

    The least an in-process request/reply between two actors can cost: one queue put, one
    task switch to the actor, one future resolved, one task switch back.
    """
    mailbox: asyncio.Queue[tuple[Event, asyncio.Future[Event]] | None] = asyncio.Queue(_QUEUE_SIZE)

    async def actor() -> None:
        while (item := await mailbox.get()) is not None:
            request, future = item
            future.set_result(
                Event("bench.reply", request.payload, metadata={"seq": request.metadata["seq"]})
            )

    task = asyncio.create_task(actor())
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    clock = time.perf_counter_ns
    for i in range(n):
        start = clock()
        future: asyncio.Future[Event] = loop.create_future()
        await mailbox.put((bench_event(i), future))
        await future
        latencies.append((clock() - start) / 1000)
    await mailbox.put(None)
    await task
    return latencies
