"""MemoryBus: the conformance suite, plus what only the in-process bus promises."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loom import Event, QoS
from loom.bus import (
    Backpressure,
    BusClosedError,
    DeliveryQueue,
    EventBus,
    MemoryBus,
    Policy,
    SubscriptionClosed,
)
from loom.testing import BusConformance
from loom.topics import matches


class TestMemoryBus(BusConformance):
    async def make_bus(self, **options: Any) -> EventBus:
        return MemoryBus(**options)


@pytest.fixture
async def bus():
    async with MemoryBus() as bus:
        yield bus


def _event(seq=0, type="t"):
    return Event(type, b"", metadata={"seq": str(seq)})


# -- no copy, no wait --------------------------------------------------------------------


async def test_every_subscriber_gets_the_same_object(bus):
    subs = [await bus.subscribe("m.same", qos=qos) for qos in QoS]
    event = _event()
    assert await bus.publish("m.same", event) == 3
    for sub in subs:
        topic, got = sub.get_nowait()
        assert topic == "m.same" and got is event


async def test_delivery_is_done_when_publish_returns(bus):
    sub = await bus.subscribe("m.sync", qos=QoS.BATCHED)
    await bus.publish("m.sync", _event())
    assert sub.qsize() == 1  # no task hop between publish and the queue


# -- options and lifecycle -------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0, -1, 1.5, "10"])
def test_inflight_threshold_is_validated(threshold):
    with pytest.raises(ValueError, match="inflight_threshold"):
        MemoryBus(inflight_threshold=threshold)


def test_unknown_options_are_refused():
    with pytest.raises(TypeError):
        MemoryBus(url="nats://localhost")  # type: ignore[call-arg]


async def test_subscribe_after_shutdown_is_refused():
    bus = MemoryBus()
    await bus.shutdown()
    with pytest.raises(BusClosedError):
        await bus.subscribe("m.late")
    assert bus.stats("m.late") is None


async def test_shutdown_lets_handlers_drain_what_was_queued():
    seen = []

    async def slow(topic, event):
        await asyncio.sleep(0)
        seen.append(int(event.metadata["seq"]))

    bus = MemoryBus()
    sub = await bus.subscribe("m.drain", qos=QoS.BATCHED, handler=slow)
    for i in range(50):
        await bus.publish("m.drain", _event(i))
    await bus.shutdown()
    assert seen == list(range(50))
    assert sub.task is not None and sub.task.done()


async def test_shutdown_cancels_a_handler_that_hangs():
    release = asyncio.Event()

    async def hangs(topic, event):
        await release.wait()

    bus = MemoryBus()
    bus.handler_drain_timeout = 0.05
    sub = await bus.subscribe("m.hang", qos=QoS.BATCHED, handler=hangs)
    await bus.publish("m.hang", _event())
    await asyncio.sleep(0)
    await bus.shutdown()
    assert sub.task is not None and sub.task.cancelled()


async def test_unsubscribe_ends_a_handler_task(bus):
    seen = []
    sub = await bus.subscribe("m.h", qos=QoS.BATCHED, handler=lambda t, e: seen.append(t))
    await bus.publish("m.h", _event())
    await bus.unsubscribe(sub.id)
    assert sub.task is not None
    await asyncio.wait_for(sub.task, 1)
    assert seen == ["m.h"]


async def test_sync_handler_returning_an_awaitable_is_awaited(bus):
    seen = []

    async def record(topic):
        seen.append(topic)

    sub = await bus.subscribe("m.aw", qos=QoS.BATCHED, handler=lambda t, e: record(t))
    await bus.publish("m.aw", _event())
    await bus.unsubscribe(sub.id)
    await asyncio.wait_for(sub.task, 1)
    assert seen == ["m.aw"]


async def test_a_publisher_waiting_for_room_is_released_by_shutdown():
    bus = MemoryBus()
    sub = await bus.subscribe("m.stuck", qos=QoS.BATCHED, backpressure=Backpressure(queue_size=1))
    await bus.publish("m.stuck", _event(0))
    stuck = asyncio.ensure_future(bus.publish("m.stuck", _event(1)))
    await asyncio.sleep(0)
    await bus.shutdown()
    assert await asyncio.wait_for(stuck, 1) == 0
    stats = bus.stats("m.stuck")
    assert stats is not None and stats.dropped_by_reason == {"CLOSED": 1}
    assert stats.backlog == 0
    assert sub.dropped == 1


async def test_a_cancelled_publisher_gives_up_its_place(bus):
    sub = await bus.subscribe("m.cancel", qos=QoS.BATCHED, backpressure=Backpressure(queue_size=1))
    await bus.publish("m.cancel", _event(0))
    first = asyncio.ensure_future(bus.publish("m.cancel", _event(1)))
    second = asyncio.ensure_future(bus.publish("m.cancel", _event(2)))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    assert sub.get_nowait()[1].metadata["seq"] == "0"
    assert await asyncio.wait_for(second, 1) == 1
    assert sub.get_nowait()[1].metadata["seq"] == "2"
    stats = bus.stats("m.cancel")
    assert stats is not None and stats.backlog == 0


async def test_closing_a_shared_queue_drops_with_reason_closed(bus):
    mailbox = DeliveryQueue(4)
    sub = await bus.subscribe("m.mb", qos=QoS.BATCHED, queue=mailbox)
    mailbox.close()
    assert await bus.publish("m.mb", _event()) == 0
    stats = bus.stats("m.mb")
    assert stats is not None and stats.dropped_by_reason == {"CLOSED": 1}
    assert sub.dropped == 1


async def test_unsubscribing_from_a_shared_queue_leaves_it_open(bus):
    mailbox = DeliveryQueue(4)
    a = await bus.subscribe("m.a", qos=QoS.BATCHED, queue=mailbox)
    await bus.subscribe("m.b", qos=QoS.BATCHED, queue=mailbox)
    await bus.unsubscribe(a.id)
    assert not mailbox.closed
    assert await bus.publish("m.a", _event()) == 0
    assert await bus.publish("m.b", _event()) == 1
    assert mailbox.get_nowait()[0] == "m.b"


async def test_subscription_attributes(bus):
    sub = await bus.subscribe(
        "m.*.x",
        qos=QoS.BACKGROUND,
        event_types=["a", "b"],
        backpressure=Backpressure(Policy.DROP_NEWEST, queue_size=7),
    )
    assert sub.pattern == "m.*.x" and sub.qos is QoS.BACKGROUND
    assert sub.event_types == frozenset({"a", "b"})
    assert sub.backpressure.policy is Policy.DROP_NEWEST and sub.queue.maxsize == 7
    assert sub.id.startswith("sub_m.*.x_") and sub.id in repr(sub)
    assert sub.dropped == 0 and sub.errors == 0 and not sub.closed
    assert sub in bus.subscriptions()


async def test_get_nowait_distinguishes_empty_from_closed(bus):
    sub = await bus.subscribe("m.empty")
    with pytest.raises(asyncio.QueueEmpty):
        sub.get_nowait()
    await sub.close()
    with pytest.raises(SubscriptionClosed):
        sub.get_nowait()


# -- the route cache -----------------------------------------------------------------------


async def test_routes_are_cached_and_invalidated_only_where_they_change(bus):
    await bus.subscribe("c.a")
    for topic in ("c.a", "c.b", "d.a"):
        await bus.publish(topic, _event())
    routes = bus._routes
    assert set(routes) == {"c.a", "c.b", "d.a"}
    kept = routes["d.a"]
    await bus.subscribe("c.*")  # matches c.a and c.b only
    assert set(routes) == {"d.a"} and routes["d.a"] is kept
    await bus.subscribe("c.b")
    await bus.publish("c.b", _event())
    assert len(routes["c.b"].subs) == 2
    await bus.subscribe("x.y")  # exact: invalidates only its own topic
    assert "c.b" in routes and "d.a" in routes


async def test_route_cache_is_bounded():
    bus = MemoryBus()
    bus._table._max_cached = 16
    sub = await bus.subscribe("b.>", qos=QoS.BACKGROUND)
    for i in range(100):
        assert await bus.publish(f"b.{i}", _event(i)) == 1
    assert len(bus._routes) == 16
    assert sub.qsize() == 100
    stats = bus.stats("b.3")  # statistics outlive the cache entry
    assert stats is not None and stats.published == 1 and stats.active_subscriptions == 1
    await bus.shutdown()


async def test_stats_after_shutdown_report_no_active_subscriptions():
    bus = MemoryBus()
    await bus.subscribe("s.t")
    await bus.publish("s.t", _event())
    await bus.shutdown()
    stats = bus.stats("s.t")
    assert stats is not None and stats.published == 1 and stats.active_subscriptions == 0


# -- routing agrees with the topic rules -----------------------------------------------------

_tokens = st.sampled_from(["a", "b", "c"])
_topics = st.lists(_tokens, min_size=1, max_size=4).map(".".join)
_patterns = (
    st.lists(st.sampled_from(["a", "b", "*"]), min_size=1, max_size=3)
    .flatmap(lambda tokens: st.sampled_from([tokens, [*tokens, ">"]]))
    .map(".".join)
)


@settings(max_examples=150, deadline=None)
@given(
    patterns=st.lists(_patterns, min_size=1, max_size=8),
    topics=st.lists(_topics, min_size=1, max_size=8),
    drop=st.sets(st.integers(0, 7)),
)
def test_routing_agrees_with_brute_force_matching(patterns, topics, drop):
    async def scenario():
        bus = MemoryBus()
        subs = [await bus.subscribe(p, qos=QoS.BACKGROUND) for p in patterns]
        for round_ in range(2):  # before and after some unsubscribes
            live = [s for s in subs if not s.closed]
            for topic in topics:
                expected = {s.id for s in live if matches(s.pattern, topic)}
                delivered = await bus.publish(topic, _event())
                got = {s.id for s in live if s.qsize()}
                for s in live:
                    while s.qsize():
                        s.get_nowait()
                assert got == expected and delivered == len(expected)
                stats = bus.stats(topic)
                assert stats is not None and stats.active_subscriptions == len(expected)
            if round_ == 0:
                for i in drop:
                    if i < len(subs):
                        await bus.unsubscribe(subs[i].id)
        await bus.shutdown()

    asyncio.run(scenario())


async def test_statistics_of_unused_topics_are_bounded():
    bus = MemoryBus(max_topics=100)
    await bus.start()
    kept = await bus.subscribe("kept.topic", qos=QoS.BATCHED)
    await bus.publish("kept.topic", Event("t"))
    for i in range(5_000):  # one fresh topic per request thread, as collab does
        await bus.publish(f"thread.t{i}.reply", Event("t"))
    assert len(bus.all_stats()) <= 100
    assert bus.stats("kept.topic").published == 1  # a subscribed topic is never forgotten
    assert bus.stats("thread.t4999.reply").published == 1  # the newest are kept
    assert bus.stats("thread.t0.reply") is None  # the oldest unused ones are forgotten
    assert kept.qsize() == 1
    await bus.shutdown()


def test_max_topics_must_be_positive():
    with pytest.raises(ValueError, match="max_topics"):
        MemoryBus(max_topics=0)
