"""Core publishes coalesced per subject and loop iteration into batch messages, on a real
server: what goes on the wire, order, caps, and what the receivers make of good and bad
batches."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from loom import Event, QoS
from loom.bus import Backpressure
from loom.errors import InvalidEventError
from loom_nats import NatsBus, StreamLimits
from loom_nats._codec import BATCH_HEADER, encode_batch, encode_event

pytestmark = pytest.mark.nats

LIMITS = StreamLimits(max_age=600, duplicate_window=60)


def ev(seq: int, payload: bytes = b"payload", **metadata: str) -> Event:
    return Event("t.event", payload, source="test", metadata={"seq": str(seq), **metadata})


def seqs(items: list[tuple[str, Event]]) -> list[int]:
    return [int(event.metadata["seq"]) for _, event in items]


async def read(sub: Any, n: int, timeout: float = 5.0) -> list[tuple[str, Event]]:
    return [await asyncio.wait_for(sub.get(), timeout) for _ in range(n)]


def make(url: str, prefix: str, **options: Any) -> NatsBus:
    options.setdefault("limits", LIMITS)
    options.setdefault("publish_mode", "core")
    return NatsBus(url, prefix=prefix, **options)


class Wire:
    """A bare nats-py subscription that records every message on the bus's subjects."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, str] | None, bytes]] = []

    async def on_message(self, msg: Any) -> None:
        self.messages.append((msg.subject, msg.headers, msg.data))

    def counts(self) -> list[int]:
        """Events per message, in arrival order (1 for a plain message)."""
        return [int(h[BATCH_HEADER]) if h else 1 for _, h, _ in self.messages]


async def wire(url: str, subject: str) -> tuple[Any, Wire]:
    import nats

    nc = await nats.connect(url)
    recorder = Wire()
    await nc.subscribe(subject, cb=recorder.on_message)
    await nc.flush()
    return nc, recorder


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_a_burst_goes_as_batches_in_order_across_batch_boundaries(nats_url, prefix):
    async with make(nats_url, prefix, realtime_batch=8) as bus:
        sub = await bus.subscribe("tick", backpressure=Backpressure(queue_size=100))
        nc, recorder = await wire(nats_url, f"{prefix}.tick")
        try:
            for i in range(30):  # one loop iteration: nothing here suspends
                await bus.publish("tick", ev(i))
            assert await bus.settle()
            assert seqs(await read(sub, 30)) == list(range(30))
            await wait_for(lambda: sum(recorder.counts()) == 30)
        finally:
            await nc.close()
        # The first goes alone at once, the rest in batches of the cap, the rest at the end.
        assert recorder.counts() == [1, 8, 8, 8, 5]
        assert recorder.messages[0][1] is None  # a plain loom.v1.Event, no header
        stats = bus.stats("tick")
        assert stats is not None and stats.delivered == 30 and stats.dropped == 0


async def test_a_bad_event_in_a_burst_is_refused_and_its_batch_goes_on(
    nats_url, prefix, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.ERROR, logger="loom.nats")
    async with make(nats_url, prefix, realtime_batch=8) as bus:
        sub = await bus.subscribe("tick", backpressure=Backpressure(queue_size=100))
        for i in range(3):
            await bus.publish("tick", ev(i))
        # Held events are encoded with their batch, but a value protobuf cannot carry is
        # still refused at publish, mid-burst.
        with pytest.raises(InvalidEventError, match="cannot be encoded"):
            await bus.publish("tick", Event("t", metadata={"seq": 3}))  # type: ignore[dict-item]
        # One the publish-time check lets through (a list has a length) is dropped alone
        # when its batch is encoded: logged and counted; its batch-mates arrive.
        await bus.publish("tick", Event("t", metadata={"seq": ["x"]}))  # type: ignore[dict-item]
        for i in range(4, 7):
            await bus.publish("tick", ev(i))
        assert await bus.settle()
        assert seqs(await read(sub, 6)) == [0, 1, 2, 4, 5, 6]
        assert sub.qsize() == 0
        assert bus.nats_stats().publish_failures == 1
        assert "held for a batch was dropped" in caplog.text
        await bus.publish("tick", ev(7))  # and the bus goes on
        assert seqs(await read(sub, 1)) == [7]


