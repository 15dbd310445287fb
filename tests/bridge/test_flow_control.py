"""Bounded queues under a client that does not read: Batched back-pressures the publisher,
Realtime drops (counted), and the server's memory stops growing either way."""

from __future__ import annotations

import asyncio

import pytest

from loom import Event
from loom.v1 import bridge_pb2

BIG = bytes(32 * 1024)


async def _stalled_count(counter, settle: float = 0.5, timeout: float = 10.0) -> int:
    """Wait until ``counter()`` stops moving for ``settle`` seconds; return its value."""
    async with asyncio.timeout(timeout):
        last = -1
        while (now := counter()) != last:
            last = now
            await asyncio.sleep(settle)
    return last


async def test_a_client_that_does_not_read_back_pressures_batched_publishers(
    make_bridge, bus, raw, until
):
    server = await make_bridge(outbound_queue=8)
    stream = await raw(server.address).open("slow", ["flood"])
    await until(lambda: server.hub.session("slow") is not None)
    published = 0

    async def publish_forever() -> None:
        nonlocal published
        while True:
            await bus.publish("flood", Event("big", BIG, metadata={"seq": str(published)}))
            published += 1

    publisher = asyncio.create_task(publish_forever())
    try:
        stalled_at = await _stalled_count(lambda: published)
        session = server.hub.session("slow")
        assert session.queue.qsize() <= 8
        # What sits in gRPC's transport buffers is bounded too: a few MB, not the stream.
        assert stalled_at < 400, f"{stalled_at} events of 32 KB went out to a client not reading"
        assert not publisher.done()

        # The client reads: everything arrives, in order, nothing dropped.
        for seq in range(stalled_at + 50):
            message = await stream.read()
            assert message.delivery.event.metadata["seq"] == str(seq)
    finally:
        publisher.cancel()
    assert bus.stats("flood").dropped == 0


async def test_a_client_that_does_not_read_loses_realtime_events_counted(
    make_bridge, bus, raw, until
):
    server = await make_bridge(outbound_queue=8)
    stream = await raw(server.address).open("lossy", ["ticks"], metadata={"qos": "realtime"})
    await until(lambda: server.hub.session("lossy") is not None)
    for i in range(2_000):
        await bus.publish("ticks", Event("tick", BIG, metadata={"seq": str(i)}))
        await asyncio.sleep(0)  # a Realtime publisher never waits: let the writer run
    stats = bus.stats("ticks")
    assert stats.dropped > 0  # the publisher never waited; the overflow was counted
    assert server.hub.session("lossy").queue.qsize() <= 8
    # What it does read is in order, and ends with the freshest events.
    seqs = []
    async with asyncio.timeout(10):
        while not seqs or seqs[-1] != 1999:
            seqs.append(int((await stream.read()).delivery.event.metadata["seq"]))
    assert seqs == sorted(seqs) and len(seqs) < 2_000


async def test_control_messages_wait_for_room_and_fail_once_the_stream_ends():
    # The queue of pongs, errors and action calls of one stream, driven directly: a
    # client that pings without reading fills it, and then its reader waits.
    from loom_bridge import BridgeConfig
    from loom_bridge._registration import Registration
    from loom_bridge._session import SessionClosed, SessionEnd, StreamSession

    session = StreamSession(Registration("a"), BridgeConfig(control_queue=2))
    pong = bridge_pb2.ServerEvent(pong=bridge_pb2.HeartbeatResponse(status="ok"))
    await session.send(pong)
    await session.send(pong)
    third = asyncio.create_task(session.send(pong))
    await asyncio.sleep(0.05)
    assert not third.done() and session.control_size() == 2
    assert (await session.next_message()).WhichOneof("msg") == "pong"  # the writer took one
    await asyncio.wait_for(third, 1)
    assert session.control_size() == 2
    fourth = asyncio.create_task(session.send(pong))
    await asyncio.sleep(0.05)
    session.end(SessionEnd("UNAVAILABLE", "gone"))
    with pytest.raises(SessionClosed):
        await asyncio.wait_for(fourth, 1)
