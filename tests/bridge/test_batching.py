"""Batched deliveries (``ServerEvent.delivery_batch``, field 5): only for a client that asks
with registration metadata ``loom.delivery_batch``; upstream clients never see them."""

from __future__ import annotations

import asyncio
from itertools import islice

import pytest

from loom import Event, QoS
from loom.errors import InvalidEventError, ProtocolError
from loom.v1 import bridge_pb2, event_pb2
from loom_bridge import BridgeConfigError, ClientConfig, ErrorCode, RemoteAgent
from loom_bridge._batch import decode_batch, encode_batch, fill_batch

KEY = "loom.delivery_batch"


def unpack(message: bridge_pb2.ServerEvent) -> list[tuple[str, event_pb2.Event]]:
    """What a client written against the generated stubs does with either variant, following
    docs/bridge.md (no SDK code): the columns, entry i of each belonging to delivery i."""
    kind = message.WhichOneof("msg")
    if kind == "delivery":
        return [(message.delivery.topic, message.delivery.event)]
    assert kind == "delivery_batch", kind
    b = message.delivery_batch
    pairs = zip(b.metadata_keys, b.metadata_values, strict=True)
    tags = iter(b.tags)
    out = []
    for i, topic in enumerate(b.topics):
        event = event_pb2.Event(
            id=b.ids[i],
            type=b.types[i],
            timestamp_ms=b.timestamps_ms[i],
            source=b.sources[i],
            metadata=dict(islice(pairs, b.metadata_counts[i])),
            payload=b.payloads[i],
            confidence=b.confidences[i],
            tags=list(islice(tags, b.tag_counts[i])),
            priority=b.priorities[i],
        )
        out.append((topic, event))
    return out


async def read_deliveries(stream, n: int) -> tuple[list[tuple[str, event_pb2.Event]], list[str]]:
    """Read until ``n`` deliveries arrived; them, and the kind of each message read."""
    got: list[tuple[str, event_pb2.Event]] = []
    kinds: list[str] = []
    while len(got) < n:
        message = await stream.read()
        kinds.append(message.WhichOneof("msg"))
        got.extend(unpack(message))
    return got, kinds


async def publish_queued(bus, topic: str, n: int, **fields) -> None:
    for i in range(n):
        await bus.publish(topic, Event("tick", b"x" * 10, metadata={"seq": str(i)}, **fields))


async def test_an_upstream_client_never_gets_a_batch(bridge, bus, raw, until):
    stream = await raw().open("old", ["t"])  # no loom.delivery_batch in its metadata
    await until(lambda: bridge.hub.session("old") is not None)
    await publish_queued(bus, "t", 300)  # queued before the client reads: batchable
    got, kinds = await read_deliveries(stream, 300)
    assert set(kinds) == {"delivery"}
    assert [e.metadata["seq"] for _, e in got] == [str(i) for i in range(300)]


async def test_a_client_that_asks_gets_batches_in_order(bridge, bus, raw, until):
    stream = await raw().open("new", ["t.>"], metadata={KEY: "50"})
    await until(lambda: bridge.hub.session("new") is not None)
    assert bridge.hub.registration("new").delivery_batch == 50
    await publish_queued(bus, "t.a", 300)
    got, kinds = await read_deliveries(stream, 300)
    assert "delivery_batch" in kinds
    assert len(kinds) < 300
    assert [e.metadata["seq"] for _, e in got] == [str(i) for i in range(300)]
    assert {t for t, _ in got} == {"t.a"}


async def test_every_event_field_crosses_in_a_batch(bridge, bus, raw, until):
    stream = await raw().open("full", ["f.*"], metadata={KEY: "8"})
    await until(lambda: bridge.hub.session("full") is not None)
    sent = [
        Event(
            "full",
            b"\x00\xff" * i,
            id=f"e-{i}",
            timestamp_ms=1234 + i,
            source=f"agent.{i}",
            metadata={f"k{j}": "v" * j for j in range(i % 3)},
            confidence=0.5,
            tags=tuple(f"tag{j}" for j in range(i % 4)),
            priority=i * 10,
        )
        for i in range(6)
    ]
    for i, event in enumerate(sent):
        await bus.publish(f"f.{i}", event)
    got, kinds = await read_deliveries(stream, 6)
    assert "delivery_batch" in kinds
    assert [t for t, _ in got] == [f"f.{i}" for i in range(6)]
    assert [Event.from_proto(e) for _, e in got] == sent


async def test_the_server_caps_the_batch(make_bridge, bus, raw, until):
    server = await make_bridge(max_delivery_batch=10)
    stream = await raw(server.address).open("greedy", ["t"], metadata={KEY: "100000"})
    await until(lambda: server.hub.session("greedy") is not None)
    await publish_queued(bus, "t", 100)
    sizes = []
    while sum(sizes) < 100:
        sizes.append(len(unpack(await stream.read())))
    assert max(sizes) == 10


