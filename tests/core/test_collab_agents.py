"""The Context API of collaboration and actions: ctx.thread/request/reply/fanout/barrier/
contract_net/propose/invoke/tool, and the runtime routing replies to waiting calls."""

from __future__ import annotations

import asyncio
import json

import pytest

from loom import ActionCall, ActionStatus, AgentError, Event, ProviderKind
from loom.actions import ActionBroker, NativeProvider, Provider, capability
from loom.actions._provider import CapabilityDescriptor
from loom.agents import (
    ActionFailedError,
    Agent,
    AgentRuntime,
    Context,
    handles,
)
from loom.bus import MemoryBus
from loom.collab import (
    COLLAB_AWARD,
    COLLAB_CFP,
    COLLAB_SUMMARY,
    CollabError,
    CollabTimeout,
    Thread,
    first_k,
    json_payload,
)


@pytest.fixture
async def bus():
    async with MemoryBus() as bus:
        yield bus


@pytest.fixture
async def runtime(bus):
    runtime = AgentRuntime(bus)
    yield runtime
    await runtime.shutdown()


class Outcome:
    """Collects what a driver agent's handler produced (or raised)."""

    def __init__(self) -> None:
        self.future: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    def handler(self, body):
        async def run(ctx: Context, event: Event) -> None:
            try:
                value = await body(ctx, event)
            except Exception as exc:  # noqa: BLE001  # handed to the test, which re-raises
                self.future.set_exception(exc)
                return
            self.future.set_result(value)

        return run

    async def get(self, timeout: float = 5.0) -> object:
        return await asyncio.wait_for(self.future, timeout)


async def drive(bus, runtime, body, *, name: str = "driver", **spawn) -> object:
    """Run ``body(ctx, event)`` inside an agent's handler; return what it returned."""
    outcome = Outcome()
    await runtime.spawn(name, outcome.handler(body), topics=[f"go.{name}"], **spawn)
    await bus.publish(f"go.{name}", Event("go"))
    return await outcome.get()


async def echo(ctx: Context, event: Event) -> None:
    await ctx.reply(event, "echo", event.payload)


# -- request from inside a handler ---------------------------------------------------------------


async def test_a_handler_awaiting_requests_does_not_deadlock(bus):
    # A mailbox of 4 and 50 requests in one handler: replies must not need the mailbox.
    runtime = AgentRuntime(bus, mailbox_size=4)
    await runtime.spawn("echo", echo, topics=["svc"])

    async def body(ctx: Context, event: Event) -> list[bytes]:
        thread = ctx.thread(event)
        replies = []
        for i in range(50):
            reply = await ctx.request("svc", "ask", str(i), thread=thread, timeout_s=2.0)
            replies.append(reply.payload)
        return replies

    assert await drive(bus, runtime, body) == [str(i).encode() for i in range(50)]
    info = runtime.info("driver")
    assert (info.processed, info.mailbox, info.late_replies) == (1, 0, 0)
    await runtime.shutdown()


async def test_nested_requests_carry_the_thread(bus, runtime):
    async def c(ctx: Context, event: Event) -> None:
        await ctx.reply(event, "c.done", b"c(" + event.payload + b")")

    async def b(ctx: Context, event: Event) -> None:
        inner = await ctx.request("svc.c", "ask", event.payload, thread=ctx.thread(event))
        await ctx.reply(event, "b.done", b"b(" + inner.payload + b")")

    await runtime.spawn("c", c, topics=["svc.c"])
    await runtime.spawn("b", b, topics=["svc.b"])

    async def body(ctx: Context, event: Event) -> Event:
        return await ctx.request("svc.b", "ask", b"x", thread=ctx.thread(event), timeout_s=2)

    reply = await drive(bus, runtime, body)
    assert isinstance(reply, Event)
    assert reply.payload == b"b(c(x))"
    # One conversation: the driver's event, then b, then c, each a hop further.
    assert reply.metadata["hop"] == "2" and reply.metadata["ttl"] == "14"


