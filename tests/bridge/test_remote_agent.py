"""The remote-agent SDK against a real bridge: the same Agent/Context API as embedded agents,
capabilities, collaboration across the bridge, heartbeats and reconnection (AC14.2)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import pytest

from loom import ActionCall, ActionStatus, Event, LoomError
from loom.actions import ErrorCode, NativeProvider, capability
from loom.agents import Agent, AgentRuntime, Context, handles
from loom.v1 import bridge_pb2
from loom_bridge import (
    Backoff,
    BridgeConfig,
    BridgeServer,
    LinkClosed,
    RegistrationError,
    RemoteAgent,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "remote_agent" / "agents.py"


@capability("sdk.add")
async def add(a: int, b: int) -> int:
    return a + b


@capability("sdk.fail")
def fail(reason: str) -> str:
    raise RuntimeError(f"cannot: {reason}")


class Looper(Agent):
    """Publishes to a topic it subscribes to, and keeps what comes back."""

    topics = ("loop.t",)

    def __init__(self) -> None:
        self.got: list[bytes] = []

    async def on_start(self, ctx: Context) -> None:
        await ctx.emit("loop.t", "loop.msg", b"round trip")

    @handles("loop.msg")
    async def on_msg(self, ctx: Context, event: Event) -> None:
        self.got.append(event.payload)


@pytest.fixture
async def remote(client_config):
    """``await remote(agent_id, agent, **options)``: a started RemoteAgent, stopped at the end."""
    agents: list[RemoteAgent] = []

    async def make(agent_id: str, agent, **options) -> RemoteAgent:
        options.setdefault("config", client_config)
        instance = RemoteAgent(agent_id, agent, **options)
        await instance.start()
        agents.append(instance)
        return instance

    yield make
    for instance in agents:
        await instance.stop()


# -- AC14.2 -----------------------------------------------------------------------------------


async def test_ac14_2_heartbeat_is_ok(bridge, remote):
    agent = await remote("beater", Looper())
    response = await agent.link.heartbeat()
    assert response.status == "ok"


async def test_ac14_2_register_lists_topics_private_topic_and_capabilities(bridge, remote, until):
    await remote("lister", Looper(), capabilities=[add], metadata={"role": "test"})
    await until(lambda: bridge.directory.by_id("lister") is not None)
    record = bridge.directory.get("lister")
    assert record.topics == {"loop.t", "agent.lister.replies"}
    assert record.capabilities == {"sdk.add"}
    assert record.metadata["role"] == "test"
    described = bridge.broker.describe("sdk.add")
    assert described.provider.name == "GRPC"
    assert json.loads(described.metadata["input_schema"])["required"] == ["a", "b"]


async def test_ac14_2_publish_and_receive_the_same_payload(remote, until):
    looper = Looper()
    await remote("looper", looper)
    await until(lambda: looper.got == [b"round trip"])


async def test_ac14_2_capability_invocation_with_call_1(bridge, remote, until):
    await remote("adder", Looper(), capabilities=[add])
    await until(lambda: bridge.broker.describe("sdk.add") is not None)
    result = await bridge.broker.invoke(ActionCall("sdk.add", b'{"a": 2, "b": 3}', id="call_1"))
    assert (result.id, result.status, result.output) == ("call_1", ActionStatus.OK, b"5")


async def test_ac14_2_two_remote_agents_exchange_messages(remote, until):
    answers: list[bytes] = []

    async def echo(ctx: Context, event: Event) -> None:
        await ctx.reply(event, "echo.reply", b"echo: " + event.payload)

    class Asker(Agent):
        async def on_start(self, ctx: Context) -> None:
            reply = await ctx.request("echo.requests", "echo.request", b"hi", timeout_s=5)
            answers.append(reply.payload)

    await remote("echoer", echo, topics=["echo.requests"])
    await remote("asker", Asker())
    await until(lambda: answers == [b"echo: hi"])


# -- capabilities served by the agent ----------------------------------------------------------


async def test_capability_errors_come_back_with_their_codes(bridge, remote, until):
    agent = await remote("errs", Looper(), capabilities=[add, fail])
    await until(lambda: bridge.hub.session("errs") is not None)
    broker = bridge.broker
    bad_input = await broker.invoke(ActionCall("sdk.add", b'{"a": "x", "b": 1}'))
    assert bad_input.error.code == ErrorCode.INVALID_PARAMS and "a" in bad_input.error.message
    raised = await broker.invoke(ActionCall("sdk.fail", b'{"reason": "tired"}'))
    assert raised.error.code == ErrorCode.CAPABILITY_ERROR
    assert "cannot: tired" in raised.error.message
    # A call for a capability the agent does not serve (a stale registration elsewhere):
    session = bridge.hub.session("errs")
    unknown = await session.call(ActionCall("sdk.nothing", b"{}"), timeout_s=5)
    assert unknown.error.code == ErrorCode.NOT_FOUND
    assert agent.connected  # none of it hurt the connection


async def test_capabilities_registered_later_reach_the_bridge(bridge, remote, until):
    agent = await remote("later", Looper())
    agent.broker.register(NativeProvider(add))
    await agent.broker.sync()
    await until(lambda: bridge.broker.describe("sdk.add") is not None)
    await agent.broker.unregister("sdk.add")
    await until(lambda: bridge.broker.describe("sdk.add") is None)


# -- the agent's calls go to the host --------------------------------------------------------


@capability("host.double")
async def double(n: int) -> int:
    return 2 * n


async def test_ctx_invoke_and_tool_go_through_forward_action(bridge, remote, until):
    bridge.broker.register(NativeProvider(double))
    outcomes: list[object] = []

    class Caller(Agent):
        async def on_start(self, ctx: Context) -> None:
            result = await ctx.invoke("host.double", {"n": 21})
            outcomes.append((result.status, result.output))
            outcomes.append(await ctx.tool("host.double", {"n": 4}))
            missing = await ctx.invoke("host.nothing", {})
            outcomes.append(missing.error.code)  # as embedded: NOT_FOUND, not BROKER_ERROR
            try:
                await ctx.tool("host.double", {"n": "many"})
            except LoomError as exc:  # ActionFailedError, with the embedded code
                outcomes.append(type(exc).__name__ + ":" + exc.code)

    await remote("caller", Caller())
    await until(lambda: len(outcomes) == 4)
    assert outcomes == [
        (ActionStatus.OK, b"42"),
        8,
        ErrorCode.NOT_FOUND,
        "ActionFailedError:INVALID_PARAMS",
    ]


# -- collaboration across the bridge ---------------------------------------------------------


async def test_requests_between_embedded_and_remote_agents(bus, bridge, remote, until):
    got: list[bytes] = []

    async def embedded_service(ctx: Context, event: Event) -> None:
        await ctx.reply(event, "svc.reply", b"embedded saw " + event.payload)

    class RemoteAsker(Agent):
        async def on_start(self, ctx: Context) -> None:
            reply = await ctx.request("svc.embedded", "svc.request", b"remote", timeout_s=5)
            got.append(reply.payload)

    async def remote_service(ctx: Context, event: Event) -> None:
        await ctx.reply(event, "svc.reply", b"remote saw " + event.payload)

    class EmbeddedAsker(Agent):
        async def on_start(self, ctx: Context) -> None:
            reply = await ctx.request("svc.remote", "svc.request", b"embedded", timeout_s=5)
            got.append(reply.payload)

    runtime = AgentRuntime(bus, broker=bridge.broker, directory=bridge.directory)
    await runtime.spawn("embedded-service", embedded_service, topics=["svc.embedded"])
    try:
        await remote("remote-service", remote_service, topics=["svc.remote"])
        await until(lambda: bridge.hub.session("remote-service") is not None)
        await remote("remote-asker", RemoteAsker())
        await runtime.spawn("embedded-asker", EmbeddedAsker())
        await until(lambda: len(got) == 2)
        assert sorted(got) == [b"embedded saw remote", b"remote saw embedded"]
    finally:
        await runtime.shutdown()


def _load_example_agents():
    spec = importlib.util.spec_from_file_location("remote_agent_example_agents", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _ask_summarizer(runtime: AgentRuntime) -> list[object]:
    done: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()

    class Client(Agent):
        async def on_start(self, ctx: Context) -> None:
            reply = await ctx.request(
                "docs.summarize", "doc.summarize", b"Two lines\nof text here", timeout_s=5
            )
            shouted = await ctx.tool("text.shout", {"text": "ok", "times": 2})
            done.set_result([reply.type, json.loads(reply.payload), shouted, reply.sender])

    await runtime.spawn("client", Client())
    try:
        return await asyncio.wait_for(done, 10)
    finally:
        await runtime.delete("client")


async def test_one_agent_module_runs_embedded_and_remote_alike(bus, broker, bridge, remote, until):
    agents = _load_example_agents()
    broker.register(NativeProvider(agents.count_words))
    runtime = AgentRuntime(bus, broker=broker, directory=bridge.directory)
    try:
        # Embedded: the class in this process, its capability registered natively.
        broker.register(NativeProvider(agents.shout))
        await runtime.spawn("summarizer", agents.Summarizer())
        embedded = await _ask_summarizer(runtime)
        await runtime.delete("summarizer")
        await broker.unregister("text.shout")

        # Remote: the same class and capability through the bridge.
        await remote("summarizer", agents.Summarizer(), capabilities=[agents.shout])
        await until(lambda: broker.describe("text.shout") is not None)
        remote_result = await _ask_summarizer(runtime)
    finally:
        await runtime.shutdown()
    expected = ["doc.summary", {"first_line": "Two lines", "words": 5}, "OK!OK!"]
    assert embedded[:3] == remote_result[:3] == expected
    assert embedded[3] == remote_result[3] == "agent.summarizer"


# -- connection life -----------------------------------------------------------------------


async def test_reconnects_after_the_server_restarts(bus, broker, client_config, until):
    first = BridgeServer(bus, broker, config=BridgeConfig(address="127.0.0.1:0"))
    await first.start()
    address = first.address
    got: list[str] = []

    async def handler(ctx: Context, event: Event) -> None:
        got.append(event.type)

    agent = RemoteAgent(
        "phoenix",
        handler,
        topics=["phoenix.t"],
        capabilities=[add],
        config=client_config.replace(address=address),
    )
    await agent.start()
    second = None
    try:
        await until(lambda: first.hub.session("phoenix") is not None)
        await bus.publish("phoenix.t", Event("before"))
        await until(lambda: got == ["before"])
        await first.stop(grace=0)
        await until(lambda: not agent.connected)

        second = BridgeServer(bus, broker, config=BridgeConfig(address=address))
        await second.start()
        await until(lambda: second.hub.session("phoenix") is not None, timeout=15)
        assert agent.link.connections == 2
        assert second.directory.get("phoenix").capabilities == {"sdk.add"}
        await bus.publish("phoenix.t", Event("after"))
        await until(lambda: got == ["before", "after"])
        result = await broker.invoke(ActionCall("sdk.add", b'{"a": 1, "b": 1}'))
        assert result.output == b"2"
    finally:
        await agent.stop()
        if second is not None:
            await second.stop(grace=0)


async def test_a_clean_stop_removes_the_agent(bridge, client_config, until):
    agent = RemoteAgent("leaver", Looper(), capabilities=[add], config=client_config)
    await agent.start()
    await until(lambda: bridge.directory.by_id("leaver") is not None)
    await agent.stop()
    await until(lambda: bridge.directory.by_id("leaver") is None)
    assert bridge.broker.describe("sdk.add") is None
    assert not agent.connected


async def test_messages_sent_while_stopping_are_flushed(bridge, bus, client_config):
    from loom import QoS

    sub = await bus.subscribe("goodbyes", qos=QoS.BATCHED)

    class Polite(Agent):
        async def on_stop(self, ctx: Context) -> None:
            await ctx.emit("goodbyes", "bye", b"see you")

    agent = RemoteAgent("polite", Polite(), config=client_config)
    await agent.start()
    await agent.stop()
    _, event = await asyncio.wait_for(sub.get(), 5)
    assert (event.type, event.payload, event.sender) == ("bye", b"see you", "agent.polite")


async def test_a_replaced_agent_stops_instead_of_fighting_back(bridge, client_config, until):
    first = RemoteAgent("twin", Looper(), config=client_config)
    second = RemoteAgent("twin", Looper(), config=client_config)
    await first.start()
    await until(lambda: bridge.hub.session("twin") is not None)
    try:
        await second.start()
        await asyncio.wait_for(first.wait_closed(), 5)
        assert isinstance(first.link.closed_reason, LinkClosed)
        await asyncio.sleep(0.3)  # time for a fight, had there been one
        assert second.connected and second.link.connections == 1
    finally:
        await first.stop()
        await second.stop()


async def test_a_refused_registration_fails_start(bridge, bus, client_config):
    runtime = AgentRuntime(bus, directory=bridge.directory)
    await runtime.spawn("taken", lambda ctx, event: None)
    try:
        agent = RemoteAgent("taken", Looper(), config=client_config)
        with pytest.raises(RegistrationError, match="taken by an agent running in the host"):
            await agent.start()
    finally:
        await runtime.shutdown()


async def test_start_without_a_bridge_times_out(client_config):
    config = client_config.replace(address="127.0.0.1:1", connect_timeout_s=0.5)
    agent = RemoteAgent("lonely", Looper(), config=config)
    from loom_bridge import NotConnectedError

    with pytest.raises(NotConnectedError, match=r"127\.0\.0\.1:1"):
        await agent.start()


def test_agent_ids_are_checked_up_front():
    with pytest.raises(ValueError, match="agent_id"):
        RemoteAgent("has.dots", Looper())


async def test_heartbeats_keep_a_quiet_agent_connected(make_bridge, client_config, until):
    server = await make_bridge(heartbeat_timeout_s=0.4)
    config = client_config.replace(address=server.address, heartbeat_s=0.1)
    async with RemoteAgent("steady", Looper(), config=config) as agent:
        await until(lambda: server.hub.session("steady") is not None)
        await asyncio.sleep(1.2)  # three heartbeat timeouts of silence on the stream
        assert agent.connected and agent.link.connections == 1
        assert server.hub.session("steady").heartbeating


async def test_subscribing_while_running_updates_the_bridge(bridge, bus, remote, until):
    got: list[str] = []

    class Grower(Agent):
        @handles("grown")
        async def on_grown(self, ctx: Context, event: Event) -> None:
            got.append(ctx.topic)

        async def on_start(self, ctx: Context) -> None:
            await ctx.subscribe("grow.new")

    await remote("grower", Grower())
    await until(lambda: "grow.new" in getattr(bridge.hub.session("grower"), "subscriptions", ()))
    await bus.publish("grow.new", Event("grown"))
    await until(lambda: got == ["grow.new"])


async def test_the_outbound_queue_is_bounded_while_disconnected(bridge, client_config, until):
    config = client_config.replace(outbound_queue=4, backoff=Backoff(0.05, 2.0, 0.2))
    agent = RemoteAgent("buffered", Looper(), config=config)
    await agent.start()
    await bridge.stop(grace=0)
    await until(lambda: not agent.connected)
    queued = 0

    async def publish_all() -> None:
        nonlocal queued
        for i in range(100):
            await agent.bus.publish("t", Event("e", str(i).encode()))
            queued += 1

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(publish_all(), 1.0)
    assert queued <= 5  # the bound, plus the one waiting to be written
    assert agent.link.outbound_size() <= 5
    await agent.stop(flush_timeout_s=0.1)


async def test_action_calls_with_an_unknown_qos_are_refused_cleanly(bridge, remote, until):
    agent = await remote("odd", Looper(), capabilities=[add])
    await until(lambda: bridge.hub.session("odd") is not None)
    session = bridge.hub.session("odd")
    odd = bridge_pb2.ServerEvent(action_call=ActionCall("sdk.add", b"{}", id="q9").to_proto())
    odd.action_call.qos = 9  # no such QoS
    await session.send(odd)
    await until(lambda: bridge.hub.refused_results == 1)  # answered, for an id no one awaits
    assert agent.connected
