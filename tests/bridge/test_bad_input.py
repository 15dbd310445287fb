"""Bad input from many clients at once: each gets its gRPC status or ``err``, the server's
state stays bounded, and a well-behaved client keeps being served throughout."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest

from loom import ActionCall, ActionStatus
from loom.v1 import action_pb2, bridge_pb2, event_pb2
from loom_bridge import ErrorCode

CONNECTIONS = 1_000
WAVE = 50


class Steady:
    """A well-behaved client that publishes to its own topic and reads each event back."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.round_trips = 0
        self._stopping = False
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stopping:
            await self.round_trip()

    async def round_trip(self) -> None:
        seq = str(self.round_trips)
        await self.stream.publish("steady.t", event_pb2.Event(type="rt", id=seq))
        message = await self.stream.read(timeout=10)
        assert message.WhichOneof("msg") == "delivery", message
        assert message.delivery.event.id == seq
        self.round_trips += 1

    async def stop(self) -> None:
        """Stop after the round trip under way (cancelling a read would cancel the call)."""
        assert not self.task.done(), self.task
        self._stopping = True
        await asyncio.wait_for(self.task, 10)


async def _polite(client, i: int) -> tuple[str, object]:
    """Register, Ack, ping, then half-close: the stream ends OK."""
    stream = await client.open(f"polite{i}", ["churn.t"])
    await stream.send(bridge_pb2.ClientEvent(ping=bridge_pb2.HeartbeatRequest()))
    assert (await stream.read()).WhichOneof("msg") == "pong"
    await stream.call.done_writing()
    code, _ = await stream.status()
    await client.close()
    return "polite", code


async def _silent(client, i: int) -> tuple[str, object]:
    """Open a stream and never send the Ack (nor close it): HANDSHAKE_TIMEOUT."""
    stream = client.stream()
    first = await stream.read()
    code, _ = await stream.status()
    return "silent", (first.err.code, code)


async def _abandoned(client, i: int) -> tuple[str, object]:
    """Register, Ack, ping (so it counts as heartbeating), then go quiet without closing
    anything: HEARTBEAT_TIMEOUT."""
    stream = await client.open(f"abandoned{i}", ["churn.t"])
    await stream.send(bridge_pb2.ClientEvent(ping=bridge_pb2.HeartbeatRequest()))
    errors = []
    while True:
        try:
            message = await stream.read(timeout=10)
        except (AssertionError, grpc.aio.AioRpcError):  # the stream ended
            break
        if message.WhichOneof("msg") == "err":
            errors.append(message.err.code)
    code, _ = await stream.status()
    return "abandoned", (tuple(errors), code)


async def _vanished(client, i: int) -> tuple[str, object]:
    """Register, Ack, then the whole connection goes away mid-stream."""
    await client.open(f"vanished{i}", ["churn.t"])
    await client.close()
    return "vanished", None


async def _garbage(client, i: int) -> tuple[str, object]:
    """Bytes that are no protobuf on a stream."""
    call = client.channel.stream_stream(
        "/loom.v1.Bridge/EventStream", request_serializer=None, response_deserializer=None
    )()
    await call.write(b"\xff\xfe garbage \x00" * (i % 7 + 1))
    try:
        while True:
            await asyncio.wait_for(call.read(), 10)
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
    await client.close()
    return "garbage", code


KINDS = (_polite, _silent, _abandoned, _vanished, _garbage)


