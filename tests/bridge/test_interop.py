"""A client written only against the generated ``loom.v1`` stubs, the way a client of the
upstream protos is: an async request generator with the Ack first, ``async for`` over the
responses. No loom_bridge client code, no loom types: only grpc and the messages."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio

from loom.v1 import action_pb2, bridge_pb2, event_pb2
from loom_bridge._grpc import bridge_pb2_grpc


class UpstreamStyleAgent:
    def __init__(self, address: str, agent_id: str) -> None:
        self.agent_id = agent_id
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = bridge_pb2_grpc.BridgeStub(self.channel)
        self.outbox: asyncio.Queue[bridge_pb2.ClientEvent | None] = asyncio.Queue(1024)
        self.inbox: asyncio.Queue[bridge_pb2.ServerEvent] = asyncio.Queue()
        self.reader: asyncio.Task[None] | None = None

    async def requests(self):
        # Queue the Ack before awaiting anything on the call, or both sides wait forever.
        yield bridge_pb2.ClientEvent(ack=bridge_pb2.Ack(message_id=self.agent_id))
        while (message := await self.outbox.get()) is not None:
            yield message

    async def start(self, topics, capabilities) -> None:
        response = await self.stub.RegisterAgent(
            bridge_pb2.AgentRegisterRequest(
                agent_id=self.agent_id,
                subscribed_topics=topics,
                capabilities=capabilities,
            )
        )
        assert response.success, response.error_message
        call = self.stub.EventStream(self.requests())

        async def read() -> None:
            async for message in call:
                if message.HasField("action_call"):
                    await self.answer(message.action_call)
                else:
                    await self.inbox.put(message)

        self.reader = asyncio.create_task(read())

    async def answer(self, call: action_pb2.ActionCall) -> None:
        result = action_pb2.ActionResult(
            id=call.id, status=action_pb2.ACTION_OK, output=call.payload[::-1]
        )
        await self.outbox.put(bridge_pb2.ClientEvent(action_result=result))

    async def publish(self, topic: str, event: event_pb2.Event) -> None:
        await self.outbox.put(
            bridge_pb2.ClientEvent(publish=bridge_pb2.Publish(topic=topic, event=event))
        )

    async def close(self) -> None:
        await self.outbox.put(None)
        if self.reader is not None:
            await asyncio.wait_for(self.reader, 5)
        await self.channel.close(None)


async def test_an_upstream_style_client_takes_part_fully(bridge, until):
    alice = UpstreamStyleAgent(bridge.address, "alice")
    bob = UpstreamStyleAgent(bridge.address, "bob")
    reverse = action_pb2.CapabilityDescriptor(
        name="text.reverse",
        version="1.0",
        provider=action_pb2.PROVIDER_GRPC,
        metadata={"desc": "reverse bytes"},
    )
    await alice.start(["chat.alice"], [reverse])
    await bob.start(["chat.bob"], [])
    try:
        await until(lambda: len(bridge.hub.sessions()) == 2)

        # publish -> delivery, across two clients
        await alice.publish("chat.bob", event_pb2.Event(id="m1", type="chat", payload=b"hi bob"))
        delivered = await asyncio.wait_for(bob.inbox.get(), 5)
        assert delivered.delivery.topic == "chat.bob"
        assert (delivered.delivery.event.id, delivered.delivery.event.payload) == ("m1", b"hi bob")

        # ForwardAction from bob reaches alice's capability: action_call, action_result
        result = await bob.stub.ForwardAction(
            action_pb2.ActionCall(
                id="r1", capability="text.reverse", version="1.0", payload=b"abc"
            ),
            timeout=5,
        )
        assert (result.id, result.status, result.output) == ("r1", action_pb2.ACTION_OK, b"cba")

        # ping -> pong on the stream; unary Heartbeat
        await bob.outbox.put(
            bridge_pb2.ClientEvent(ping=bridge_pb2.HeartbeatRequest(timestamp_ms=1))
        )
        assert (await asyncio.wait_for(bob.inbox.get(), 5)).pong.status == "ok"
        beat = await bob.stub.Heartbeat(bridge_pb2.HeartbeatRequest(timestamp_ms=99))
        assert (beat.timestamp_ms, beat.status) == (99, "ok")
    finally:
        await alice.close()
        await bob.close()
    await until(lambda: not bridge.hub.sessions())
    assert bridge.broker.describe("text.reverse") is None
