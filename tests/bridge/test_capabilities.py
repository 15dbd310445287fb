"""Capabilities of remote agents as broker providers of kind GRPC: calls pushed as
``action_call``, answered by id, with timeouts, and PROVIDER_UNAVAILABLE when the agent goes."""

from __future__ import annotations

import asyncio
import json

from loom import ActionCall, ActionStatus, Event
from loom.actions import ErrorCode
from loom.agents import AgentRuntime
from loom.v1 import action_pb2, bridge_pb2

CAP = action_pb2.CapabilityDescriptor(name="remote.work", version="1.0")


def answer(call_id: str, output: bytes = b"", code: str = "", status=action_pb2.ACTION_OK):
    result = action_pb2.ActionResult(id=call_id, status=status, output=output)
    if code:
        result.error.code = code
        result.error.message = f"failed with {code}"
        result.error.details["where"] = "remote"
    return bridge_pb2.ClientEvent(action_result=result)


async def worker(raw, until, broker, agent_id="worker", cap=CAP):
    stream = await raw().open(agent_id, capabilities=[cap])
    await until(lambda: broker.provider(cap.name, cap.version) is not None)
    return stream


async def test_a_remote_capability_is_invoked_from_an_in_process_agent(bus, broker, raw, until):
    stream = await worker(raw, until, broker)
    results: asyncio.Queue = asyncio.Queue()

    async def planner(ctx, event):
        await results.put(await ctx.invoke("remote.work", {"task": "plan"}, version="1.0"))

    runtime = AgentRuntime(bus, broker=broker)
    await runtime.spawn("planner", planner, topics=["plans"])
    try:
        await bus.publish("plans", Event("plan.request"))
        pushed = (await stream.read_kind("action_call")).action_call
        assert pushed.capability == "remote.work"
        assert json.loads(pushed.payload) == {"task": "plan"}
        assert pushed.headers["x-agent-id"] == "planner"
        await stream.send(answer(pushed.id, b'{"ok":true}'))
        result = await asyncio.wait_for(results.get(), 5)
        assert (result.status, result.output) == (ActionStatus.OK, b'{"ok":true}')
    finally:
        await runtime.shutdown()


async def test_forward_action_from_one_client_reaches_another_clients_capability(
    broker, raw, until
):
    stream = await worker(raw, until, broker)
    caller = raw()
    forwarded = asyncio.create_task(caller.forward("remote.work", b"in", version="1.0", id="f1"))
    pushed = (await stream.read_kind("action_call")).action_call
    assert (pushed.id, pushed.payload) == ("f1", b"in")
    await stream.send(answer("f1", b"out"))
    result = await asyncio.wait_for(forwarded, 5)
    assert (result.id, result.status, result.output) == ("f1", action_pb2.ACTION_OK, b"out")


async def test_an_error_answer_keeps_its_code_message_and_details(broker, raw, until):
    stream = await worker(raw, until, broker)
    call = asyncio.create_task(broker.invoke(ActionCall("remote.work", b"x", version="1.0")))
    pushed = (await stream.read_kind("action_call")).action_call
    await stream.send(answer(pushed.id, code="TOOL_ERROR", status=action_pb2.ACTION_ERROR))
    result = await asyncio.wait_for(call, 5)
    assert result.status is ActionStatus.ERROR
    assert result.error.code == "TOOL_ERROR"
    assert result.error.message == "failed with TOOL_ERROR"
    assert result.error.details["where"] == "remote"


async def test_a_call_the_agent_never_answers_times_out(broker, raw, until):
    stream = await worker(raw, until, broker)
    result = await broker.invoke(ActionCall("remote.work", b"x", version="1.0", timeout_ms=200))
    assert result.status is ActionStatus.TIMEOUT
    assert result.error.code == ErrorCode.TIMEOUT
    late = (await stream.read_kind("action_call")).action_call
    await stream.send(answer(late.id, b"too late"))
    refusal = await stream.read_kind("err")
    assert refusal.err.code == "UNKNOWN_ACTION_RESULT" and late.id in refusal.err.message


async def test_stream_end_fails_calls_in_flight_and_unregisters_the_provider(
    bridge, broker, raw, until
):
    stream = await worker(raw, until, broker)
    in_flight = asyncio.create_task(broker.invoke(ActionCall("remote.work", b"x", version="1.0")))
    await stream.read_kind("action_call")
    stream.call.cancel()  # the agent goes away without answering
    result = await asyncio.wait_for(in_flight, 5)
    assert result.error is not None and result.error.code == ErrorCode.PROVIDER_UNAVAILABLE
    assert result.status is ActionStatus.RETRYABLE
    await until(lambda: broker.provider("remote.work", "1.0") is None)
    after = await broker.invoke(ActionCall("remote.work", b"x", version="1.0"))
    assert after.error is not None and after.error.code == ErrorCode.NOT_FOUND
    assert bridge.hub.provider("remote.work", "1.0") is None


async def test_two_agents_serving_one_capability(broker, raw, until, bridge):
    first = await worker(raw, until, broker, "first")
    second = await raw().open("second", capabilities=[CAP])
    await until(lambda: bridge.hub.provider("remote.work", "1.0").agents == ("first", "second"))

    async def call_and_answer(stream, output: bytes) -> ActionStatus:
        call = asyncio.create_task(broker.invoke(ActionCall("remote.work", b"", version="1.0")))
        pushed = (await stream.read_kind("action_call")).action_call
        await stream.send(answer(pushed.id, output))
        result = await asyncio.wait_for(call, 5)
        assert result.output == output
        return result.status

    assert await call_and_answer(second, b"from second") is ActionStatus.OK  # the newest
    second.call.cancel()
    await until(lambda: bridge.hub.provider("remote.work", "1.0").agents == ("first",))
    assert await call_and_answer(first, b"from first") is ActionStatus.OK
    first.call.cancel()
    await until(lambda: broker.provider("remote.work", "1.0") is None)


async def test_calls_in_flight_per_stream_are_bounded(make_bridge, broker, raw, until):
    server = await make_bridge(max_inflight_calls=2)
    stream = await raw(server.address).open("busy", capabilities=[CAP])
    await until(lambda: broker.provider("remote.work", "1.0") is not None)
    calls = [
        asyncio.create_task(broker.invoke(ActionCall("remote.work", b"", version="1.0")))
        for _ in range(3)
    ]
    first = (await stream.read_kind("action_call")).action_call
    second = (await stream.read_kind("action_call")).action_call
    done, _ = await asyncio.wait(calls, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    (refused,) = done
    assert refused.result().error.code == ErrorCode.PROVIDER_UNAVAILABLE
    assert "in flight" in refused.result().error.message
    for pushed in (first, second):
        await stream.send(answer(pushed.id, b"ok"))
    results = await asyncio.wait_for(asyncio.gather(*calls), 5)
    assert sum(r.status is ActionStatus.OK for r in results) == 2
