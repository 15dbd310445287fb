"""Subscription.offer: the synchronous delivery a backend uses for many events in a row."""

from __future__ import annotations

import asyncio

from loom import Event, QoS
from loom.bus import Backpressure, DropReason, Policy, Subscription


def _recorder() -> tuple[list[tuple[str, DropReason, bool]], Subscription, Subscription]:
    drops: list[tuple[str, DropReason, bool]] = []

    def on_drop(topic: str, reason: DropReason, was_delivered: bool) -> None:
        drops.append((topic, reason, was_delivered))

    realtime = Subscription(
        "rt", "a.*", qos=QoS.REALTIME, backpressure=Backpressure(queue_size=2), on_drop=on_drop
    )
    blocking = Subscription(
        "bl", "a.*", qos=QoS.BATCHED, backpressure=Backpressure(queue_size=1), on_drop=on_drop
    )
    return drops, realtime, blocking


async def test_offer_queues_filters_and_applies_the_overflow_policy() -> None:
    drops, realtime, _ = _recorder()
    typed = Subscription("ty", "a.*", event_types=("keep",))
    assert typed.offer("a.b", Event("skip")) is False and typed.qsize() == 0
    assert typed.offer("a.b", Event("keep")) is True and typed.qsize() == 1
    events = [Event("e", str(i).encode()) for i in range(3)]
    assert [realtime.offer("a.b", e) for e in events] == [True, True, True]
    # DROP_OLDEST: the first went out to make room, counted as delivered-then-dropped.
    assert drops == [("a.b", DropReason.QUEUE_FULL, True)]
    assert [realtime.get_nowait()[1] for _ in range(2)] == events[1:]


async def test_offer_never_waits_under_block_it_drops_and_reports() -> None:
    drops, _, blocking = _recorder()
    assert blocking.backpressure.policy is Policy.BLOCK
    assert blocking.offer("a.b", Event("one")) is True
    assert blocking.offer("a.b", Event("two")) is False  # full: not queued, no await
    assert drops == [("a.b", DropReason.QUEUE_FULL, False)] and blocking.dropped == 1
    # deliver() on the same subscription still waits for room.
    waiting = asyncio.ensure_future(blocking.deliver("a.b", Event("three")))
    await asyncio.sleep(0)
    assert not waiting.done()
    assert blocking.get_nowait()[1].type == "one"
    assert await asyncio.wait_for(waiting, 1) is True


async def test_offer_to_a_closed_subscription_is_a_counted_drop() -> None:
    drops, realtime, _ = _recorder()
    await realtime.close()
    assert realtime.offer("a.b", Event("late")) is False
    assert drops == [("a.b", DropReason.CLOSED, False)]
