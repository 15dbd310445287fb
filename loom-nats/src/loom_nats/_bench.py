"""``loom bench`` scenarios of the NATS bus, each beside ``baseline.nats_raw``.

They need a NATS server with JetStream at ``$LOOM_NATS_URL`` (default
``nats://127.0.0.1:4222``; ``scripts/nats-server.sh`` starts one). Every run works under a
fresh subject prefix and deletes its stream afterwards.

Like for like: the raw baseline moves 150-byte messages through nats-py on one connection
that publishes and subscribes; the bus scenarios move :func:`~loom.bench.bench_event`
events (about 150 bytes encoded) through a :class:`NatsBus`, which is one connection too.
``core_protobuf_throughput`` adds the protobuf encoding and decoding of those events to
the raw path, to show what the wire format costs apart from the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from loom import Event, QoS
from loom.bench import Figure, bench_event, percentile
from loom.bus import Backpressure
from loom_nats._bus import NatsBus
from loom_nats._codec import decode_event, encode_event
from loom_nats._config import DEFAULT_SERVERS, StreamLimits

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

__all__ = ["jetstream_publish", "nats_raw", "publish_1sub", "request_reply"]

_PAYLOAD = bytes(150)
_LIMITS = StreamLimits(max_age=300, max_bytes=512 << 20, duplicate_window=60)


def _url() -> str:
    return os.environ.get("LOOM_NATS_URL", DEFAULT_SERVERS)


def _count(full: int, scale: float, minimum: int = 100) -> int:
    return max(minimum, int(full * scale))


def _prefix() -> str:
    return "bench" + uuid.uuid4().hex[:10]


async def _delete_stream(nc: Client, name: str) -> None:
    from nats.js.errors import NotFoundError

    with contextlib.suppress(NotFoundError):
        await nc.jetstream().delete_stream(name)


@asynccontextmanager
async def _bus(**options: Any) -> AsyncIterator[NatsBus]:
    bus = NatsBus(_url(), prefix=_prefix(), limits=_LIMITS, **options)
    await bus.start()
    try:
        yield bus
    finally:
        nc = bus.link.nc
        await _delete_stream(nc, bus.stream)
        await bus.shutdown()


# -- baseline.nats_raw -----------------------------------------------------------------------


async def nats_raw(scale: float) -> list[Figure]:
    """Bare nats-py on one connection.

    - ``core_throughput``: publish 150-byte messages to a subject this connection
      subscribes to (a callback counts them), messages/s.
    - ``core_protobuf_throughput``: the same with each message a ``bench_event`` encoded
      before publishing and decoded in the callback.
    - ``jetstream_throughput``: ``publish_async`` into a stream, all acknowledged, msgs/s.
    - ``reqreply_p50_us`` / ``reqreply_p99_us``: ``request`` to a responder on a second
      connection, sequential round trips.
    """
    import nats

    n_core = _count(200_000, scale)
    n_js = _count(50_000, scale)
    n_rr = _count(5_000, scale)
    url = _url()
    nc = await nats.connect(url)
    responder = await nats.connect(url)
    try:
        core = await _raw_core(nc, n_core, protobuf=False)
        core_pb = await _raw_core(nc, n_core, protobuf=True)
        js_rate = await _raw_jetstream(nc, n_js)
        latencies = await _raw_request_reply(nc, responder, n_rr)
    finally:
        await responder.close()
        await nc.close()
    return [
        Figure("core_throughput", core, "msgs/s"),
        Figure("core_protobuf_throughput", core_pb, "msgs/s"),
        Figure("jetstream_throughput", js_rate, "msgs/s"),
        Figure("reqreply_p50_us", percentile(latencies, 0.50), "us"),
        Figure("reqreply_p99_us", percentile(latencies, 0.99), "us"),
    ]


async def _raw_core(nc: Client, n: int, *, protobuf: bool) -> float:
    subject = "bench.raw." + uuid.uuid4().hex[:8]
    done = asyncio.Event()
    got = 0

    async def on_message(msg: Msg) -> None:
        nonlocal got
        if protobuf:
            decode_event(msg.data)
        got += 1
        if got == n:
            done.set()

    sub = await nc.subscribe(subject, cb=on_message, pending_msgs_limit=n + 1)
    publish = nc.publish
    start = time.perf_counter()
    if protobuf:
        for i in range(n):
            await publish(subject, encode_event(bench_event(i)))
    else:
        for _ in range(n):
            await publish(subject, _PAYLOAD)
    await asyncio.wait_for(done.wait(), 60)
    elapsed = time.perf_counter() - start
    await sub.unsubscribe()
    return n / elapsed


async def _raw_jetstream(nc: Client, n: int) -> float:
    prefix = _prefix()
    stream = prefix.upper()
    js = nc.jetstream(publish_async_max_pending=4096)
    await js.add_stream(_LIMITS.stream_config(stream, [f"{prefix}.>"]))
    try:
        subject = f"{prefix}.raw"
        start = time.perf_counter()
        for _ in range(n):
            await js.publish_async(subject, _PAYLOAD)
        await asyncio.wait_for(js.publish_async_completed(), 60)
        elapsed = time.perf_counter() - start
    finally:
        await _delete_stream(nc, stream)
    return n / elapsed


async def _first_answer(nc: Client, subject: str) -> None:
    """Wait until a request on ``subject`` is answered: now and then the server reports "no
    responders" for a moment after another connection subscribed, even past its flush."""
    from nats.errors import NoRespondersError

    deadline = time.monotonic() + 5
    while True:
        try:
            await nc.request(subject, _PAYLOAD, timeout=1)
            return
        except NoRespondersError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)


