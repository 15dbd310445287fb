"""What NatsBus promises beyond the conformance suite: buses that share a server, durable
consumers, replay, backpressure across the network, bad input."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from loom import Event, QoS
from loom.bus import Backpressure, BusClosedError, Policy
from loom.errors import InvalidEventError, InvalidTopicError
from loom_nats import (
    NatsBus,
    NatsError,
    NatsUnavailableError,
    PublishError,
    StreamConfigError,
    StreamLimits,
)

pytestmark = pytest.mark.nats

LIMITS = StreamLimits(max_age=600, duplicate_window=60)


def ev(seq: int, type: str = "t.event", **metadata: str) -> Event:
    return Event(type, b"payload", source="test", metadata={"seq": str(seq), **metadata})


def seqs(items) -> list[int]:
    return [int(event.metadata["seq"]) for _, event in items]


async def read(sub, n: int, timeout: float = 5.0):
    return [await asyncio.wait_for(sub.get(), timeout) for _ in range(n)]


def make(url: str, prefix: str, **options) -> NatsBus:
    options.setdefault("limits", LIMITS)
    return NatsBus(url, prefix=prefix, **options)


async def raw_js(url: str):
    import nats

    nc = await nats.connect(url)
    return nc, nc.jetstream()


# -- two buses on one server ----------------------------------------------------------------


async def test_two_buses_exchange_events_both_ways(nats_url, prefix):
    async with make(nats_url, prefix) as a, make(nats_url, prefix) as b:
        on_b = await b.subscribe("x.>", qos=QoS.BATCHED)
        on_a = await a.subscribe("y.*")
        assert await a.publish("x.one", ev(1)) == 0  # b's subscription is not a's to count
        assert await b.publish("y.two", ev(2)) == 0
        ((topic_b, got_b),), ((topic_a, got_a),) = await read(on_b, 1), await read(on_a, 1)
        assert (topic_b, got_b.metadata["seq"], got_b.source) == ("x.one", "1", "test")
        assert (topic_a, got_a.metadata["seq"]) == ("y.two", "2")
        assert b.stats("x.one").delivered == 1 and b.stats("x.one").published == 0
        assert a.stats("x.one").published == 1


async def test_request_reply_between_buses(nats_url, prefix):
    async with make(nats_url, prefix) as client, make(nats_url, prefix) as server:

        async def answer(topic: str, event: Event) -> None:
            await server.publish(event.reply_to, ev(int(event.metadata["seq"]) * 10, "reply"))

        await server.subscribe("svc.double", handler=answer)
        replies = await client.subscribe("agent.client.replies")
        for i in range(1, 4):
            request = ev(i).with_reply_to("agent.client.replies")
            await client.publish("svc.double", request)
            ((_, reply),) = await read(replies, 1)
            assert reply.type == "reply" and reply.metadata["seq"] == str(i * 10)


async def test_prefixes_keep_buses_apart(nats_url, prefix):
    other = prefix + "o"
    async with make(nats_url, prefix) as a, make(nats_url, other) as b:
        try:
            sub = await b.subscribe(">", qos=QoS.BATCHED)
            await a.publish("shared.topic", ev(1))
            assert await b.settle()
            assert sub.qsize() == 0
            assert (await a.stream_info()).config.subjects == [f"{prefix}.>"]
        finally:
            nc, js = await raw_js(nats_url)
            await js.delete_stream(b.stream)
            await nc.close()


# -- JetStream: durability and persistence --------------------------------------------------


async def test_events_published_while_a_durable_subscriber_is_down_wait_for_it(nats_url, prefix):
    publisher = make(nats_url, prefix)
    await publisher.start()
    try:
        async with make(nats_url, prefix, name="host-b") as first:
            sub = await first.subscribe("orders.>", qos=QoS.BATCHED)
            await publisher.publish("orders.new", ev(0))
            assert seqs(await read(sub, 1)) == [0]
        for i in range(1, 21):  # host-b is down
            await publisher.publish("orders.new", ev(i))
        async with make(nats_url, prefix, name="host-b") as again:
            sub = await again.subscribe("orders.>", qos=QoS.BATCHED)
            assert seqs(await read(sub, 20)) == list(range(1, 21))
            assert await again.settle() and sub.qsize() == 0  # nothing twice
    finally:
        await publisher.shutdown()


async def test_explicit_durable_name_and_delete(nats_url, prefix):
    async with make(nats_url, prefix) as bus:
        sub = await bus.subscribe("jobs.*", qos=QoS.BACKGROUND, durable="worker")
        with pytest.raises(ValueError, match="in use"):
            await bus.subscribe("jobs.*", qos=QoS.BATCHED, durable="worker")
        with pytest.raises(ValueError, match="live subscription"):
            await bus.delete_durable("worker")
        await sub.close()
        await bus.publish("jobs.a", ev(1))
        sub = await bus.subscribe("jobs.*", qos=QoS.BACKGROUND, durable="worker")
        assert seqs(await read(sub, 1)) == [1]  # kept by the durable while unsubscribed
        await sub.close()
        assert await bus.delete_durable("worker") is True
        assert await bus.delete_durable("worker") is False
        await bus.publish("jobs.a", ev(2))
        sub = await bus.subscribe("jobs.*", qos=QoS.BACKGROUND, durable="worker")
        await bus.publish("jobs.a", ev(3))
        assert seqs(await read(sub, 1)) == [3]  # a new durable starts at the newest


async def test_identical_subscriptions_of_a_named_bus_each_get_everything(nats_url, prefix):
    async with make(nats_url, prefix, name="twin") as bus:
        one = await bus.subscribe("t.x", qos=QoS.BATCHED)
        two = await bus.subscribe("t.x", qos=QoS.BATCHED)
        for i in range(5):
            assert await bus.publish("t.x", ev(i)) == 2
        assert seqs(await read(one, 5)) == seqs(await read(two, 5)) == list(range(5))


async def test_durable_with_another_filter_is_refused(nats_url, prefix):
    async with make(nats_url, prefix) as bus:
        sub = await bus.subscribe("a.>", qos=QoS.BATCHED, durable="d1")
        await sub.close()
        with pytest.raises(StreamConfigError, match=r"filter .*a\.>"):
            await bus.subscribe("b.>", qos=QoS.BATCHED, durable="d1")
        await bus.publish("a.x", ev(1))  # the bus goes on


async def test_slow_batched_reader_backpressures_and_loses_nothing(nats_url, prefix):
    async with make(nats_url, prefix, max_inflight=16) as bus:
        sub = await bus.subscribe(
            "slow.x", qos=QoS.BATCHED, backpressure=Backpressure(queue_size=8)
        )
        for i in range(300):
            assert await bus.publish("slow.x", ev(i)) == 1  # the publisher never waits
        await bus.settle()
        await asyncio.sleep(0.2)
        nc, js = await raw_js(nats_url)
        try:
            (consumer,) = await js.consumers_info(bus.stream)
        finally:
            await nc.close()
        assert sub.qsize() == 8
        # At most one window requested ahead; the stream holds the rest.
        assert consumer.num_ack_pending <= 16 + 1
        assert consumer.num_pending >= 300 - 8 - 16 - 1
        assert bus.stats("slow.x").backlog == 1  # one event waits for room
        got: list[int] = []
        while len(got) < 300:
            ((_, event),) = await read(sub, 1)
            got.append(int(event.metadata["seq"]))
        assert got == list(range(300))
        stats = bus.stats("slow.x")
        assert stats.dropped == 0 and stats.delivered == 300 and stats.backlog == 0


async def test_policies_apply_on_the_receiving_side(nats_url, prefix):
    async with make(nats_url, prefix) as sender, make(nats_url, prefix) as receiver:
        latest = await receiver.subscribe(
            "room.*",
            qos=QoS.BATCHED,
            backpressure=Backpressure(Policy.AGGREGATE, aggregate_key="room"),
        )
        sampled = await receiver.subscribe(
            "room.*", qos=QoS.BATCHED, backpressure=Backpressure(Policy.SAMPLE, sample_every=5)
        )
        for i in range(20):
            await sender.publish("room.t", ev(i, room="ab"[i % 2]))
        assert await receiver.settle()
        assert [
            (e.metadata["room"], e.metadata["seq"])
            for _, e in [latest.get_nowait(), latest.get_nowait()]
        ] == [("a", "18"), ("b", "19")]
        assert seqs([sampled.get_nowait() for _ in range(sampled.qsize())]) == [0, 5, 10, 15]
        stats = receiver.stats("room.t")
        assert stats.dropped_by_reason == {"AGGREGATED": 18, "SAMPLED": 16}


@pytest.mark.parametrize("mode", ["ack", "async", "core"])
async def test_aggregate_by_function_and_after_read(nats_url, prefix, mode):
    """The conformance test of the same name, with the settle() a network needs."""
    async with make(nats_url, prefix, publish_mode=mode) as bus:
        bp = Backpressure(Policy.AGGREGATE, aggregate_key=lambda e: e.type)
        sub = await bus.subscribe("conf.agg", qos=QoS.BATCHED, backpressure=bp)
        await bus.publish("conf.agg", ev(0, type="a"))
        await bus.publish("conf.agg", ev(1, type="a"))
        assert await bus.settle()
        assert seqs(await read(sub, 1)) == [1]
        await bus.publish("conf.agg", ev(2, type="a"))  # the key left the queue: new place
        await bus.publish("conf.agg", ev(3, type="b"))
        assert await bus.settle()
        assert seqs([sub.get_nowait() for _ in range(sub.qsize())]) == [2, 3]


# -- replay ------------------------------------------------------------------------------------


async def _history(bus: NatsBus) -> datetime:
    for i in range(5):
        await bus.publish("hist.a", ev(i))
    await bus.publish("other.b", ev(99))
    await asyncio.sleep(0.05)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.05)
    for i in range(5, 10):
        await bus.publish("hist.a", ev(i))
    return middle


async def test_replay_from_sequence_and_from_time(nats_url, prefix):
    async with make(nats_url, prefix) as bus:
        middle = await _history(bus)
        by_seq = [r async for r in bus.replay("hist.a", from_seq=3)]
        assert [int(r.event.metadata["seq"]) for r in by_seq] == list(range(2, 10))
        assert [r.seq for r in by_seq] == [3, 4, 5, 7, 8, 9, 10, 11]  # seq 6 is other.b
        assert all(r.topic == "hist.a" for r in by_seq)
        by_time = [r async for r in bus.replay("hist.>", from_time=middle)]
        assert [int(r.event.metadata["seq"]) for r in by_time] == list(range(5, 10))
        assert all(r.stored_at >= middle for r in by_time)
        epoch = [r async for r in bus.replay(">", from_time=middle.timestamp(), limit=2)]
        assert [r.seq for r in epoch] == [7, 8]
        everything = [r async for r in bus.replay(">", from_seq=1)]
        assert len(everything) == 11
        assert [r async for r in bus.replay(">", from_seq=500)] == []
        typed = [r async for r in bus.replay(">", from_seq=1, event_types=["none"])]
        assert typed == []
        for bad in ({}, {"from_seq": 1, "from_time": middle}, {"from_seq": 0}):
            with pytest.raises(ValueError, match="from_"):
                [r async for r in bus.replay(">", **bad)]
        with pytest.raises(ValueError, match="time zone"):
            [r async for r in bus.replay(">", from_time=datetime.now())]


async def test_subscribe_with_replay_gets_history_then_live(nats_url, prefix):
    async with make(nats_url, prefix) as bus:
        middle = await _history(bus)
        # Stream sequences: hist.a 0..4 are 1..5, other.b is 6, hist.a 5..9 are 7..11.
        from_seq = await bus.subscribe("hist.a", qos=QoS.BATCHED, replay_from_seq=10)
        from_time = await bus.subscribe("hist.*", qos=QoS.BACKGROUND, replay_from_time=middle)
        await bus.publish("hist.a", ev(10))
        assert seqs(await read(from_seq, 3)) == [8, 9, 10]
        assert seqs(await read(from_time, 6)) == [5, 6, 7, 8, 9, 10]
        durable = await bus.subscribe("hist.a", qos=QoS.BATCHED, durable="rw", replay_from_seq=11)
        assert seqs(await read(durable, 2)) == [9, 10]
        await durable.close()
        durable = await bus.subscribe("hist.a", qos=QoS.BATCHED, durable="rw", replay_from_seq=12)
        assert seqs(await read(durable, 1)) == [10]  # a replay rewinds the durable
        with pytest.raises(ValueError, match="Realtime"):
            await bus.subscribe("hist.a", replay_from_seq=1)
        with pytest.raises(ValueError, match="Realtime"):
            await bus.subscribe("hist.a", durable="rt")


async def test_replay_rebuilds_an_agents_state(nats_url, prefix):
    """The state a consumer built from its input can be rebuilt from the stream alone."""
    async with make(nats_url, prefix) as bus:
        balance: dict[str, int] = {}
        sub = await bus.subscribe("ledger.>", qos=QoS.BATCHED)
        for account, amount in [("a", 5), ("b", 7), ("a", -2), ("c", 1), ("b", 3)]:
            await bus.publish(f"ledger.{account}", Event("credit", str(amount).encode()))
        for topic, event in await read(sub, 5):
            account = topic.split(".")[1]
            balance[account] = balance.get(account, 0) + int(event.payload)
        rebuilt: dict[str, int] = {}
        async for item in bus.replay("ledger.>", from_seq=1):
            account = item.topic.split(".")[1]
            rebuilt[account] = rebuilt.get(account, 0) + int(item.event.payload)
        assert rebuilt == balance == {"a": 3, "b": 10, "c": 1}


# -- bad input ---------------------------------------------------------------------------------


async def test_message_that_is_not_an_event_is_counted_and_skipped(
    nats_url, prefix, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="loom.nats")
    async with make(nats_url, prefix) as bus:
        realtime = await bus.subscribe("bad.>")
        batched = await bus.subscribe("bad.>", qos=QoS.BATCHED)
        nc, js = await raw_js(nats_url)
        try:
            await js.publish(f"{prefix}.bad.x", b"not a loom event")
            await js.publish(f"{prefix}.bad.x", b"")
            await bus.publish("bad.x", ev(1))
            assert seqs(await read(realtime, 1)) == [1]
            assert seqs(await read(batched, 1)) == [1]
            assert await bus.settle()
            (consumer,) = await js.consumers_info(bus.stream)
        finally:
            await nc.close()
        assert bus.nats_stats().undecodable == {f"{prefix}.bad.x": 4}  # 2 each way
        assert consumer.num_ack_pending == 0 and consumer.num_redelivered == 0  # terminated
        assert f"{prefix}.bad.x" in caplog.text and "not a loom.v1.Event" in caplog.text
        assert realtime.qsize() == batched.qsize() == 0


async def test_bad_topics_events_and_options(nats_url, prefix):
    async with make(nats_url, prefix) as bus:
        with pytest.raises(InvalidTopicError, match="bytes as a NATS subject"):
            await bus.publish("é" * 1020, ev(1))
        with pytest.raises(InvalidEventError, match="max_payload"):
            await bus.publish("big", Event("t", bytes(2 << 20)))
        with pytest.raises(InvalidEventError, match="cannot be encoded"):
            await bus.publish("t", Event("t", metadata={"k": 3}))  # type: ignore[dict-item]
        await bus.publish("after.bad", ev(1))  # still works
    for options, message in [
        ({"publish_mode": "fast"}, "publish_mode"),
        ({"prefix": "a.*"}, "prefix"),
        ({"stream": "has.dot"}, "stream"),
        ({"name": "x y"}, "name"),
        ({"ack_timeout": 0}, "ack_timeout"),
        ({"max_inflight": 1.5}, "max_inflight"),
        ({"servers": ""}, "servers"),
        ({"limits": {"max_age": -1}}, "max_age"),
        ({"limits": {"colour": 1}}, "unknown stream limit"),
        ({"tls_key": "k.pem"}, "tls_cert"),
    ]:
        with pytest.raises(ValueError, match=message):
            NatsBus(**{"servers": nats_url, **options})


async def test_not_started_and_closed(nats_url, prefix):
    bus = make(nats_url, prefix)
    with pytest.raises(NatsError, match="not started"):
        await bus.publish("a", ev(1))
    with pytest.raises(NatsError, match="not started"):
        await bus.subscribe("a")
    await bus.start()
    await bus.start()  # idempotent
    await bus.shutdown()
    assert await bus.publish("a", ev(1)) == 0
    with pytest.raises(BusClosedError, match="shut down"):
        await bus.start()


async def test_unreachable_server_and_wrong_credentials(nats_server_factory):
    with pytest.raises(
        NatsUnavailableError, match=r"cannot connect to NATS at nats://127\.0\.0\.1:1"
    ):
        await NatsBus("nats://127.0.0.1:1", connect_timeout=0.5, reconnect_wait=0.1).start()
    url = nats_server_factory("--user", "loom", "--pass", "secret")
    # The server answers wrong credentials with an authorization error, or (a race on its
    # side) by resetting the connection first; either way the bus names the server.
    with pytest.raises(
        NatsUnavailableError, match=r"refused the credentials|cannot connect to NATS at nats://"
    ):
        await NatsBus(url, user="loom", password="wrong", reconnect_wait=0.1).start()
    async with NatsBus(url, prefix="cred", user="loom", password="secret") as bus:
        sub = await bus.subscribe("ok")
        await bus.publish("ok", ev(1))
        assert seqs(await read(sub, 1)) == [1]


async def test_server_without_jetstream(nats_server_factory):
    url = nats_server_factory(jetstream=False)
    with pytest.raises(NatsUnavailableError, match="JetStream"):
        await NatsBus(url).start()


async def test_stream_config_refused_and_updated(nats_url, prefix):
    nc, js = await raw_js(nats_url)
    try:
        await js.add_stream(LIMITS.stream_config("SQUATTER" + prefix.upper(), [f"{prefix}.x.>"]))
        with pytest.raises(StreamConfigError, match="overlap"):
            await make(nats_url, prefix).start()
        await js.delete_stream("SQUATTER" + prefix.upper())
        async with make(
            nats_url, prefix, limits=StreamLimits(max_age=60, duplicate_window=10)
        ) as a:
            assert (await a.stream_info()).config.max_age == 60
        async with make(nats_url, prefix, limits={"max_age": 0, "max_msgs": 1000}) as b:
            config = (await b.stream_info()).config
            assert (config.max_age, config.max_msgs) == (0, 1000)
        # Off, the stream is the operators': used as it is, its limits untouched.
        async with make(nats_url, prefix, create_stream=False) as c:
            config = (await c.stream_info()).config
            assert (config.max_age, config.max_msgs) == (0, 1000)
        with pytest.raises(StreamConfigError, match="create_stream is off"):
            await make(nats_url, prefix + "none", create_stream=False).start()
    finally:
        await nc.close()


async def test_discard_new_makes_a_full_stream_refuse_publishes(nats_url, prefix):
    limits = StreamLimits(max_msgs=3, discard="new", duplicate_window=10)
    async with make(nats_url, prefix, limits=limits) as bus:
        for i in range(3):
            await bus.publish("full", ev(i))
        with pytest.raises(PublishError, match="refused"):
            await bus.publish("full", ev(3))
        assert bus.stats("full").published == 3
    async with make(nats_url, prefix, limits=limits, publish_mode="async") as bus:
        await bus.publish("full", ev(4))
        with pytest.raises(PublishError, match="1 publishes were refused"):
            await bus.flush()
        assert bus.nats_stats().publish_failures == 1


async def test_republished_event_is_stored_once(nats_url, prefix):
    async with make(nats_url, prefix) as bus:
        event = ev(1)
        await bus.publish("dup", event)
        await bus.publish("dup", event)  # as a retry after a lost PubAck would
        assert (await bus.stream_info()).state.messages == 1
        assert bus.stats("dup").published == 2