async def test_batches_stay_well_under_the_message_limit(make_bridge, bus, raw, until):
    # 4 KiB events, a 64 KiB limit: a batch may hold at most 8 KiB of characters (an
    # eighth), so 256 queued events go out in many batches, in order, none refused.
    server = await make_bridge(max_message_bytes=64 * 1024)
    stream = await raw(server.address).open("sized", ["t"], metadata={KEY: "256"})
    await until(lambda: server.hub.session("sized") is not None)
    for i in range(256):
        await bus.publish("t", Event("big", bytes(4096), metadata={"seq": str(i)}))
    seqs = []
    while len(seqs) < 256:
        message = await stream.read()
        assert message.ByteSize() <= 32 * 1024
        seqs.extend(int(e.metadata["seq"]) for _, e in unpack(message))
    assert seqs == list(range(256))


async def test_overlapping_patterns_deliver_once_in_batches(bridge, bus, raw, until):
    stream = await raw().open("dup", ["x.*", "x.>"], metadata={KEY: "64"})
    await until(lambda: bridge.hub.session("dup") is not None)
    for i in range(100):
        await bus.publish("x.y", Event("e", metadata={"seq": str(i)}))
    got, _ = await read_deliveries(stream, 100)
    assert [e.metadata["seq"] for _, e in got] == [str(i) for i in range(100)]
    await stream.send(bridge_pb2.ClientEvent(ping=bridge_pb2.HeartbeatRequest()))
    assert (await stream.read()).WhichOneof("msg") == "pong"  # nothing repeated before it


@pytest.mark.parametrize("value", ["0", "-3", "many", "", "1e3", "9" * 30])
async def test_a_bad_batch_size_is_refused_naming_the_key(bridge, raw, value):
    response = await raw().register("a", ["t"], metadata={KEY: value})
    assert not response.success
    assert KEY in response.error_message and repr(value) in response.error_message
    assert bridge.hub.registration("a") is None


def test_client_config_checks_the_batch_size():
    with pytest.raises(BridgeConfigError, match="delivery_batch"):
        ClientConfig(delivery_batch=0)


async def test_the_sdk_asks_for_batches_and_unpacks_them(bridge, bus, client_config, until):
    got: list[str] = []

    async def handler(ctx, event):
        got.append(event.metadata["seq"])

    agent = RemoteAgent("sdk", handler, topics=["s"], config=client_config)
    async with agent:
        await until(lambda: bridge.hub.session("sdk") is not None)
        assert bridge.hub.registration("sdk").delivery_batch == 256
        await publish_queued(bus, "s", 1000)
        await until(lambda: len(got) == 1000)
    assert got == [str(i) for i in range(1000)]


async def test_an_sdk_agent_can_ask_for_no_batches(bridge, client_config, until):
    agent = RemoteAgent(
        "plain", lambda ctx, e: None, config=client_config.replace(delivery_batch=1)
    )
    async with agent:
        await until(lambda: bridge.hub.session("plain") is not None)
        assert bridge.hub.registration("plain").delivery_batch == 1
        assert KEY not in bridge.hub.registration("plain").metadata


# -- the codec, directly ----------------------------------------------------------------------


def _batch(n: int = 3) -> bridge_pb2.EventBatch:
    items = [(f"t.{i}", Event("e", metadata={"k": str(i)}, tags=("a",))) for i in range(n)]
    message, used = encode_batch(items, 1 << 20)
    assert used == n
    return message.delivery_batch


def test_the_codec_round_trips():
    items = [(f"t.{i}", Event("e", bytes([i]), metadata={"k": str(i)}, tags=("a",) * i))
             for i in range(5)]  # fmt: skip
    message, used = encode_batch(items, 1 << 20)
    assert used == 5
    assert decode_batch(message.delivery_batch) == items


def test_the_encoder_cuts_a_batch_at_the_budget():
    items = [("t", Event("e", bytes(1000))) for _ in range(10)]
    message, used = encode_batch(items, 3500)
    assert used == 3 and len(message.delivery_batch.topics) == 3
    # One delivery over the budget still goes, alone.
    message, used = encode_batch(items[:2], 10)
    assert used == 1


@pytest.mark.parametrize(
    ("spoil", "words"),
    [
        (lambda b: b.ids.append("extra"), "column ids holds 4 entries for 3 topics"),
        (lambda b: b.metadata_keys.append("k"), "metadata_counts add up to 3"),
        (lambda b: b.metadata_values.append("v"), "metadata_values"),
        (lambda b: b.tags.append("t"), "tag_counts add up to 3"),
        (lambda b: b.priorities.__setitem__(1, 101), "priority of 101"),
        (lambda b: b.priorities.__setitem__(0, -1), "priority of -1"),
    ],
)
def test_a_malformed_batch_is_refused_whole(spoil, words):
    batch = _batch()
    spoil(batch)
    with pytest.raises(ProtocolError, match=words):
        decode_batch(batch)


