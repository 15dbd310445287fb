"""The bus conformance suite, re-exported as :class:`loom.testing.BusConformance`.

Private to ``loom.bus`` (it imports pytest); only ``loom.testing`` imports it.
"""

# These are tests: compound asserts read better here, as in tests/ (see the root pyproject).
# ruff: noqa: PT018

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from loom._action import QoS
from loom._event import Event
from loom.bus._base import EventBus
from loom.bus._errors import SubscriptionClosed
from loom.bus._policy import Backpressure, DropReason, Policy
from loom.bus._queue import DeliveryQueue, Item
from loom.bus._subscription import Subscription
from loom.errors import InvalidEventError, InvalidTopicError

# pytest-asyncio in strict mode needs its marker and fixture decorator (auto mode takes both);
# without it, another asyncio test plugin may run the tests with plain fixtures.
_marks: list[pytest.MarkDecorator] = []
if TYPE_CHECKING:
    from pytest_asyncio import fixture as _async_fixture
else:
    try:
        from pytest_asyncio import fixture as _async_fixture
    except ImportError:  # pragma: no cover
        _async_fixture = pytest.fixture
    else:
        _marks.append(pytest.mark.asyncio)

__all__ = ["BusConformance"]


def _event(seq: int = 0, type: str = "test.event", **metadata: str) -> Event:
    return Event(type, b"x" * 8, source="conformance", metadata={"seq": str(seq), **metadata})


def _seqs(items: list[Item]) -> list[int]:
    return [int(event.metadata["seq"]) for _, event in items]


