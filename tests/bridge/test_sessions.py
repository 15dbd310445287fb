"""Streams as the server keeps them: the directory, a second stream for the same agent id,
re-registration, heartbeat timeouts and shutdown."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from loom import Event
from loom.agents import AgentRuntime
from loom.v1 import action_pb2, bridge_pb2
from loom_bridge import AGENT_ID_HEADER, ErrorCode


async def test_a_connected_agent_is_listed_and_removed_when_its_stream_ends(bridge, raw, until):
    stream = await raw().open(
        "lister",
        ["news.*", "alerts"],
        [action_pb2.CapabilityDescriptor(name="summarise", version="1.0")],
        {"team": "blue"},
    )
    await until(lambda: bridge.directory.by_id("lister") is not None)
    record = bridge.directory.get("lister")
    assert record.topics == {"news.*", "alerts"}
    assert record.capabilities == {"summarise"}
    assert record.metadata["team"] == "blue" and record.metadata["remote"] == "grpc"
    assert [r.agent_id for r in bridge.directory.by_topic("news.today")] == ["lister"]
    await stream.call.done_writing()
    await stream.status()
    await until(lambda: bridge.directory.by_id("lister") is None)
    assert bridge.broker.describe("summarise", "1.0") is None


async def test_registering_alone_does_not_list_an_agent(bridge, raw):
    assert (await raw().register("offline", ["t"])).success
    assert bridge.directory.by_id("offline") is None


# -- a second stream for the same agent id -------------------------------------------------


async def test_a_newer_stream_replaces_the_older_one(bridge, bus, raw, until):
    first_client, second_client = raw(), raw()
    capability = action_pb2.CapabilityDescriptor(name="dup.cap", version="1")
    first = await first_client.open("dup", ["dup.t"], [capability])
    await until(lambda: bridge.hub.session("dup") is not None)
    old_session = bridge.hub.session("dup")
    second = await second_client.open("dup", ["dup.t"], [capability])
    await until(lambda: bridge.hub.session("dup") is not old_session)

    replaced = await first.read_kind("err")
    assert replaced.err.code == ErrorCode.REPLACED
    code, _ = await first.status()
    assert code is grpc.StatusCode.ABORTED

    # The older stream's end took nothing of the newer one's with it.
    await until(lambda: old_session.queue.closed)
    assert bridge.directory.by_id("dup") is not None
    assert bridge.broker.describe("dup.cap", "1") is not None
    assert await bus.publish("dup.t", Event("after")) == 1
    assert (await second.read()).delivery.event.type == "after"

    await second.call.done_writing()
    await second.status()
    await until(lambda: bridge.directory.by_id("dup") is None)
    assert bridge.broker.describe("dup.cap", "1") is None
    assert await bus.publish("dup.t", Event("nobody")) == 0


async def test_refuse_policy_keeps_ids_unique_per_live_connection(
    make_bridge, raw, until, make_event
):
    server = await make_bridge(duplicate_ids="refuse")
    owner, intruder = raw(server.address), raw(server.address)
    stream = await owner.open("unique", ["u.t"])
    await until(lambda: server.hub.session("unique") is not None)

    refused = await intruder.register("unique", ["other"])
    assert not refused.success and "another connection" in refused.error_message
    assert server.hub.registration("unique").topics == ("u.t",)

    second = intruder.stream()
    await second.ack("unique")
    assert (await second.read()).err.code == ErrorCode.AGENT_CONNECTED
    assert (await second.status())[0] is grpc.StatusCode.ALREADY_EXISTS

    # The owner's own connection may register again (say, to subscribe to more).
    assert (await owner.register("unique", ["u.t", "u.more"])).success
    await until(lambda: "u.more" in server.hub.session("unique").subscriptions)
    await stream.publish("u.more", make_event())
    assert (await stream.read()).delivery.topic == "u.more"


def test_duplicate_policy_must_be_known():
    from loom_bridge import BridgeConfig, BridgeConfigError

    with pytest.raises(BridgeConfigError, match=r"replace.*refuse"):
        BridgeConfig.from_env({"LOOM_BRIDGE_DUPLICATE_IDS": "share"})


async def test_registering_again_updates_a_live_stream(bridge, bus, raw, until):
    client = raw()
    stream = await client.open("mover", ["old.topic"])
    await until(lambda: bridge.hub.session("mover") is not None)
    assert (await client.register("mover", ["new.topic"])).success
    await until(lambda: list(bridge.hub.session("mover").subscriptions) == ["new.topic"])
    assert await bus.publish("old.topic", Event("gone")) == 0
    await bus.publish("new.topic", Event("here"))
    assert (await stream.read()).delivery.event.type == "here"
    assert bridge.directory.get("mover").topics == {"new.topic"}


async def test_an_in_process_agent_id_cannot_be_taken(bridge, bus, raw):
    runtime = AgentRuntime(bus, directory=bridge.directory)

    async def handler(ctx, event):
        return None

    await runtime.spawn("local", handler)
    try:
        response = await raw().register("local", ["t"])
        assert not response.success and "in the host" in response.error_message
    finally:
        await runtime.shutdown()


# -- liveness --------------------------------------------------------------------------------


async def test_a_stream_that_stops_heartbeating_is_closed(make_bridge, raw, until):
    server = await make_bridge(heartbeat_timeout_s=0.3)
    capability = action_pb2.CapabilityDescriptor(name="hb.cap", version="1")
    stream = await raw(server.address).open("sleepy", ["t"], [capability])
    await stream.send(bridge_pb2.ClientEvent(ping=bridge_pb2.HeartbeatRequest()))
    assert (await stream.read()).WhichOneof("msg") == "pong"
    # ... and then silence: the client is gone without closing its connection.
    message = await stream.read_kind("err")
    assert message.err.code == ErrorCode.HEARTBEAT_TIMEOUT
    assert (await stream.status())[0] is grpc.StatusCode.UNAVAILABLE
    await until(lambda: server.directory.by_id("sleepy") is None)
    assert server.broker.describe("hb.cap", "1") is None


async def test_unary_heartbeats_with_the_agent_id_keep_a_stream_alive(make_bridge, raw, until):
    server = await make_bridge(heartbeat_timeout_s=0.3)
    client = raw(server.address)
    await client.open("beating", ["t"])
    await until(lambda: server.hub.session("beating") is not None)
    for _ in range(10):  # 1 s of heartbeats, three timeouts' worth
        response = await client.heartbeat(1, metadata=[(AGENT_ID_HEADER, "beating")])
        assert response.status == "ok"
        await asyncio.sleep(0.1)
    assert server.hub.session("beating") is not None
    await until(lambda: server.hub.session("beating") is None)  # it stopped beating


async def test_a_client_that_never_heartbeats_is_not_timed_out(make_bridge, raw, until):
    # Upstream clients heartbeat with unary calls that name no agent: only transport
    # keepalive and the stream's end can tell the server they are gone.
    server = await make_bridge(heartbeat_timeout_s=0.1)
    stream = await raw(server.address).open("quiet", ["t"])
    await until(lambda: server.hub.session("quiet") is not None)
    await asyncio.sleep(0.5)
    await stream.send(bridge_pb2.ClientEvent(ping=bridge_pb2.HeartbeatRequest()))
    assert (await stream.read()).WhichOneof("msg") == "pong"


async def test_stopping_the_server_ends_every_stream(bus, broker, raw):
    from loom_bridge import BridgeConfig, BridgeServer

    server = BridgeServer(bus, broker, config=BridgeConfig(address="127.0.0.1:0"))
    await server.start()
    stream = await raw(server.address).open("a", ["t"])
    await stream.send(bridge_pb2.ClientEvent(ping=bridge_pb2.HeartbeatRequest()))
    await stream.read()
    await server.stop(grace=1.0)
    assert (await stream.read_kind("err")).err.code == ErrorCode.SHUTDOWN
    assert (await stream.status())[0] is grpc.StatusCode.UNAVAILABLE
    assert server.hub.sessions() == [] and len(server.directory) == 0