async def test_a_request_cycle_times_out_and_both_agents_go_on(bus, runtime):
    # a asks b; b asks a back while a is still busy in the handler that waits for b.
    async def b(ctx: Context, event: Event) -> None:
        try:
            await ctx.request("svc.a", "ask", b"?", timeout_s=0.1)
        except CollabTimeout:
            await ctx.reply(event, "b.done", b"gave up on a")

    async def a(ctx: Context, event: Event) -> None:
        if event.type == "go":
            reply = await ctx.request("svc.b", "ask", b"!", timeout_s=2.0)
            ctx.memory["reply"] = reply.payload
        else:
            await ctx.reply(event, "a.answer", b"late")
            done.set()

    done = asyncio.Event()
    await runtime.spawn("b", b, topics=["svc.b"])
    await runtime.spawn("a", a, topics=["svc.a", "go.a"])
    await bus.publish("go.a", Event("go"))
    await asyncio.wait_for(done.wait(), 2)  # a handled b's request after all
    assert runtime.info("a").processed == 2
    for _ in range(20):
        await asyncio.sleep(0.01)
        if runtime.info("b").late_replies:
            break
    # a's answer to b's expired request reached b after b gave up: dropped and counted.
    assert runtime.info("b").late_replies == 1
    assert runtime.info("b").processed == 1


async def test_replies_to_a_background_task_skip_the_idle_handler(bus, runtime):
    # The mailbox loop is idle (waiting), so it sees each reply before the router does.
    class Poller(Agent):
        def __init__(self) -> None:
            self.handled: list[str] = []
            self.started = asyncio.Event()
            self.task: asyncio.Task[list[bytes]] | None = None

        async def on_start(self, ctx: Context) -> None:
            self.task = asyncio.create_task(self.poll(ctx))
            self.started.set()

        async def poll(self, ctx: Context) -> list[bytes]:
            return [(await ctx.request("svc", "ask", str(i))).payload for i in range(5)]

        async def on_event(self, ctx: Context, event: Event) -> None:
            self.handled.append(event.type)

    await runtime.spawn("echo", echo, topics=["svc"])
    poller = Poller()
    await runtime.spawn("poller", poller)
    await asyncio.wait_for(poller.started.wait(), 1)
    assert poller.task is not None
    assert await asyncio.wait_for(poller.task, 2) == [b"0", b"1", b"2", b"3", b"4"]
    await asyncio.sleep(0.01)
    assert poller.handled == []
    assert runtime.info("poller").mailbox == 0


async def test_other_events_on_the_private_topic_still_reach_the_handler(bus, runtime):
    seen: list[str] = []

    async def both(ctx: Context, event: Event) -> None:
        if event.type == "go":
            await ctx.request("svc", "ask", b"", timeout_s=1.0)  # starts the router
            await ctx.publish("agent.me.replies", Event("direct"))
        seen.append(event.type)

    await runtime.spawn("echo", echo, topics=["svc"])
    await runtime.spawn("me", both, topics=["go.me"])
    await bus.publish("go.me", Event("go"))
    for _ in range(50):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.01)
    assert seen == ["go", "direct"]  # the echo reply went to the request, not here
    assert bus.stats("agent.me.replies").active_subscriptions == 2  # mailbox + router


async def test_the_router_is_made_on_first_use_and_closed_on_stop(bus, runtime):
    await runtime.spawn("quiet", echo)
    assert bus.stats("agent.quiet.replies").active_subscriptions == 1
    await runtime.spawn("echo", echo, topics=["svc"])

    async def body(ctx: Context, event: Event) -> bytes:
        return (await ctx.request("svc", "ask", b"1", timeout_s=1.0)).payload

    assert await drive(bus, runtime, body) == b"1"
    assert bus.stats("agent.driver.replies").active_subscriptions == 2
    await runtime.stop("driver")
    assert bus.stats("agent.driver.replies").active_subscriptions == 0
    await runtime.start("driver")
    await bus.publish("go.driver", Event("go"))  # a new router after the restart
    await asyncio.sleep(0.05)
    assert bus.stats("agent.driver.replies").active_subscriptions == 2


async def test_stopping_an_agent_wakes_its_waiting_calls(bus, runtime):
    started = asyncio.Event()
    waiting: list[asyncio.Task[Event]] = []

    async def body(ctx: Context, event: Event) -> None:
        waiting.append(asyncio.create_task(ctx.request("nobody", "ask", b"", timeout_s=10)))
        started.set()

    await runtime.spawn("bg", body, topics=["go"])
    await bus.publish("go", Event("go"))
    await asyncio.wait_for(started.wait(), 1)
    await asyncio.sleep(0.01)
    await runtime.stop("bg")
    with pytest.raises(CollabError, match="'bg' stopped"):
        await asyncio.wait_for(waiting[0], 1)