class BusConformance:
    """The event-bus contract as tests, written once for every backend.

    Subclass it in a test module (the name must start with ``Test`` to be collected) and
    override :meth:`make_bus`; override :meth:`settle` when deliveries are asynchronous
    (a network backend), and the class attributes to shrink the sizes for a slow backend.
    A test of a feature a backend lacks can be overridden with a skip.

    Example:
        .. code-block:: python

            from loom.bus import MemoryBus
            from loom.testing import BusConformance

            class TestMemoryBus(BusConformance):
                async def make_bus(self, **options):
                    return MemoryBus(**options)

    The tests need an asyncio test plugin (pytest-asyncio, in auto or strict mode).
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = _marks

    #: Events in the "memory stays flat" burst into a Realtime subscriber that never reads.
    burst_size: ClassVar[int] = 1_000_000
    #: Events pushed through a Batched subscriber with a slow reader (nothing may be lost).
    blocking_count: ClassVar[int] = 10_000
    #: How long to wait for an event that should arrive, in seconds.
    receive_timeout: ClassVar[float] = 2.0

    async def make_bus(self, **options: Any) -> EventBus:
        """A new, not yet started bus of the backend under test.

        Args:
            **options: backend options some tests need: ``inflight_threshold`` (int).
                Call ``pytest.skip`` for an option the backend does not have.
        """
        raise NotImplementedError("a BusConformance subclass must override make_bus()")

    async def settle(self) -> None:
        """Wait until deliveries of what was published have landed in the queues."""
        await asyncio.sleep(0)

    @_async_fixture
    async def bus(self) -> AsyncIterator[EventBus]:
        """A started bus, shut down after the test."""
        bus = await self.make_bus()
        await bus.start()
        try:
            yield bus
        finally:
            await bus.shutdown()

    async def receive(self, sub: Subscription) -> Item:
        """The subscription's next ``(topic, event)``, failing the test after a timeout."""
        return await asyncio.wait_for(sub.get(), self.receive_timeout)

    async def drain(self, sub: Subscription) -> list[Item]:
        """Everything queued on the subscription now, without waiting."""
        await self.settle()
        items: list[Item] = []
        while True:
            try:
                items.append(sub.get_nowait())
            except (asyncio.QueueEmpty, SubscriptionClosed):
                return items

    # -- AC2.1: subscribe, publish, unsubscribe, shutdown -----------------------------------

    async def test_subscribe_then_publish_delivers(self, bus: EventBus) -> None:
        sub = await bus.subscribe("conf.basic")
        event = _event(1)
        assert await bus.publish("conf.basic", event) == 1
        topic, got = await self.receive(sub)
        assert topic == "conf.basic"
        assert got.id == event.id and got.payload == event.payload and got.type == event.type

    async def test_unsubscribe_stops_delivery(self, bus: EventBus) -> None:
        sub = await bus.subscribe("conf.unsub")
        assert await bus.unsubscribe(sub.id) is True
        assert await bus.publish("conf.unsub", _event()) == 0
        assert await self.drain(sub) == []
        assert sub.closed
        assert await bus.unsubscribe(sub.id) is False
        assert await bus.unsubscribe("no-such-subscription") is False

    async def test_subscription_close_unsubscribes(self, bus: EventBus) -> None:
        sub = await bus.subscribe("conf.close", qos=QoS.BATCHED)
        await bus.publish("conf.close", _event(1))
        await sub.close()
        assert await bus.publish("conf.close", _event(2)) == 0
        assert _seqs([item async for item in sub]) == [1]  # queued before the close: kept
        with pytest.raises(SubscriptionClosed):
            await sub.get()

    async def test_shutdown_closes_receivers_and_publish_returns_zero(self) -> None:
        bus = await self.make_bus()
        await bus.start()
        subs = [await bus.subscribe("conf.down", qos=qos) for qos in QoS]
        waiting = asyncio.ensure_future(subs[0].get())
        await asyncio.sleep(0)
        await bus.shutdown()
        with pytest.raises(SubscriptionClosed):
            await asyncio.wait_for(waiting, self.receive_timeout)
        for sub in subs:
            assert sub.closed
            assert [item async for item in sub] == []
            with pytest.raises(SubscriptionClosed):
                await sub.get()
        assert await bus.publish("conf.down", _event()) == 0
        await bus.shutdown()  # idempotent

    async def test_published_equals_delivered(self, bus: EventBus) -> None:
        sub = await bus.subscribe("conf.count", qos=QoS.BATCHED)
        for i in range(10):
            await bus.publish("conf.count", _event(i))
        got = [await self.receive(sub) for _ in range(10)]
        assert _seqs(got) == list(range(10))
        stats = bus.stats("conf.count")
        assert stats is not None
        assert stats.published == stats.delivered == 10
        assert stats.dropped == 0 and stats.active_subscriptions == 1

    async def test_publish_without_subscribers_counts_published(self, bus: EventBus) -> None:
        assert bus.stats("conf.nobody") is None
        assert await bus.publish("conf.nobody", _event()) == 0
        stats = bus.stats("conf.nobody")
        assert stats is not None and stats.published == 1 and stats.delivered == 0

    # -- AC2.2-2.5: QoS, filters, fan-out ---------------------------------------------------

    @pytest.mark.parametrize("count", [500, 5_000, 15_000])
    async def test_realtime_unread_drops(self, bus: EventBus, count: int) -> None:
        sub = await bus.subscribe("conf.rt")
        for i in range(count):
            await bus.publish("conf.rt", _event(i))
        got = await self.drain(sub)
        stats = bus.stats("conf.rt")
        assert stats is not None
        assert stats.published == count
        assert stats.dropped > 0 and len(got) < count
        assert stats.dropped_by_reason.get(DropReason.QUEUE_FULL.name, 0) > 0

    @pytest.mark.parametrize(("qos", "count"), [(QoS.BATCHED, 500), (QoS.BACKGROUND, 2_000)])
    async def test_blocking_qos_loses_nothing(self, bus: EventBus, qos: QoS, count: int) -> None:
        sub = await bus.subscribe("conf.block", qos=qos)

        async def read_all() -> list[Item]:
            return [await self.receive(sub) for _ in range(count)]

        reader = asyncio.create_task(read_all())
        for i in range(count):
            await bus.publish("conf.block", _event(i))
        got = await reader
        assert _seqs(got) == list(range(count))
        stats = bus.stats("conf.block")
        assert stats is not None
        assert stats.dropped == 0 and stats.published == stats.delivered == count

    async def test_batched_blocks_the_publisher_when_full(self, bus: EventBus) -> None:
        size = 8
        sub = await bus.subscribe(
            "conf.full", qos=QoS.BATCHED, backpressure=Backpressure(queue_size=size)
        )
        for i in range(size):
            await bus.publish("conf.full", _event(i))
        late = asyncio.ensure_future(bus.publish("conf.full", _event(size)))
        await asyncio.sleep(0.05)
        assert not late.done()  # waiting for room, not dropped
        assert _seqs([await self.receive(sub)]) == [0]
        assert await asyncio.wait_for(late, self.receive_timeout) == 1
        rest = [await self.receive(sub) for _ in range(size)]
        assert _seqs(rest) == list(range(1, size + 1))

    async def test_default_queue_sizes(self, bus: EventBus) -> None:
        sizes = {qos: (await bus.subscribe("conf.sizes", qos=qos)).queue.maxsize for qos in QoS}
        assert sizes == {QoS.REALTIME: 64, QoS.BATCHED: 1024, QoS.BACKGROUND: 4096}

    async def test_type_filter(self, bus: EventBus) -> None:
        sub = await bus.subscribe("conf.types", event_types=["type_a"], qos=QoS.BACKGROUND)
        assert sub.event_types == frozenset({"type_a"})
        for i in range(2_000):
            await bus.publish("conf.types", _event(i, type="type_a" if i % 2 else "type_b"))
        got = await self.drain(sub)
        assert len(got) == 1_000
        assert all(event.type == "type_a" for _, event in got)
        stats = bus.stats("conf.types")
        assert stats is not None and stats.dropped == 0  # filtered is not dropped

    async def test_two_subscriptions_each_get_every_event(self, bus: EventBus) -> None:
        first = await bus.subscribe("conf.two", qos=QoS.BATCHED)
        second = await bus.subscribe("conf.two", qos=QoS.BATCHED)
        assert first.id != second.id
        for i in range(5):
            assert await bus.publish("conf.two", _event(i)) == 2
        assert _seqs(await self.drain(first)) == _seqs(await self.drain(second)) == list(range(5))

    # -- wildcards and statistics -----------------------------------------------------------

    @pytest.mark.parametrize(
        ("pattern", "topic", "expected"),
        [
            ("conf.*.temp", "conf.kitchen.temp", True),
            ("conf.*.temp", "conf.kitchen.hum", False),
            ("conf.*", "conf.a.b", False),
            ("conf.>", "conf.a", True),
            ("conf.>", "conf.a.b.c", True),
            ("conf.>", "conf", False),
            ("*.*", "conf.a", True),
            (">", "conf.a.b", True),
        ],
    )
    async def test_wildcards(self, bus: EventBus, pattern: str, topic: str, expected: bool) -> None:
        sub = await bus.subscribe(pattern, qos=QoS.BATCHED)
        assert await bus.publish(topic, _event()) == int(expected)
        got = await self.drain(sub)
        assert [t for t, _ in got] == ([topic] if expected else [])

    async def test_stats_under_wildcards_and_unsubscribe(self, bus: EventBus) -> None:
        star = await bus.subscribe("conf.s.*", qos=QoS.BATCHED)
        await bus.subscribe("conf.s.>", qos=QoS.BATCHED)
        await bus.subscribe("conf.s.a", qos=QoS.BATCHED)
        other = await bus.subscribe("conf.other", qos=QoS.BATCHED)
        for topic in ("conf.s.a", "conf.s.b", "conf.s.b.c", "conf.other"):
            await bus.publish(topic, _event())

        def active() -> dict[str, int]:
            all_stats = bus.all_stats()
            return {t: all_stats[t].active_subscriptions for t in sorted(all_stats)}

        assert active() == {"conf.other": 1, "conf.s.a": 3, "conf.s.b": 2, "conf.s.b.c": 1}
        assert await bus.unsubscribe(star.id)
        assert active() == {"conf.other": 1, "conf.s.a": 2, "conf.s.b": 1, "conf.s.b.c": 1}
        await other.close()
        assert active() == {"conf.other": 0, "conf.s.a": 2, "conf.s.b": 1, "conf.s.b.c": 1}
        stats = bus.stats("conf.s.a")
        assert stats is not None and stats.published == 1 and stats.delivered == 3

    async def test_stats_exist_for_exact_subscriptions_only(self, bus: EventBus) -> None:
        await bus.subscribe("conf.exact.topic")
        await bus.subscribe("conf.wild.*")
        stats = bus.stats("conf.exact.topic")
        assert stats is not None and stats.published == 0 and stats.active_subscriptions == 1
        assert bus.stats("conf.wild.*") is None
        assert bus.stats("conf.wild.x") is None

    # -- backpressure policies --------------------------------------------------------------

    async def _publish_unread(
        self, bus: EventBus, backpressure: Backpressure, count: int, qos: QoS = QoS.REALTIME
    ) -> tuple[list[Item], dict[str, int]]:
        sub = await bus.subscribe("conf.policy", qos=qos, backpressure=backpressure)
        for i in range(count):
            await bus.publish("conf.policy", _event(i, room="abc"[i % 3]))
        got = await self.drain(sub)
        stats = bus.stats("conf.policy")
        assert stats is not None
        assert stats.published == count
        assert stats.dropped == sum(stats.dropped_by_reason.values())
        assert stats.delivered == len(got)  # evicted and superseded ones are not delivered
        return got, stats.dropped_by_reason

    async def test_drop_newest_keeps_the_first(self, bus: EventBus) -> None:
        bp = Backpressure(Policy.DROP_NEWEST, queue_size=4)
        got, dropped = await self._publish_unread(bus, bp, 10)
        assert _seqs(got) == [0, 1, 2, 3]
        assert dropped == {"QUEUE_FULL": 6}

    @pytest.mark.parametrize("qos", [QoS.REALTIME, QoS.BATCHED])
    async def test_drop_oldest_keeps_the_freshest(self, bus: EventBus, qos: QoS) -> None:
        bp = Backpressure(Policy.DROP_OLDEST, queue_size=4)
        got, dropped = await self._publish_unread(bus, bp, 10, qos)
        assert _seqs(got) == [6, 7, 8, 9]
        assert dropped == {"QUEUE_FULL": 6}

    async def test_realtime_default_is_drop_oldest(self, bus: EventBus) -> None:
        got, _ = await self._publish_unread(bus, Backpressure(), 100)
        assert _seqs(got) == list(range(36, 100))

    async def test_sample_one_in_n(self, bus: EventBus) -> None:
        bp = Backpressure(Policy.SAMPLE, sample_every=10)
        got, dropped = await self._publish_unread(bus, bp, 50, QoS.BATCHED)
        assert _seqs(got) == [0, 10, 20, 30, 40]
        assert dropped == {"SAMPLED": 45}

    async def test_sample_max_rate(self, bus: EventBus) -> None:
        bp = Backpressure(Policy.SAMPLE, max_rate=20.0)
        start = time.monotonic()
        got, dropped = await self._publish_unread(bus, bp, 1_000, QoS.BATCHED)
        elapsed = time.monotonic() - start
        assert 20 <= len(got) <= 20 + 20 * elapsed + 1  # one second's burst, then the rate
        assert dropped == {"SAMPLED": 1_000 - len(got)}
        await asyncio.sleep(0.1)  # two tokens refill: the rate lets events through again
        assert await bus.publish("conf.policy", _event(1_000)) == 1

    async def test_aggregate_latest_wins_by_metadata_key(self, bus: EventBus) -> None:
        bp = Backpressure(Policy.AGGREGATE, aggregate_key="room")
        got, dropped = await self._publish_unread(bus, bp, 30, QoS.BATCHED)
        # Rooms a, b, c each hold their first place in the queue with their latest event.
        assert [(e.metadata["room"], int(e.metadata["seq"])) for _, e in got] == [
            ("a", 27),
            ("b", 28),
            ("c", 29),
        ]
        assert dropped == {"AGGREGATED": 27}

    async def test_aggregate_by_function_and_after_read(self, bus: EventBus) -> None:
        bp = Backpressure(Policy.AGGREGATE, aggregate_key=lambda e: e.type)
        sub = await bus.subscribe("conf.agg", qos=QoS.BATCHED, backpressure=bp)
        await bus.publish("conf.agg", _event(0, type="a"))
        await bus.publish("conf.agg", _event(1, type="a"))
        await self.settle()  # both must have landed, so the second supersedes the first
        assert _seqs([await self.receive(sub)]) == [1]
        await bus.publish("conf.agg", _event(2, type="a"))  # the key left the queue: new place
        await bus.publish("conf.agg", _event(3, type="b"))
        assert _seqs(await self.drain(sub)) == [2, 3]

    @pytest.mark.parametrize(
        ("qos", "kwargs", "message"),
        [
            (QoS.BATCHED, {"policy": Policy.SAMPLE}, "sample_every"),
            (QoS.BATCHED, {"sample_every": 2}, "Policy.SAMPLE"),
            (QoS.BATCHED, {"policy": Policy.SAMPLE, "sample_every": 0}, ">= 1"),
            (QoS.BATCHED, {"policy": Policy.SAMPLE, "max_rate": -1.0}, "> 0"),
            (QoS.BATCHED, {"policy": Policy.AGGREGATE}, "aggregate_key"),
            (QoS.BATCHED, {"aggregate_key": "k"}, "Policy.AGGREGATE"),
            (QoS.BATCHED, {"queue_size": 0}, "queue_size"),
            (QoS.REALTIME, {"policy": Policy.BLOCK}, "Realtime"),
        ],
    )
    async def test_backpressure_validation(
        self, bus: EventBus, qos: QoS, kwargs: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            await bus.subscribe("conf.bad", qos=qos, backpressure=Backpressure(**kwargs))

    async def test_queue_and_queue_size_are_exclusive(self, bus: EventBus) -> None:
        with pytest.raises(ValueError, match="queue"):
            await bus.subscribe(
                "conf.bad", queue=DeliveryQueue(4), backpressure=Backpressure(queue_size=4)
            )

    # -- shared queues (mailboxes) ----------------------------------------------------------

    async def test_shared_queue_merges_subscriptions(self, bus: EventBus) -> None:
        mailbox = DeliveryQueue(100)
        await bus.subscribe("conf.mb.a", qos=QoS.BATCHED, queue=mailbox)
        await bus.subscribe("conf.mb.b", qos=QoS.BATCHED, queue=mailbox)
        for i in range(6):
            await bus.publish("conf.mb.a" if i % 2 else "conf.mb.b", _event(i))
        await self.settle()
        got = [mailbox.get_nowait() for _ in range(mailbox.qsize())]
        assert sorted(_seqs(got)) == list(range(6))
        assert {t for t, _ in got} == {"conf.mb.a", "conf.mb.b"}

    async def test_shutdown_closes_shared_queues(self) -> None:
        bus = await self.make_bus()
        await bus.start()
        mailbox = DeliveryQueue(10)
        await bus.subscribe("conf.mb", qos=QoS.BATCHED, queue=mailbox)
        await bus.shutdown()
        with pytest.raises(SubscriptionClosed):
            await mailbox.get()

    # -- in-flight threshold ----------------------------------------------------------------

    async def test_inflight_threshold_drops_realtime_early(self) -> None:
        bus = await self.make_bus(inflight_threshold=2)
        await bus.start()
        try:
            realtime = await bus.subscribe("conf.inflight")
            blocker = await bus.subscribe(
                "conf.inflight", qos=QoS.BATCHED, backpressure=Backpressure(queue_size=1)
            )
            await bus.publish("conf.inflight", _event(0))  # fills the blocker's queue
            stuck = [asyncio.ensure_future(bus.publish("conf.inflight", _event(i))) for i in (1, 2)]
            await asyncio.sleep(0.01)
            stats = bus.stats("conf.inflight")
            assert stats is not None and stats.backlog == 2
            late = asyncio.ensure_future(bus.publish("conf.inflight", _event(3)))
            await asyncio.sleep(0.01)
            stats = bus.stats("conf.inflight")
            assert stats is not None and stats.dropped_by_reason == {"BACKLOG": 1}
            assert _seqs(await self.drain(realtime)) == [0, 1, 2]
            got = [await self.receive(blocker) for _ in range(4)]
            assert _seqs(got) == [0, 1, 2, 3]  # the blocking subscriber lost nothing
            assert await asyncio.wait_for(asyncio.gather(*stuck, late), 1) == [2, 2, 1]
            stats = bus.stats("conf.inflight")
            assert stats is not None and stats.backlog == 0
        finally:
            await bus.shutdown()

    # -- handlers ---------------------------------------------------------------------------

    async def test_failing_handler_breaks_nothing(
        self, bus: EventBus, caplog: pytest.LogCaptureFixture
    ) -> None:
        seen_sync: list[int] = []
        seen_async: list[int] = []
        done = asyncio.Event()

        def flaky(topic: str, event: Event) -> None:
            seq = int(event.metadata["seq"])
            if seq % 2 == 0:
                raise RuntimeError(f"boom {seq}")
            seen_sync.append(seq)

        async def always_fails(topic: str, event: Event) -> None:
            raise RuntimeError("always")

        async def healthy(topic: str, event: Event) -> None:
            seen_async.append(int(event.metadata["seq"]))
            if len(seen_async) == 10:
                done.set()

        failing = await bus.subscribe("conf.h", qos=QoS.BATCHED, handler=always_fails)
        half = await bus.subscribe("conf.h", qos=QoS.BATCHED, handler=flaky)
        await bus.subscribe("conf.h", qos=QoS.BATCHED, handler=healthy)
        plain = await bus.subscribe("conf.h", qos=QoS.BATCHED)
        for i in range(10):
            assert await bus.publish("conf.h", _event(i)) == 4
        await asyncio.wait_for(done.wait(), self.receive_timeout)
        for _ in range(100):
            if failing.errors == 10 and half.errors == 5:
                break
            await asyncio.sleep(0.01)
        assert seen_async == list(range(10))
        assert seen_sync == [1, 3, 5, 7, 9]
        assert failing.errors == 10 and half.errors == 5
        assert len(await self.drain(plain)) == 10
        assert failing.id in caplog.text and "boom 0" in caplog.text

    async def test_handler_and_shared_queue_are_exclusive(self, bus: EventBus) -> None:
        with pytest.raises(ValueError, match="handler"):
            await bus.subscribe("conf.h", queue=DeliveryQueue(4), handler=lambda t, e: None)

    # -- bad input --------------------------------------------------------------------------

    @pytest.mark.parametrize("bad", ["text", b"bytes", {"type": "t"}, None, 42])
    async def test_publish_rejects_non_events(self, bus: EventBus, bad: Any) -> None:
        with pytest.raises(InvalidEventError, match=r"loom\.Event"):
            await bus.publish("conf.bad", bad)
        await self._still_works(bus)

    @pytest.mark.parametrize("topic", ["", "a..b", "a b", ".a", "a.", "a.*", "a.>", ">", None, 3])
    async def test_publish_rejects_bad_topics(self, bus: EventBus, topic: Any) -> None:
        with pytest.raises(InvalidTopicError):
            await bus.publish(topic, _event())
        await self._still_works(bus)

    @pytest.mark.parametrize("pattern", ["", "a..b", "a.>.b", "a.b*", "a b"])
    async def test_subscribe_rejects_bad_patterns(self, bus: EventBus, pattern: str) -> None:
        with pytest.raises(InvalidTopicError):
            await bus.subscribe(pattern)
        await self._still_works(bus)

    async def test_publish_rejects_events_changed_out_of_contract(self, bus: EventBus) -> None:
        event = _event()
        event.priority = 101
        with pytest.raises(InvalidEventError, match="priority"):
            await bus.publish("conf.bad", event)
        event = _event()
        event.payload = "text"  # type: ignore[assignment]  # the mistake under test
        with pytest.raises(InvalidEventError, match="payload"):
            await bus.publish("conf.bad", event)
        await self._still_works(bus)

    async def test_event_types_must_be_strings(self, bus: EventBus) -> None:
        with pytest.raises(TypeError, match="str"):
            await bus.subscribe("conf.bad", event_types="type_a")
        await self._still_works(bus)

    async def _still_works(self, bus: EventBus) -> None:
        sub = await bus.subscribe("conf.after.bad")
        assert await bus.publish("conf.after.bad", _event(7)) == 1
        assert _seqs([await self.receive(sub)]) == [7]
        await sub.close()

    # -- guarantees under load --------------------------------------------------------------

    async def test_nothing_accepted_on_blocking_qos_is_lost(self, bus: EventBus) -> None:
        count = self.blocking_count
        sub = await bus.subscribe("conf.load", qos=QoS.BATCHED)
        got: list[int] = []

        async def slow_reader() -> None:
            while len(got) < count:
                _, event = await self.receive(sub)
                got.append(int(event.metadata["seq"]))
                if len(got) % 100 == 0:
                    await asyncio.sleep(0.0005)  # slower than the publisher

        reader = asyncio.create_task(slow_reader())
        for i in range(count):
            assert await bus.publish("conf.load", _event(i)) == 1
        await asyncio.wait_for(reader, 30)
        assert got == list(range(count))
        stats = bus.stats("conf.load")
        assert stats is not None and stats.dropped == 0 and stats.delivered == count

    async def test_realtime_burst_keeps_the_queue_bounded(self, bus: EventBus) -> None:
        sub = await bus.subscribe("conf.burst")
        bound = sub.queue.maxsize
        event = _event()  # one object: no copy on delivery, so it may be published again
        publish = bus.publish
        for _ in range(self.burst_size):
            await publish("conf.burst", event)
        await self.settle()
        assert sub.qsize() <= bound
        stats = bus.stats("conf.burst")
        assert stats is not None
        assert stats.published == self.burst_size
        assert stats.dropped >= self.burst_size - bound