async def test_events_in_separate_iterations_go_one_message_each(nats_url, prefix):
    async with make(nats_url, prefix) as bus:
        sub = await bus.subscribe("tick")
        nc, recorder = await wire(nats_url, f"{prefix}.tick")
        try:
            for i in range(3):
                await bus.publish("tick", ev(i))
                await asyncio.sleep(0)  # the loop comes round: nothing is held
                await asyncio.sleep(0)
            assert seqs(await read(sub, 3)) == [0, 1, 2]
            await wait_for(lambda: len(recorder.messages) == 3)
        finally:
            await nc.close()
        assert recorder.counts() == [1, 1, 1]


async def test_realtime_batch_zero_sends_one_message_per_event(nats_url, prefix):
    async with make(nats_url, prefix, realtime_batch=0) as bus:
        sub = await bus.subscribe("tick")
        nc, recorder = await wire(nats_url, f"{prefix}.tick")
        try:
            for i in range(10):
                await bus.publish("tick", ev(i))
            assert seqs(await read(sub, 10)) == list(range(10))
            await wait_for(lambda: len(recorder.messages) == 10)
        finally:
            await nc.close()
        assert all(headers is None for _, headers, _ in recorder.messages)


async def test_a_batch_past_the_byte_cap_splits(nats_url, prefix):
    big = bytes(100_000)
    async with make(nats_url, prefix) as bus:
        sub = await bus.subscribe("big", backpressure=Backpressure(queue_size=20))
        nc, recorder = await wire(nats_url, f"{prefix}.big")
        try:
            for i in range(12):
                await bus.publish("big", ev(i, big))
            assert seqs(await read(sub, 12)) == list(range(12))
            await wait_for(lambda: sum(recorder.counts()) == 12)
        finally:
            await nc.close()
        counts = recorder.counts()
        # 256 KiB at most per batch: two 100 kB events each, never all eleven together.
        assert counts[0] == 1 and max(counts) == 2 and len(counts) == 7, counts
        assert all(len(data) <= 256 << 10 for _, _, data in recorder.messages)


async def test_mixed_subjects_keep_their_own_order_and_batches(nats_url, prefix):
    async with make(nats_url, prefix, realtime_batch=4) as bus:
        sub = await bus.subscribe("room.*", backpressure=Backpressure(queue_size=100))
        nc, recorder = await wire(nats_url, f"{prefix}.room.*")
        try:
            for i in range(20):
                await bus.publish(f"room.{'ab'[i % 2]}", ev(i))
            assert await bus.settle()
            items = await read(sub, 20)
            try:
                await wait_for(lambda: sum(recorder.counts()) >= 20, timeout=15.0)
            except AssertionError:
                seen = [(s, h) for s, h, _ in recorder.messages]
                raise AssertionError(f"the wire carried fewer than 20 events: {seen}") from None
        finally:
            await nc.close()
        assert sum(recorder.counts()) == 20, [(s, h) for s, h, _ in recorder.messages]
        by_topic: dict[str, list[int]] = {}
        for topic, event in items:
            by_topic.setdefault(topic, []).append(int(event.metadata["seq"]))
        assert by_topic == {"room.a": list(range(0, 20, 2)), "room.b": list(range(1, 20, 2))}
        for subject in (f"{prefix}.room.a", f"{prefix}.room.b"):
            counts = [
                int(h[BATCH_HEADER]) if h else 1 for s, h, _ in recorder.messages if s == subject
            ]
            assert counts == [1, 4, 4, 1], (subject, counts)  # 1 at once, 4, 4, 1 held


async def test_batches_are_stored_and_read_back_by_jetstream_subscriptions(nats_url, prefix):
    async with make(nats_url, prefix, realtime_batch=16) as publisher:
        async with make(nats_url, prefix, publish_mode="ack") as reader:
            batched = await reader.subscribe("job.>", qos=QoS.BATCHED)
            for i in range(40):
                await publisher.publish("job.x", ev(i))
            assert await publisher.settle()
            assert seqs(await read(batched, 40)) == list(range(40))
            assert await reader.settle()
            assert batched.qsize() == 0
            info = await reader.stream_info()
        assert info.state.messages == 4  # 1 + 16 + 16 + 7 events in four messages


