"""``loom.v1.EventBus`` and ``loom.v1.ActionBroker`` on the bridge's port, called the way
stubs generated from the upstream protos call them (method path plus message codecs)."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest

from loom import Event, QoS
from loom.v1 import action_pb2, event_pb2


class Services:
    def __init__(self, channel: grpc.aio.Channel, metadata=()) -> None:
        def unary(path, request, response):
            return channel.unary_unary(
                path,
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )

        self.publish = unary(
            "/loom.v1.EventBus/Publish", event_pb2.PublishRequest, event_pb2.PublishResponse
        )
        self.subscribe = channel.unary_stream(
            "/loom.v1.EventBus/Subscribe",
            request_serializer=event_pb2.SubscribeRequest.SerializeToString,
            response_deserializer=event_pb2.Event.FromString,
        )
        self.unsubscribe = unary(
            "/loom.v1.EventBus/Unsubscribe",
            event_pb2.UnsubscribeRequest,
            event_pb2.UnsubscribeResponse,
        )
        self.stats = unary(
            "/loom.v1.EventBus/GetStats", event_pb2.StatsRequest, event_pb2.StatsResponse
        )
        self.list = unary(
            "/loom.v1.ActionBroker/ListCapabilities",
            action_pb2.ListCapabilitiesRequest,
            action_pb2.ListCapabilitiesResponse,
        )
        self.invoke = unary(
            "/loom.v1.ActionBroker/Invoke", action_pb2.ActionCall, action_pb2.ActionResult
        )


@pytest.fixture
def services(bridge, raw):
    return Services(raw().channel)


async def test_publish_reaches_the_bus_and_refuses_bad_input(services, bus):
    sub = await bus.subscribe("svc.t", qos=QoS.BATCHED)
    response = await services.publish(
        event_pb2.PublishRequest(topic="svc.t", event=event_pb2.Event(type="hello", payload=b"1"))
    )
    assert response.success and response.sequence_number == 1
    topic, event = await asyncio.wait_for(sub.get(), 5)
    assert (topic, event.type, event.payload) == ("svc.t", "hello", b"1")
    bad = await services.publish(
        event_pb2.PublishRequest(topic="svc..t", event=event_pb2.Event(type="x"))
    )
    assert not bad.success and "svc..t" in bad.error_message
    empty = await services.publish(event_pb2.PublishRequest(topic="svc.t"))
    assert not empty.success and "no event" in empty.error_message


async def test_subscribe_streams_matching_events_until_unsubscribed(services, bus, until):
    call = services.subscribe(
        event_pb2.SubscribeRequest(
            topic="room.*", event_types=["temp"], qos=event_pb2.QOS_BATCHED, filters={"unit": "c"}
        )
    )
    metadata = await call.initial_metadata()
    subscription_id = dict(metadata)["x-subscription-id"]
    await bus.publish("room.kitchen", Event("temp", b"21", metadata={"unit": "c"}))
    await bus.publish("room.kitchen", Event("humidity", b"40", metadata={"unit": "c"}))
    await bus.publish("room.kitchen", Event("temp", b"70", metadata={"unit": "f"}))
    await bus.publish("room.hall", Event("temp", b"19", metadata={"unit": "c"}))
    first = await asyncio.wait_for(call.read(), 5)
    second = await asyncio.wait_for(call.read(), 5)
    assert [first.payload, second.payload] == [b"21", b"19"]
    stopped = await services.unsubscribe(
        event_pb2.UnsubscribeRequest(subscription_id=subscription_id)
    )
    assert stopped.success
    assert await asyncio.wait_for(call.code(), 5) is grpc.StatusCode.OK
    assert bus.stats("room.kitchen").active_subscriptions == 0
    again = await services.unsubscribe(
        event_pb2.UnsubscribeRequest(subscription_id=subscription_id)
    )
    assert not again.success


async def test_subscribe_refuses_a_bad_pattern_or_qos(services):
    for request in (
        event_pb2.SubscribeRequest(topic="a..b"),
        event_pb2.SubscribeRequest(topic="a.b", qos=7),
    ):
        call = services.subscribe(request)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(call.read(), 5)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_a_cancelled_subscribe_stream_drops_its_subscription(services, bus, until):
    call = services.subscribe(event_pb2.SubscribeRequest(topic="gone.t"))
    await call.initial_metadata()
    assert bus.stats("gone.t").active_subscriptions == 1
    call.cancel()
    await until(lambda: bus.stats("gone.t").active_subscriptions == 0)


async def test_stats_of_a_topic(services, bus):
    await bus.publish("stat.t", Event("x"))
    await bus.publish("stat.t", Event("x"))
    stats = await services.stats(event_pb2.StatsRequest(topic="stat.t"))
    assert stats.total_events == 2 and stats.throughput_per_sec > 0
    assert (
        await services.stats(event_pb2.StatsRequest(topic="never.seen"))
        == event_pb2.StatsResponse()
    )


async def test_the_action_broker_service(services, broker, raw, until):
    capability = action_pb2.CapabilityDescriptor(name="remote.cap", version="3")
    await raw().open("lister", capabilities=[capability])
    await until(lambda: broker.describe("remote.cap") is not None)
    listed = await services.list(action_pb2.ListCapabilitiesRequest())
    names = {(c.name, c.version, c.provider) for c in listed.capabilities}
    assert ("test.echo", "1.0", action_pb2.PROVIDER_NATIVE) in names
    assert ("remote.cap", "3", action_pb2.PROVIDER_GRPC) in names
    echoed = await services.invoke(
        action_pb2.ActionCall(id="i1", capability="test.echo", version="1.0", payload=b"x")
    )
    assert (echoed.id, echoed.status, echoed.output) == ("i1", action_pb2.ACTION_OK, b"x")
    missing = await services.invoke(action_pb2.ActionCall(id="i2", capability="nope"))
    assert missing.error.code == "NOT_FOUND"


async def test_the_services_share_the_bridges_token(make_bridge, raw):
    server = await make_bridge(token="tok")
    anonymous = Services(raw(server.address).channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await anonymous.list(action_pb2.ListCapabilitiesRequest())
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    trusted = raw(server.address).channel
    call = trusted.unary_unary(
        "/loom.v1.ActionBroker/ListCapabilities",
        request_serializer=action_pb2.ListCapabilitiesRequest.SerializeToString,
        response_deserializer=action_pb2.ListCapabilitiesResponse.FromString,
    )
    listed = await call(
        action_pb2.ListCapabilitiesRequest(), metadata=[("authorization", "Bearer tok")]
    )
    assert any(c.name == "test.echo" for c in listed.capabilities)