async def test_batched_realtime_streams_still_drop_counted(make_bridge, bus, raw, until):
    server = await make_bridge(outbound_queue=8)
    stream = await raw(server.address).open(
        "lossy", ["ticks"], metadata={"qos": "realtime", KEY: "4"}
    )
    await until(lambda: server.hub.session("lossy") is not None)
    for i in range(2_000):
        await bus.publish("ticks", Event("tick", bytes(32 * 1024), metadata={"seq": str(i)}))
        await asyncio.sleep(0)
    assert bus.stats("ticks").dropped > 0
    assert server.hub.session("lossy").queue.qsize() <= 8
    seqs: list[int] = []
    async with asyncio.timeout(10):
        while not seqs or seqs[-1] != 1999:
            seqs.extend(int(e.metadata["seq"]) for _, e in unpack(await stream.read()))
    assert seqs == sorted(seqs) and len(seqs) < 2_000


async def test_batched_streams_still_back_pressure_publishers(make_bridge, bus, raw, until):
    server = await make_bridge(outbound_queue=8)
    stream = await raw(server.address).open("slow", ["flood"], metadata={KEY: "16"})
    await until(lambda: server.hub.session("slow") is not None)
    published = 0

    async def publish_forever() -> None:
        nonlocal published
        while True:
            await bus.publish(
                "flood", Event("big", bytes(32 * 1024), metadata={"seq": str(published)})
            )
            published += 1

    publisher = asyncio.create_task(publish_forever())
    try:
        async with asyncio.timeout(10):  # until the publisher stops moving
            last = -1
            while published != last:
                last = published
                await asyncio.sleep(0.5)
        assert not publisher.done()
        assert server.hub.session("slow").queue.qsize() <= 8
        assert last < 400, f"{last} events of 32 KB went out to a client not reading"
        seqs: list[int] = []
        while len(seqs) < last + 50:
            seqs.extend(int(e.metadata["seq"]) for _, e in unpack(await stream.read()))
        assert seqs == list(range(len(seqs)))
    finally:
        publisher.cancel()
    assert bus.stats("flood").dropped == 0


async def test_a_batch_cut_at_the_budget_loses_nothing_with_overlapping_patterns(
    make_bridge, bus, raw, until
):
    # Budget 8 Ki characters: three queued 3,000-byte events make a batch of two, and the
    # third, put back, must not be taken for a repeat of itself.
    server = await make_bridge(max_message_bytes=64 * 1024)
    stream = await raw(server.address).open("cut", ["c.*", "c.>"], metadata={KEY: "64"})
    await until(lambda: server.hub.session("cut") is not None)
    for i in range(3):
        await bus.publish("c.x", Event("e", bytes(3000), metadata={"seq": str(i)}))
    got, kinds = await read_deliveries(stream, 3)
    assert kinds[0] == "delivery_batch"
    assert [e.metadata["seq"] for _, e in got] == ["0", "1", "2"]


# -- publish batches: client -> bridge ------------------------------------------------------


def _publish_batch(items) -> bridge_pb2.ClientEvent:
    message = bridge_pb2.ClientEvent()
    assert fill_batch(message.publish_batch, items, 1 << 20) == len(items)
    return message


async def test_register_offers_publish_batches(make_bridge, raw):
    server = await make_bridge(max_message_bytes=1 << 20)
    response = await raw(server.address).register("a", ["t"])
    assert response.success
    assert dict(response.metadata) == {
        "loom.publish_batch": "1024",
        "loom.max_message_bytes": str(1 << 20),
    }
    quiet = await make_bridge(max_publish_batch=1)
    assert dict((await raw(quiet.address).register("b", ["t"])).metadata) == {}


async def test_a_publish_batch_is_published_in_order(bridge, bus, raw):
    sub = await bus.subscribe("p.>", qos=QoS.BATCHED)
    stream = await raw().open("pub")
    items = [(f"p.{i % 3}", Event("e", bytes([i]), metadata={"seq": str(i)})) for i in range(50)]
    await stream.send(_publish_batch(items))
    got = [await asyncio.wait_for(sub.get(), 5) for _ in range(50)]
    assert got == items
    assert bridge.hub.publish_batches == 1


async def test_bad_publishes_in_a_batch_get_their_err_and_the_rest_goes(bridge, bus, raw):
    sub = await bus.subscribe("ok", qos=QoS.BATCHED)
    stream = await raw().open("mixed")
    items = [("ok", Event("a")), ("bad..topic", Event("b")), ("ok", Event("c"))]
    await stream.send(_publish_batch(items))
    reply = await stream.read()
    assert reply.err.code == ErrorCode.INVALID_TOPIC and "bad..topic" in reply.err.message
    assert [(await sub.get())[1].type for _ in range(2)] == ["a", "c"]