async def test_a_thousand_connections_of_every_kind(make_bridge, bus, raw, until):
    server = await make_bridge(
        max_registrations=50, handshake_timeout_s=0.5, heartbeat_timeout_s=1.0
    )
    steady = Steady(await raw(server.address).open("steady", ["steady.t"]))
    await until(lambda: steady.round_trips > 3)
    tasks_steady = len(asyncio.all_tasks())

    # Every connection has its own channel (its own TCP connection). The silent and the
    # abandoned ones stay open, never closed by their client, until the server ends them;
    # each wave's quick ones finish before the next wave starts.
    lingering: list[asyncio.Task[tuple[str, object]]] = []
    outcomes: list[tuple[str, object]] = []
    during = []
    for wave in range(CONNECTIONS // WAVE):
        quick = []
        for j in range(WAVE):
            i = wave * WAVE + j
            kind = KINDS[i % len(KINDS)]
            task = asyncio.create_task(kind(raw(server.address), i))
            (lingering if kind in (_silent, _abandoned) else quick).append(task)
        outcomes.extend(await asyncio.wait_for(asyncio.gather(*quick), 30))
        during.append(steady.round_trips)
    outcomes.extend(await asyncio.wait_for(asyncio.gather(*lingering), 60))
    await steady.stop()
    assert during[-1] > during[0] + 10, f"the steady client stalled during the churn: {during}"

    by_kind: dict[str, set[object]] = {}
    for kind, outcome in outcomes:
        by_kind.setdefault(kind, set()).add(outcome)
    assert by_kind["polite"] == {grpc.StatusCode.OK}
    assert by_kind["silent"] == {(ErrorCode.HANDSHAKE_TIMEOUT, grpc.StatusCode.DEADLINE_EXCEEDED)}
    assert by_kind["abandoned"] == {((ErrorCode.HEARTBEAT_TIMEOUT,), grpc.StatusCode.UNAVAILABLE)}
    assert by_kind["garbage"] == {grpc.StatusCode.INVALID_ARGUMENT}
    assert len(outcomes) == CONNECTIONS

    # What the server keeps is bounded: only the steady stream is live, registrations of
    # agents without a stream are capped, subscriptions and tasks are back where they were.
    await until(lambda: [s.agent_id for s in server.hub.sessions()] == ["steady"], timeout=10)
    assert len(server.hub.registrations()) <= 50 + 1
    assert [record.agent_id for record in server.directory.all()] == ["steady"]
    assert [sub.pattern for sub in bus.subscriptions()] == ["steady.t"]
    # (the steady stream's own handler tasks stay; a leak would be hundreds)
    await until(lambda: len(asyncio.all_tasks()) <= tasks_steady + 1, timeout=10)

    # And the steady client is still served after it all.
    before = steady.round_trips
    for _ in range(5):
        await steady.round_trip()
    assert steady.round_trips == before + 5


async def test_a_late_or_repeated_action_result_gets_err_and_the_stream_goes_on(
    bridge, broker, raw, until
):
    capability = action_pb2.CapabilityDescriptor(name="slow.task", version="1")
    stream = await raw().open("slow", capabilities=[capability])
    await until(lambda: broker.describe("slow.task", "1") is not None)

    def answer(call_id: str) -> bridge_pb2.ClientEvent:
        return bridge_pb2.ClientEvent(
            action_result=action_pb2.ActionResult(
                id=call_id, status=action_pb2.ACTION_OK, output=b"done"
            )
        )

    # Too late: the call timed out before the answer came.
    late = await broker.invoke(ActionCall("slow.task", b"", version="1", id="late", timeout_ms=50))
    assert late.status is ActionStatus.TIMEOUT
    assert (await stream.read_kind("action_call")).action_call.id == "late"
    await stream.send(answer("late"))
    reply = await stream.read_kind("err")
    assert reply.err.code == ErrorCode.UNKNOWN_ACTION_RESULT and "'late'" in reply.err.message

    # Answered twice: the first counts, the second gets err.
    invocation = asyncio.create_task(
        broker.invoke(ActionCall("slow.task", b"", version="1", id="twice"))
    )
    assert (await stream.read_kind("action_call")).action_call.id == "twice"
    await stream.send(answer("twice"))
    await stream.send(answer("twice"))
    assert (await asyncio.wait_for(invocation, 5)).output == b"done"
    reply = await stream.read_kind("err")
    assert reply.err.code == ErrorCode.UNKNOWN_ACTION_RESULT and "'twice'" in reply.err.message

    # The stream still works.
    ok = asyncio.create_task(broker.invoke(ActionCall("slow.task", b"", version="1", id="ok")))
    assert (await stream.read_kind("action_call")).action_call.id == "ok"
    await stream.send(answer("ok"))
    assert (await asyncio.wait_for(ok, 5)).status is ActionStatus.OK
    assert bridge.hub.refused_results == 2


@pytest.mark.parametrize(
    ("method", "message_type"),
    [
        ("RegisterAgent", "loom.v1.AgentRegisterRequest"),
        ("ForwardAction", "loom.v1.ActionCall"),
        ("Heartbeat", "loom.v1.HeartbeatRequest"),
        ("/loom.v1.EventBus/Publish", "loom.v1.PublishRequest"),
        ("/loom.v1.ActionBroker/Invoke", "loom.v1.ActionCall"),
    ],
)
async def test_garbage_bytes_on_a_unary_call_are_invalid_argument(
    bridge, raw, method, message_type
):
    client = raw()
    path = method if method.startswith("/") else f"/loom.v1.Bridge/{method}"
    call = client.channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call(b"\xff\xff\xff\xff not a protobuf"), 5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert message_type in caught.value.details()
    assert (await client.heartbeat(3)).timestamp_ms == 3
    assert bridge.hub.registrations() == []


def _garbage_stream(client):
    return client.channel.stream_stream(
        "/loom.v1.Bridge/EventStream",
        request_serializer=None,
        response_deserializer=bridge_pb2.ServerEvent.FromString,
    )()


async def test_garbage_as_the_first_stream_message_gets_err(bridge, raw):
    call = _garbage_stream(raw())
    await call.write(b"\xff\xfe not a protobuf \x00\x01")
    first = await asyncio.wait_for(call.read(), 5)
    assert first.err.code == ErrorCode.INVALID_ARGUMENT
    assert "loom.v1.ClientEvent" in first.err.message
    assert await call.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert bridge.hub.sessions() == []


async def test_garbage_after_the_ack_ends_that_stream_only(bridge, bus, raw, until):
    other = await raw().open("other", ["t"])
    client = raw()
    assert (await client.register("messy", ["t"])).success
    call = _garbage_stream(client)
    await call.write(
        bridge_pb2.ClientEvent(ack=bridge_pb2.Ack(message_id="messy")).SerializeToString()
    )
    await until(lambda: bridge.hub.session("messy") is not None)
    await call.write(b"\xff\xfe not a protobuf")
    reply = await asyncio.wait_for(call.read(), 5)
    assert reply.err.code == ErrorCode.INVALID_ARGUMENT and "stream message" in reply.err.message
    assert await call.code() is grpc.StatusCode.INVALID_ARGUMENT
    await until(lambda: bridge.hub.session("messy") is None)
    await other.publish("t", event_pb2.Event(type="still"))
    assert (await other.read()).delivery.event.type == "still"


async def test_an_oversized_registration_is_refused(make_bridge, raw):
    server = await make_bridge(max_message_bytes=16 * 1024)
    client = raw(server.address)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.register("big", [f"topic{i}" for i in range(4000)])
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert server.hub.registration("big") is None
    assert (await client.register("small", ["t"])).success