async def test_request_reports_go_to_the_thread_not_the_private_topic(bus, runtime):
    summaries = await bus.subscribe("thread.*.reply", event_types=(COLLAB_SUMMARY,))
    await runtime.spawn("echo", echo, topics=["svc"])

    async def body(ctx: Context, event: Event) -> Event:
        return await ctx.request("svc", "ask", b"", thread=ctx.thread(event))

    reply = await drive(bus, runtime, body)
    topic, summary = await asyncio.wait_for(summaries.get(), 1)
    assert topic == f"thread.{reply.thread_id}.reply"
    assert summary.sender == "agent.driver"
    assert bus.stats("agent.driver.replies").published == 1  # the reply only


# -- reply and thread ------------------------------------------------------------------------


async def test_thread_of_an_event(bus, runtime):
    async def body(ctx: Context, event: Event) -> tuple[Thread, Thread]:
        return ctx.thread(event), ctx.thread()

    got = await drive(bus, runtime, body)
    assert isinstance(got, tuple)
    thread, fresh = got
    assert thread.event is not None and thread.id == thread.event.thread_id
    assert thread.broadcast_topic == f"thread.{thread.id}.broadcast"
    assert thread.reply_topic == f"thread.{thread.id}.reply"
    assert thread.envelope.hop == 1
    assert fresh.event is None and fresh.id != thread.id and fresh.sender == "agent.driver"


async def test_reply_to_a_thread_with_a_dict(bus, runtime):
    # The upstream README's shape: ctx.reply(ctx.thread(event), {...}).
    async def researcher(ctx: Context, event: Event) -> None:
        await ctx.reply(ctx.thread(event), {"results": ["a", "b"]})

    await runtime.spawn("researcher", researcher, topics=["topic.research"])

    async def body(ctx: Context, event: Event) -> Event:
        return await ctx.request("topic.research", "research.request", b"loom?", timeout_s=1)

    reply = await drive(bus, runtime, body)
    assert reply.type == "collab.reply"
    assert reply.metadata["content_type"] == "application/json"
    assert json_payload(reply) == {"results": ["a", "b"]}


async def test_reply_argument_errors(bus, runtime):
    async def body(ctx: Context, event: Event) -> list[str]:
        errors = []
        for call in (
            lambda: ctx.reply(event, {"a": 1}, b"twice"),  # type: ignore[call-overload]
            lambda: ctx.reply(ctx.thread(), "t"),
            lambda: ctx.reply(Event("bare"), "t"),
        ):
            try:
                await call()
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        return errors

    errors = await drive(bus, runtime, body)
    assert isinstance(errors, list) and len(errors) == 3
    assert "payload in place of the type" in errors[0]
    assert "started here" in errors[1]
    assert "no reply_to and no agent sender" in errors[2]


# -- fanout, barrier, contract net from handlers ------------------------------------------------


async def test_fanout_from_a_handler_counts_late_replies(bus, runtime):
    def responder(delay: float):
        async def handler(ctx: Context, event: Event) -> None:
            await asyncio.sleep(delay)
            await ctx.reply(event, "opinion", ctx.agent_id)

        return handler

    for name, delay in (("fast", 0.0), ("mid", 0.05), ("slow", 0.25)):
        await runtime.spawn(name, responder(delay), topics=[f"critic.{name}"])

    async def body(ctx: Context, event: Event) -> list[bytes]:
        result = await ctx.fanout(
            ["critic.fast", "critic.mid", "critic.slow"],
            "review",
            {"draft": "..."},
            strategy=first_k(2),
            timeout_s=1.0,
            thread=ctx.thread(event),
        )
        await asyncio.sleep(0.4)  # the slow one answers meanwhile: a late reply
        return result.payloads

    assert await drive(bus, runtime, body) == [b"fast", b"mid"]
    info = runtime.info("driver")
    assert info.late_replies == 1
    assert info.processed == 1  # the late reply never reached the handler


async def test_barrier_between_agents(bus, runtime):
    arrived: dict[str, tuple[str, ...]] = {}
    all_done = asyncio.Event()

    async def member(ctx: Context, event: Event) -> None:
        result = await ctx.barrier("sync", 3, timeout_s=2.0)
        arrived[ctx.agent_id] = tuple(sorted(result.arrived))
        if len(arrived) == 3:
            all_done.set()

    for name in ("m1", "m2", "m3"):
        await runtime.spawn(name, member, topics=["start"])
    await bus.publish("start", Event("go"))
    await asyncio.wait_for(all_done.wait(), 3)
    expected = ("agent.m1", "agent.m2", "agent.m3")
    assert arrived == {"m1": expected, "m2": expected, "m3": expected}


