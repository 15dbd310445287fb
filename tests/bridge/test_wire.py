"""The loom.v1.Bridge service against a raw client that uses only the generated stubs:
the upstream acceptance criteria (AC12.1-12.4), the stream rules of WIRE.md, and bad input."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest

from loom import ActionCall, ActionStatus, Event, ProviderKind, QoS
from loom.v1 import action_pb2, bridge_pb2, event_pb2
from loom_bridge import BROKER_ERROR, ErrorCode

HANDSHAKE_RULE = "first stream message must be Ack carrying agent_id"


# -- AC12.1 - AC12.4 ------------------------------------------------------------------------


async def test_ac12_1_register_ack_publish_then_delivery(raw, make_event):
    client = raw()
    response = await client.register("agentA", ["topic.test"])
    assert response.success and response.error_message == ""
    stream = client.stream()
    await stream.ack("agentA")
    await stream.publish("topic.test", make_event("test_input", b"hello", "ev1"))
    message = await stream.read()
    assert message.WhichOneof("msg") == "delivery"
    assert message.delivery.topic == "topic.test"
    assert message.delivery.event.id == "ev1"
    assert message.delivery.event.type == "test_input"
    assert message.delivery.event.payload == b"hello"


async def test_ac12_2_forward_action_runs_through_the_broker(raw):
    client = raw()
    result = await client.forward("test.echo", b"ping", version="1.0", id="c1")
    assert (result.id, result.status, result.output) == ("c1", action_pb2.ACTION_OK, b"ping")
    unknown = await client.forward("unknown.cap", b"", id="c2")
    assert unknown.id == "c2"
    assert unknown.status == action_pb2.ACTION_ERROR
    assert unknown.error.code == BROKER_ERROR
    assert "unknown.cap" in unknown.error.message
    assert unknown.error.details["cause"] == "NOT_FOUND"


async def test_ac12_3_pushed_action_call_is_answered_by_id(bridge, broker, raw, until):
    capability = action_pb2.CapabilityDescriptor(name="agent.task", version="1.0")
    stream = await raw().open("worker", capabilities=[capability])
    await until(lambda: broker.describe("agent.task", "1.0") is not None)
    invocation = asyncio.create_task(broker.invoke(ActionCall("agent.task", b"push1", id="push1")))
    pushed = await stream.read_kind("action_call")
    assert pushed.action_call.id == "push1"
    assert pushed.action_call.capability == "agent.task"
    assert pushed.action_call.payload == b"push1"
    await stream.send(
        bridge_pb2.ClientEvent(
            action_result=action_pb2.ActionResult(
                id="push1", status=action_pb2.ACTION_OK, output=b"done"
            )
        )
    )
    result = await asyncio.wait_for(invocation, 5)
    assert (result.id, result.status, result.output) == ("push1", ActionStatus.OK, b"done")


async def test_ac12_4_heartbeat_echoes_the_timestamp(raw):
    response = await raw().heartbeat(12345)
    assert (response.timestamp_ms, response.status) == (12345, "ok")


# -- RegisterAgent ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent_id", "topics", "capabilities", "metadata", "names"),
    [
        ("", [], [], {}, "agent_id"),
        ("a.b", [], [], {}, "agent_id"),
        ("a b", [], [], {}, "agent_id"),
        ("ok", ["good", "bad..topic"], [], {}, "subscribed_topics[1]"),
        ("ok", [], [action_pb2.CapabilityDescriptor(name="")], {}, "capabilities[0]"),
        (
            "ok",
            [],
            [action_pb2.CapabilityDescriptor(name="x", version="1")] * 2,
            {},
            "capabilities[1]",
        ),
        ("ok", [], [], {"qos": "urgent"}, "qos"),
    ],
)
async def test_register_refuses_bad_input_with_a_named_field(
    bridge, raw, agent_id, topics, capabilities, metadata, names
):
    response = await raw().register(agent_id, topics, capabilities, metadata)
    assert not response.success
    assert names in response.error_message
    assert bridge.hub.registration(agent_id) is None


async def test_register_replaces_the_previous_registration(bridge, raw):
    client = raw()
    assert (await client.register("a", ["one"])).success
    assert (await client.register("a", ["two", "three.*"])).success
    assert bridge.hub.registration("a").topics == ("two", "three.*")


async def test_offline_registrations_are_bounded(make_bridge, raw):
    server = await make_bridge(max_registrations=3)
    client = raw(server.address)
    for i in range(10):
        assert (await client.register(f"agent{i}", ["t"])).success
    kept = [r.agent_id for r in server.hub.registrations()]
    assert kept == ["agent7", "agent8", "agent9"]


# -- the stream's first message ---------------------------------------------------------------


async def test_first_message_must_be_the_ack(raw):
    client = raw()
    await client.register("agentA", ["topic.test"])
    stream = client.stream()
    await stream.send(bridge_pb2.ClientEvent(ping=bridge_pb2.HeartbeatRequest(timestamp_ms=1)))
    message = await stream.read()
    assert message.err.code == ErrorCode.INVALID_ARGUMENT
    assert message.err.message == HANDSHAKE_RULE
    assert await stream.status() == (grpc.StatusCode.INVALID_ARGUMENT, HANDSHAKE_RULE)


async def test_a_stream_closed_before_its_first_message(raw):
    stream = raw().stream()
    await stream.call.done_writing()
    assert (await stream.read()).err.message == "no first message"
    assert await stream.status() == (grpc.StatusCode.INVALID_ARGUMENT, "no first message")


@pytest.mark.parametrize("agent_id", ["never-registered", ""])
async def test_an_ack_must_carry_a_registered_agent_id(bridge, raw, agent_id):
    stream = raw().stream()
    await stream.ack(agent_id)
    message = await stream.read()
    assert message.err.code == ErrorCode.INVALID_ARGUMENT
    assert message.err.message.startswith(HANDSHAKE_RULE)
    code, details = await stream.status()
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith(HANDSHAKE_RULE)
    assert bridge.hub.sessions() == []


async def test_a_stream_that_never_sends_the_ack_is_closed(make_bridge, raw):
    server = await make_bridge(handshake_timeout_s=0.2)
    stream = raw(server.address).stream()
    message = await stream.read()
    assert message.err.code == ErrorCode.HANDSHAKE_TIMEOUT
    code, details = await stream.status()
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED and HANDSHAKE_RULE in details


async def test_later_acks_are_ignored(raw, make_event):
    stream = await raw().open("a", ["t"])
    await stream.ack("a")
    await stream.ack("someone-else")
    await stream.publish("t", make_event())
    assert (await stream.read()).WhichOneof("msg") == "delivery"


async def test_a_registered_agent_without_topics_gets_no_deliveries(bridge, bus, raw, until):
    stream = await raw().open("quiet")
    await until(lambda: bridge.hub.session("quiet") is not None)
    assert await bus.publish("anything", Event("t")) == 0
    await stream.send(bridge_pb2.ClientEvent(ping=bridge_pb2.HeartbeatRequest()))
    assert (await stream.read()).WhichOneof("msg") == "pong"


# -- after the handshake --------------------------------------------------------------------


async def test_ping_is_answered_with_pong(raw):
    stream = await raw().open("a")
    await stream.send(bridge_pb2.ClientEvent(ping=bridge_pb2.HeartbeatRequest(timestamp_ms=7)))
    message = await stream.read()
    assert message.pong.status == "ok"
    assert message.pong.timestamp_ms > 1_600_000_000_000  # the server's clock, as upstream


async def test_deliveries_carry_the_concrete_topic(bridge, bus, raw, until):
    stream = await raw().open("a", ["sensor.*.temp", "alerts.>"])
    await until(lambda: bridge.hub.session("a") is not None)
    await bus.publish("sensor.kitchen.temp", Event("reading", b"21"))
    await bus.publish("alerts.fire.kitchen", Event("alarm"))
    first, second = await stream.read(), await stream.read()
    assert (first.delivery.topic, first.delivery.event.payload) == ("sensor.kitchen.temp", b"21")
    assert (second.delivery.topic, second.delivery.event.type) == ("alerts.fire.kitchen", "alarm")


async def test_every_event_field_crosses_the_wire(bridge, bus, raw, until):
    stream = await raw().open("a", ["t"])
    await until(lambda: bridge.hub.session("a") is not None)
    sent = Event(
        "full",
        b"\x00\xff",
        id="e-1",
        timestamp_ms=1234,
        source="agent.x",
        metadata={"thread_id": "th", "k": "v"},
        confidence=0.5,
        tags=("a", "b"),
        priority=90,
    )
    await bus.publish("t", sent)
    assert Event.from_proto((await stream.read()).delivery.event) == sent


async def test_overlapping_patterns_deliver_an_event_once(bridge, bus, raw, until):
    stream = await raw().open("a", ["x.*", "x.y", "x.>"])
    await until(lambda: bridge.hub.session("a") is not None)
    assert await bus.publish("x.y", Event("first")) == 3  # three subscriptions matched
    await bus.publish("x.z", Event("second"))
    assert (await stream.read()).delivery.event.type == "first"
    assert (await stream.read()).delivery.event.type == "second"


async def test_a_publish_reaches_subscribers_on_the_bus(bus, raw):
    sub = await bus.subscribe("orders.>", qos=QoS.BATCHED)
    stream = await raw().open("shop")
    await stream.publish("orders.new", make_proto("order", b"42"))
    topic, event = await asyncio.wait_for(sub.get(), 5)
    assert (topic, event.type, event.payload) == ("orders.new", "order", b"42")


def make_proto(type: str, payload: bytes) -> event_pb2.Event:
    return event_pb2.Event(id="p1", type=type, payload=payload, priority=50)


@pytest.mark.parametrize(
    ("message", "code", "words"),
    [
        (
            bridge_pb2.ClientEvent(
                publish=bridge_pb2.Publish(topic="bad..topic", event=event_pb2.Event(type="t"))
            ),
            ErrorCode.INVALID_TOPIC,
            "bad..topic",
        ),
        (
            bridge_pb2.ClientEvent(
                publish=bridge_pb2.Publish(topic="wild.*", event=event_pb2.Event(type="t"))
            ),
            ErrorCode.INVALID_TOPIC,
            "wildcard",
        ),
        (
            bridge_pb2.ClientEvent(publish=bridge_pb2.Publish(topic="t")),
            ErrorCode.INVALID_ARGUMENT,
            "no event",
        ),
        (
            bridge_pb2.ClientEvent(
                publish=bridge_pb2.Publish(topic="t", event=event_pb2.Event(type="t", priority=101))
            ),
            ErrorCode.INVALID_EVENT,
            "priority",
        ),
        (
            bridge_pb2.ClientEvent(action_result=action_pb2.ActionResult(id="nobody-asked")),
            ErrorCode.UNKNOWN_ACTION_RESULT,
            "nobody-asked",
        ),
        (bridge_pb2.ClientEvent(), ErrorCode.INVALID_ARGUMENT, "empty"),
    ],
)
async def test_bad_messages_get_err_and_the_stream_stays_open(
    raw, make_event, message, code, words
):
    stream = await raw().open("a", ["t"])
    await stream.send(message)
    reply = await stream.read()
    assert reply.err.code == code
    assert words in reply.err.message
    await stream.publish("t", make_event(payload=b"still here"))
    assert (await stream.read()).delivery.event.payload == b"still here"


# -- bad input that never reaches the servicer ------------------------------------------------


async def test_garbage_bytes_end_that_stream_only(bridge, raw):
    client = raw()
    garbage = client.channel.stream_stream(
        "/loom.v1.Bridge/EventStream", request_serializer=None, response_deserializer=None
    )()
    await garbage.write(b"\xff\xfe not a protobuf \x00\x01")
    first = bridge_pb2.ServerEvent.FromString(await asyncio.wait_for(garbage.read(), 5))
    assert first.err.code == ErrorCode.INVALID_ARGUMENT  # the err, then the status
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(garbage.read(), 5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (await client.heartbeat(1)).status == "ok"
    assert (await raw().register("after", ["t"])).success


async def test_an_oversized_message_is_refused(make_bridge, raw, make_event):
    server = await make_bridge(max_message_bytes=64 * 1024)
    client = raw(server.address)
    stream = await client.open("big", ["t"])
    await stream.publish("t", make_event(payload=bytes(128 * 1024)))
    code, _ = await stream.status()
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.forward("test.echo", bytes(128 * 1024), version="1.0")
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await client.forward("test.echo", b"small", version="1.0")).output == b"small"


async def test_a_client_that_connects_a_thousand_times(make_bridge, raw, until):
    server = await make_bridge(max_registrations=50)
    client = raw(server.address)

    async def connect(i: int) -> None:
        stream = await client.open(f"churn{i}", ["churn.t"])
        await stream.send(bridge_pb2.ClientEvent(ping=bridge_pb2.HeartbeatRequest()))
        assert (await stream.read()).WhichOneof("msg") == "pong"
        stream.call.cancel()

    for batch in range(20):
        await asyncio.gather(*(connect(batch * 50 + i) for i in range(50)))
    await until(lambda: not server.hub.sessions())
    assert len(server.hub.registrations()) <= 50
    assert len(server.directory) == 0
    stream = await raw(server.address).open("survivor", ["t"])
    await stream.publish("t", event_pb2.Event(type="alive"))
    assert (await stream.read()).delivery.event.type == "alive"


async def test_remote_capabilities_join_the_broker_as_grpc(bridge, broker, raw, until):
    descriptor = action_pb2.CapabilityDescriptor(
        name="w.cap", version="2", provider=action_pb2.PROVIDER_NATIVE, metadata={"desc": "d"}
    )
    await raw().open("w", capabilities=[descriptor])
    await until(lambda: broker.describe("w.cap", "2") is not None)
    listed = broker.describe("w.cap", "2")
    assert listed.provider is ProviderKind.GRPC  # whatever the client said: it runs remotely
    assert listed.metadata["desc"] == "d"