async def _raw_request_reply(nc: Client, responder: Client, n: int) -> list[float]:
    subject = "bench.rr." + uuid.uuid4().hex[:8]

    async def answer(msg: Msg) -> None:
        await msg.respond(msg.data)

    await responder.subscribe(subject, cb=answer)
    await responder.flush()
    request = nc.request
    await _first_answer(nc, subject)
    clock = time.perf_counter_ns
    latencies: list[float] = []
    for _ in range(n):
        start = clock()
        await request(subject, _PAYLOAD, timeout=5)
        latencies.append((clock() - start) / 1000)
    latencies.sort()
    return latencies


# -- the bus -------------------------------------------------------------------------------


async def _one_sub(n: int, qos: QoS, publish_mode: str) -> float:
    """Events/s from publish to read through one subscription of the publishing bus."""
    async with _bus(publish_mode=publish_mode) as bus:
        # A queue that holds the whole run: the figure is the path's cost, not drops.
        sub = await bus.subscribe("bench.tick", qos=qos, backpressure=Backpressure(queue_size=n))

        async def read() -> None:
            for _ in range(n):
                await sub.get()

        reader = asyncio.create_task(read())
        publish = bus.publish
        start = time.perf_counter()
        for i in range(n):
            await publish("bench.tick", bench_event(i))
        await asyncio.wait_for(reader, 120)
        elapsed = time.perf_counter() - start
        stats = bus.stats("bench.tick")
        if stats is None or stats.dropped:
            raise AssertionError(f"the bench subscription dropped events: {stats}")
    return n / elapsed


async def publish_1sub(scale: float) -> list[Figure]:
    """One bus publishes, one subscription of it reads every event.

    - ``throughput``: Realtime (core NATS) with ``publish_mode="core"``; judge it against
      ``baseline.nats_raw`` ``core_throughput``.
    - ``batched_throughput``: Batched (JetStream pull consumer) with
      ``publish_mode="async"``: stored, acknowledged, pulled, acknowledged.
    """
    realtime = await _one_sub(_count(200_000, scale), QoS.REALTIME, "core")
    batched = await _one_sub(_count(50_000, scale), QoS.BATCHED, "async")
    return [
        Figure("throughput", realtime, "events/s"),
        Figure("batched_throughput", batched, "events/s"),
    ]


async def jetstream_publish(scale: float) -> list[Figure]:
    """Publishing into the stream with nobody subscribed.

    - ``throughput``: ``publish_mode="async"`` and a final ``flush()`` (every event
      acknowledged); judge it against ``jetstream_throughput``.
    - ``ack_throughput`` and ``ack_p50_us``: ``publish_mode="ack"``, one PubAck awaited
      per publish.
    """
    n_async = _count(50_000, scale)
    n_ack = _count(5_000, scale)
    async with _bus(publish_mode="async") as bus:
        start = time.perf_counter()
        for i in range(n_async):
            await bus.publish("bench.js", bench_event(i))
        await bus.flush(60)
        async_rate = n_async / (time.perf_counter() - start)
    latencies: list[float] = []
    async with _bus(publish_mode="ack") as bus:
        clock = time.perf_counter_ns
        start = time.perf_counter()
        for i in range(n_ack):
            t0 = clock()
            await bus.publish("bench.js", bench_event(i))
            latencies.append((clock() - t0) / 1000)
        ack_rate = n_ack / (time.perf_counter() - start)
    latencies.sort()
    return [
        Figure("throughput", async_rate, "events/s"),
        Figure("ack_throughput", ack_rate, "events/s"),
        Figure("ack_p50_us", percentile(latencies, 0.50), "us"),
    ]


async def request_reply(scale: float) -> list[Figure]:
    """Sequential request/reply between two buses (Realtime, ``publish_mode="core"``):
    the requester publishes on ``svc.echo`` with a reply topic, the responder's handler
    publishes the answer there. Judge ``p50_us`` against ``reqreply_p50_us``."""
    n = _count(5_000, scale)
    prefix = _prefix()
    requester = NatsBus(_url(), prefix=prefix, limits=_LIMITS, publish_mode="core")
    responder = NatsBus(_url(), prefix=prefix, limits=_LIMITS, publish_mode="core")
    await requester.start()
    await responder.start()
    try:

        async def echo(topic: str, event: Event) -> None:
            await responder.publish(event.metadata["reply_to"], event)

        await responder.subscribe("svc.echo", handler=echo)
        replies = await requester.subscribe("bench.replies")
        await responder.settle()
        clock = time.perf_counter_ns
        latencies: list[float] = []
        for i in range(n):
            event = bench_event(i)
            event.metadata["reply_to"] = "bench.replies"
            start = clock()
            # asyncio.timeout, not wait_for: wait_for wraps the get in a task of its own
            # (on Python 3.11), a task switch per round trip the raw side does not pay.
            async with asyncio.timeout(5):
                await requester.publish("svc.echo", event)
                await replies.get()
            latencies.append((clock() - start) / 1000)
    finally:
        await _delete_stream(requester.link.nc, requester.stream)
        await responder.shutdown()
        await requester.shutdown()
    latencies.sort()
    return [
        Figure("p50_us", percentile(latencies, 0.50), "us"),
        Figure("p99_us", percentile(latencies, 0.99), "us"),
    ]