class Bidder(Agent):
    topics = ("thread.jobs.broadcast",)

    def __init__(self, score: float) -> None:
        self.score = score

    @handles(COLLAB_CFP)
    async def on_cfp(self, ctx: Context, event: Event) -> None:
        await ctx.propose(event, self.score, {"eta_s": 2})

    @handles(COLLAB_AWARD)
    async def on_award(self, ctx: Context, event: Event) -> None:
        if event.metadata["award_to"] == ctx.sender:
            await ctx.reply(event, "job.result", {"by": ctx.agent_id})


async def test_contract_net_from_a_handler(bus, runtime):
    for name, score in (("x", 0.2), ("y", 0.9), ("z", 0.5)):
        await runtime.spawn(name, Bidder(score))

    async def body(ctx: Context, event: Event) -> tuple[tuple[str, ...], list[object]]:
        result = await ctx.contract_net(
            "jobs", {"job": 1}, window_s=2.0, bidders=3, max_awards=2, result_timeout_s=1.0
        )
        return result.winners, sorted(json_payload(r)["by"] for r in result.results)

    winners, results = await drive(bus, runtime, body)
    assert winners == ("agent.y", "agent.z")
    assert results == ["y", "z"]


# -- actions ---------------------------------------------------------------------------------


@capability("text.shout")
def shout(text: str, times: int = 1) -> str:
    """Upper-case text, repeated."""
    return " ".join([text.upper()] * times)


@capability("text.fail")
def fail(text: str) -> str:
    """Always fails."""
    raise RuntimeError(f"cannot handle {text!r}")


class Recording(Provider):
    """A real provider that answers with the headers of the call it got."""

    def __init__(self) -> None:
        self.descriptor = CapabilityDescriptor("debug.headers", "1.0", ProviderKind.NATIVE)

    async def invoke(self, call: ActionCall) -> bytes:
        return json.dumps(
            {"headers": call.headers, "correlation_id": call.correlation_id, "id": call.id}
        ).encode()


@pytest.fixture
async def broker():
    async with ActionBroker() as broker:
        broker.register(NativeProvider(shout))
        broker.register(NativeProvider(fail))
        broker.register(Recording())
        yield broker


async def test_invoke_and_tool_through_the_broker(bus, broker):
    runtime = AgentRuntime(bus, broker=broker)

    async def body(ctx: Context, event: Event) -> dict[str, object]:
        ok = await ctx.invoke("text.shout", {"text": "hi", "times": 2}, timeout_s=1.0)
        missing = await ctx.invoke("no.such")
        invalid = await ctx.invoke("text.shout", {"text": 3})
        shouted = await ctx.tool("text.shout", {"text": "yo"})
        try:
            await ctx.tool("text.fail", {"text": "this"})
        except ActionFailedError as exc:
            failed = exc
        seen = await ctx.tool("debug.headers", thread=ctx.thread(event))
        return {
            "ok": ok,
            "missing": missing,
            "invalid": invalid,
            "shouted": shouted,
            "failed": failed,
            "seen": seen,
            "thread": ctx.thread(event).id,
        }

    got = await drive(bus, runtime, body)
    assert isinstance(got, dict)
    assert got["ok"].status == ActionStatus.OK and got["ok"].output == b'"HI HI"'
    assert got["missing"].error.code == "NOT_FOUND"
    assert got["invalid"].error.code == "INVALID_PARAMS"
    assert got["shouted"] == "YO"
    failed = got["failed"]
    assert failed.code == "CAPABILITY_ERROR" and "cannot handle 'this'" in str(failed)
    assert failed.capability == "text.fail"
    seen = got["seen"]
    headers = seen["headers"]
    assert headers["x-agent-id"] == "driver"
    assert headers["sender"] == "agent.driver"
    assert headers["thread_id"] == got["thread"]
    assert headers["correlation_id"] == seen["correlation_id"] == seen["id"]
    assert headers["reply_to"] == "agent.driver.replies"
    await runtime.shutdown()


async def test_invoke_without_a_broker_is_refused(bus, runtime):
    async def body(ctx: Context, event: Event) -> str:
        try:
            await ctx.invoke("text.shout", {"text": "x"})
        except AgentError as exc:
            return str(exc)
        return "no error"

    message = await drive(bus, runtime, body)
    assert "has no action broker" in str(message) and "'text.shout'" in str(message)


async def test_invoke_rejects_a_bad_timeout(bus, broker):
    runtime = AgentRuntime(bus, broker=broker)

    async def body(ctx: Context, event: Event) -> str:
        try:
            await ctx.invoke("text.shout", {"text": "x"}, timeout_s=0)
        except ValueError as exc:
            return str(exc)
        return "no error"

    assert "timeout_s must be a positive number" in str(await drive(bus, runtime, body))
    await runtime.shutdown()