@pytest.mark.parametrize(
    ("spoil", "code", "words"),
    [
        (lambda b: b.ids.append("x"), ErrorCode.INVALID_EVENT, "column ids"),
        (lambda b: b.priorities.__setitem__(0, 500), ErrorCode.INVALID_EVENT, "priority of 500"),
    ],
)
async def test_a_malformed_publish_batch_is_refused_whole(bridge, bus, raw, spoil, code, words):
    sub = await bus.subscribe("t", qos=QoS.BATCHED)
    stream = await raw().open("spoiler", ["t"])
    message = _publish_batch([("t", Event("a")), ("t", Event("b"))])
    spoil(message.publish_batch)
    await stream.send(message)
    reply = await stream.read()
    assert reply.err.code == code and words in reply.err.message
    await stream.publish("t", event_pb2.Event(type="after"))  # the stream goes on
    assert (await asyncio.wait_for(sub.get(), 5))[1].type == "after"


async def test_a_publish_batch_over_the_offer_is_refused(make_bridge, bus, raw):
    server = await make_bridge(max_publish_batch=4)
    stream = await raw(server.address).open("greedy")
    await stream.send(_publish_batch([("t", Event("e"))] * 5))
    reply = await stream.read()
    assert reply.err.code == ErrorCode.INVALID_ARGUMENT and "at most 4" in reply.err.message
    assert bus.stats("t") is None or bus.stats("t").published == 0


async def test_the_sdk_batches_publishes_when_offered(bridge, bus, client_config, until):
    sub = await bus.subscribe("s.out", qos=QoS.BATCHED)
    agent = RemoteAgent("batcher", lambda ctx, e: None, config=client_config)
    async with agent:
        for i in range(1000):
            await agent.bus.publish("s.out", Event("e", metadata={"seq": str(i)}))
        seqs = [(await asyncio.wait_for(sub.get(), 5))[1].metadata["seq"] for _ in range(1000)]
    assert seqs == [str(i) for i in range(1000)]
    assert bridge.hub.publish_batches > 0


async def test_the_sdk_publishes_one_by_one_when_not_offered(make_bridge, bus, client_config):
    server = await make_bridge(max_publish_batch=1)
    sub = await bus.subscribe("s.out", qos=QoS.BATCHED)
    config = client_config.replace(address=server.address)
    async with RemoteAgent("single", lambda ctx, e: None, config=config) as agent:
        for i in range(300):
            await agent.bus.publish("s.out", Event("e", metadata={"seq": str(i)}))
        seqs = [(await asyncio.wait_for(sub.get(), 5))[1].metadata["seq"] for _ in range(300)]
    assert seqs == [str(i) for i in range(300)]
    assert server.hub.publish_batches == 0


async def test_sdk_publish_batches_fit_the_bridge_limit(make_bridge, bus, client_config):
    # The bridge takes 64 KiB messages; the SDK may send 4 MiB ones: its batches follow
    # the bridge's offer, so nothing is refused and the stream never breaks.
    server = await make_bridge(max_message_bytes=64 * 1024)
    sub = await bus.subscribe("big", qos=QoS.BATCHED)
    config = client_config.replace(address=server.address)
    async with RemoteAgent("heavy", lambda ctx, e: None, config=config) as agent:
        for i in range(200):
            await agent.bus.publish("big", Event("e", bytes(4000), metadata={"seq": str(i)}))
        seqs = [(await asyncio.wait_for(sub.get(), 5))[1].metadata["seq"] for _ in range(200)]
        assert agent.link.connections == 1
    assert seqs == [str(i) for i in range(200)]
    assert server.hub.publish_batches > 0


async def test_an_unencodable_publish_is_refused_or_dropped_and_counted(bridge, bus, client_config):
    sub = await bus.subscribe("u", qos=QoS.BATCHED)
    async with RemoteAgent("enc", lambda ctx, e: None, config=client_config) as agent:
        with pytest.raises(InvalidEventError, match="metadata 'k'"):
            await agent.link.publish("u", Event("bad", metadata={"k": 1}))
        with pytest.raises(InvalidEventError, match="tag 3"):
            await agent.link.publish("u", Event("bad", tags=("a", 3)))
        # Spoiled after it was queued: the writer drops it, counts it, and goes on.
        agent.link._outbound.put_nowait(("u", Event("late", metadata={"k": 1})))
        for i in range(20):
            await agent.bus.publish("u", Event("e", metadata={"seq": str(i)}))
        seqs = [(await asyncio.wait_for(sub.get(), 5))[1].metadata["seq"] for _ in range(20)]
        assert agent.link.unencodable == 1
    assert seqs == [str(i) for i in range(20)]