async def test_garbage_and_truncated_batches_are_counted_and_the_bus_goes_on(
    nats_url, prefix, caplog: pytest.LogCaptureFixture
):
    import nats

    caplog.set_level(logging.WARNING, logger="loom.nats")
    subject = f"{prefix}.bad"
    body, _ = encode_batch([ev(i) for i in range(3)], 1 << 20)
    async with make(nats_url, prefix) as bus:
        realtime = await bus.subscribe("bad")
        batched = await bus.subscribe("bad", qos=QoS.BATCHED)
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            # Garbage under a batch header; a batch cut short; a count that lies (its
            # events still go); a single event with no header at all.
            await js.publish(subject, b"\xff\xff\xff\xff\xff\xff", headers={BATCH_HEADER: "2"})
            await js.publish(subject, body[:-4], headers={BATCH_HEADER: "3"})
            await js.publish(subject, body, headers={BATCH_HEADER: "5"})
            await js.publish(subject, encode_event(ev(99)))
            await bus.publish("bad", ev(100))
            want = [0, 1, 2, 99, 100]
            assert seqs(await read(realtime, len(want))) == want
            assert seqs(await read(batched, len(want))) == want
            assert await bus.settle()
            (consumer,) = await js.consumers_info(bus.stream)
        finally:
            await nc.close()
        assert bus.nats_stats().undecodable == {subject: 6}  # 3 bad messages, 2 ways each
        assert consumer.num_ack_pending == 0 and consumer.num_redelivered == 0
        # Logged sparingly: the first on the subject (each error text: test_nats_c_codec).
        assert "EventBatch: 6 bytes do not parse" in caplog.text
        assert realtime.qsize() == batched.qsize() == 0


async def test_outage_count_reads_batches(nats_url, prefix):
    from loom_nats._outage import count_missed
    from loom_nats._realtime import RealtimeTap
    from loom_nats._stats import Telemetry

    async with make(nats_url, prefix, realtime_batch=8) as bus:
        since = time.time() - 1
        sub = await bus.subscribe("lost.*")
        for i in range(20):
            await bus.publish("lost.x", ev(i))
        assert await bus.settle()
        received = await read(sub, 20)
        end_seq = (await bus.stream_info()).state.last_seq
        tap = RealtimeTap(Telemetry(prefix), f"{prefix}.lost.*", len(prefix) + 1)
        tap.subs.append(sub)
        # The tap saw the first five only: the other fifteen, stored in batches, are missed.
        tap.witnessed = {event.id for _, event in received[:5]}
        assert bus._js is not None
        missed = await count_missed(
            bus._js, stream=bus.stream, tap=tap, since=since, end_seq=end_seq, strip=len(prefix) + 1
        )
    assert missed.events == {f"{prefix}.lost.x": 15}
    assert missed.deliveries == {"lost.x": 15}


async def test_traced_publishes_carry_their_context_inside_batches(nats_url, prefix):
    pytest.importorskip("opentelemetry.sdk", reason="needs loom-core[telemetry]")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from loom.telemetry import TelemetryConfig, configure

    telemetry = configure(TelemetryConfig(tracing="all"))
    memory = InMemorySpanExporter()
    telemetry.add_span_processor(SimpleSpanProcessor(memory))
    try:
        async with make(nats_url, prefix, realtime_batch=8) as bus:
            sub = await bus.subscribe("traced", backpressure=Backpressure(queue_size=20))
            for i in range(10):
                await bus.publish("traced", ev(i))
            items = await read(sub, 10)
    finally:
        await telemetry.shutdown()
    assert seqs(items) == list(range(10))
    spans = {
        span.context.span_id: span
        for span in memory.get_finished_spans()
        if span.name == "loom.publish"
    }
    assert len(spans) == 10
    for _, event in items:  # each event carries its own publish span's context
        _, trace_id, span_id, _ = event.metadata["traceparent"].split("-")
        span = spans[int(span_id, 16)]
        assert span.context.trace_id == int(trace_id, 16)


def test_realtime_batch_is_checked():
    for bad in (-1, 1.5, True, "64", 10**6):
        with pytest.raises(ValueError, match="realtime_batch"):
            NatsBus(realtime_batch=bad)  # type: ignore[arg-type]
    assert NatsBus(realtime_batch=0).realtime_batch == 0
