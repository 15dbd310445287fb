"""DeliveryQueue and Backpressure on their own."""

from __future__ import annotations

import asyncio

import pytest

from loom import Event, QoS
from loom.bus import Backpressure, DeliveryQueue, Policy, SubscriptionClosed


def _item(n=0):
    return (f"q.{n}", Event("t"))


@pytest.mark.parametrize("size", [0, -3, 2.0, None])
def test_maxsize_is_validated(size):
    with pytest.raises(ValueError, match="maxsize"):
        DeliveryQueue(size)


async def test_fifo_and_bound():
    q = DeliveryQueue(2)
    q.put_nowait(_item(1))
    q.put_nowait(_item(2))
    assert q.full() and q.qsize() == 2
    with pytest.raises(asyncio.QueueFull):
        q.put_nowait(_item(3))
    assert (await q.get())[0] == "q.1"
    assert q.get_nowait()[0] == "q.2"
    assert q.empty()
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()


async def test_put_waits_for_room():
    q = DeliveryQueue(1)
    await q.put(_item(1))
    waiting = asyncio.ensure_future(q.put(_item(2)))
    await asyncio.sleep(0)
    assert not waiting.done()
    assert q.get_nowait()[0] == "q.1"
    await asyncio.wait_for(waiting, 1)
    assert q.get_nowait()[0] == "q.2"


async def test_get_waits_for_an_item():
    q = DeliveryQueue(1)
    waiting = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.put_nowait(_item(5))
    assert (await asyncio.wait_for(waiting, 1))[0] == "q.5"


async def test_close_keeps_what_is_queued_then_raises():
    q = DeliveryQueue(4)
    q.put_nowait(_item(1))
    q.close()
    q.close()
    assert q.closed and "closed" in repr(q)
    with pytest.raises(SubscriptionClosed):
        q.put_nowait(_item(2))
    with pytest.raises(SubscriptionClosed):
        await q.put(_item(2))
    assert q.get_nowait()[0] == "q.1"
    with pytest.raises(SubscriptionClosed):
        await q.get()
    with pytest.raises(SubscriptionClosed):
        q.get_nowait()


async def test_close_wakes_waiting_readers_and_writers():
    q = DeliveryQueue(1)
    reader = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.close()
    with pytest.raises(SubscriptionClosed):
        await asyncio.wait_for(reader, 1)
    full = DeliveryQueue(1)
    full.put_nowait(_item())
    writer = asyncio.ensure_future(full.put(_item()))
    await asyncio.sleep(0)
    full.close()
    with pytest.raises(SubscriptionClosed):
        await asyncio.wait_for(writer, 1)


async def test_a_cancelled_reader_passes_on_its_wake_up():
    q = DeliveryQueue(4)
    first = asyncio.ensure_future(q.get())
    second = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.put_nowait(_item(1))  # wakes `first` ...
    first.cancel()  # ... which is cancelled before it runs
    assert (await asyncio.wait_for(second, 1))[0] == "q.1"


async def test_a_cancelled_writer_passes_on_its_wake_up():
    q = DeliveryQueue(1)
    q.put_nowait(_item(0))
    first = asyncio.ensure_future(q.put(_item(1)))
    second = asyncio.ensure_future(q.put(_item(2)))
    await asyncio.sleep(0)
    q.get_nowait()  # wakes `first` ...
    first.cancel()  # ... which is cancelled before it runs
    await asyncio.wait_for(second, 1)
    assert q.get_nowait()[0] == "q.2"


def test_backpressure_defaults_per_qos():
    bp = Backpressure()
    assert bp.overflow(QoS.REALTIME) is Policy.DROP_OLDEST
    assert bp.overflow(QoS.BATCHED) is Policy.BLOCK
    assert bp.overflow(QoS.BACKGROUND) is Policy.BLOCK
    sample = Backpressure(Policy.SAMPLE, sample_every=3)
    assert sample.overflow(QoS.REALTIME) is Policy.DROP_OLDEST
    assert sample.overflow(QoS.BATCHED) is Policy.BLOCK


@pytest.mark.parametrize(
    "kwargs",
    [
        {"policy": "block"},
        {"policy": Policy.SAMPLE, "max_rate": float("inf")},
        {"policy": Policy.SAMPLE, "sample_every": 2.5},
        {"policy": Policy.AGGREGATE, "aggregate_key": 3},
        {"queue_size": True},
    ],
)
def test_backpressure_rejects_bad_fields(kwargs):
    with pytest.raises(ValueError):  # noqa: PT011 - the messages are checked in the suite
        Backpressure(**kwargs)
