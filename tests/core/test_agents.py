"""The agent runtime: lifecycle, subscriptions, envelope handling and supervision."""

from __future__ import annotations

import asyncio
import logging

import pytest

from loom import AgentError, AgentExistsError, AgentNotFoundError, Envelope, Event
from loom.agents import (
    AGENT_FAILED_TOPIC,
    Agent,
    AgentRuntime,
    AgentStatus,
    Context,
    RestartPolicy,
    handles,
)
from loom.bus import MemoryBus

FAST = RestartPolicy(max_restarts=2, window_s=60, initial_backoff_s=0.001, max_backoff_s=0.01)


@pytest.fixture
async def bus():
    bus = MemoryBus()
    await bus.start()
    yield bus
    await bus.shutdown()


@pytest.fixture
async def runtime(bus):
    runtime = AgentRuntime(bus, restart_policy=FAST)
    yield runtime
    await runtime.shutdown()


class Recorder:
    """A function agent that records what it sees."""

    def __init__(self, expected=None):
        self.events: list[Event] = []
        self.topics: list[str] = []
        self.expected = expected
        self.done = asyncio.Event()

    async def __call__(self, ctx: Context, event: Event) -> None:
        self.events.append(event)
        self.topics.append(ctx.topic)
        if self.expected is not None and len(self.events) >= self.expected:
            self.done.set()

    async def wait(self, timeout=2.0):
        await asyncio.wait_for(self.done.wait(), timeout)


async def settle():
    for _ in range(20):
        await asyncio.sleep(0)


async def test_published_events_reach_the_agent_in_order(bus, runtime):  # AC3.1
    recorder = Recorder(expected=5)
    await runtime.spawn("a", recorder, topics=["in"])
    for i in range(5):
        await bus.publish("in", Event("t", str(i).encode()))
    await recorder.wait()
    assert [e.payload for e in recorder.events] == [b"0", b"1", b"2", b"3", b"4"]
    assert runtime.info("a").processed == 5


async def test_deleted_agent_receives_nothing(bus, runtime):  # AC3.1
    recorder = Recorder()
    await runtime.spawn("a", recorder, topics=["in"])
    await runtime.delete("a")
    assert await bus.publish("in", Event("t")) == 0
    await settle()
    assert recorder.events == []
    with pytest.raises(AgentNotFoundError, match="agent 'a' not found"):
        runtime.info("a")


async def test_two_agents_one_topic_and_one_agent_two_topics(bus, runtime):  # AC3.1
    a, b, c = Recorder(expected=1), Recorder(expected=1), Recorder(expected=2)
    await runtime.spawn("a", a, topics=["x"])
    await runtime.spawn("b", b, topics=["x"])
    await runtime.spawn("c", c, topics=["y", "z"])
    await bus.publish("x", Event("t"))
    await bus.publish("y", Event("t"))
    await bus.publish("z", Event("t"))
    await asyncio.gather(a.wait(), b.wait(), c.wait())
    assert (len(a.events), len(b.events), len(c.events)) == (1, 1, 2)


async def test_nothing_is_processed_after_shutdown(bus):  # AC3.1
    runtime = AgentRuntime(bus)
    recorder = Recorder()
    await runtime.spawn("a", recorder, topics=["in"])
    await runtime.shutdown()
    await bus.publish("in", Event("t"))
    await settle()
    assert recorder.events == []
    with pytest.raises(AgentError, match="shut down"):
        await runtime.create("b", recorder)


async def test_ttl_is_enforced_before_the_handler(bus, runtime):  # AC3.2
    recorder = Recorder(expected=1)
    await runtime.spawn("a", recorder, topics=["in"])
    expiring = Envelope.new("t1")
    expiring.ttl = 1
    await bus.publish("in", expiring.apply_to_event(Event("dies")))
    living = Envelope.new("t2")
    living.ttl = 2
    await bus.publish("in", living.apply_to_event(Event("lives")))
    await recorder.wait()
    [event] = recorder.events
    assert event.type == "lives"
    assert (event.metadata["hop"], event.metadata["ttl"]) == ("1", "1")
    assert runtime.info("a").expired == 1


async def test_sender_is_filled_and_envelope_written_back(bus, runtime):
    recorder = Recorder(expected=1)
    await runtime.spawn("a", recorder, topics=["in"])
    original = Event("bare")
    await bus.publish("in", original)
    await recorder.wait()
    [event] = recorder.events
    envelope = Envelope.from_event(event)
    assert envelope.sender == "agent.a"
    assert envelope.thread_id == original.id
    assert envelope.reply_to == f"thread.{original.id}.reply"
    assert original.metadata == {}  # the published object is not modified


async def test_prefixed_envelope_keys_are_honoured(bus, runtime):
    recorder = Recorder(expected=1)
    await runtime.spawn("a", recorder, topics=["in"])
    await bus.publish("in", Event("t", metadata={"loom.ttl": "1", "loom.thread_id": "x"}))
    await bus.publish("in", Event("t", metadata={"loom.thread_id": "py", "loom.sender": "s"}))
    await recorder.wait()
    [event] = recorder.events
    assert (event.metadata["thread_id"], event.metadata["sender"]) == ("py", "s")
    assert runtime.info("a").expired == 1


async def test_join_mid_thread_and_leave(bus, runtime):  # AC3.3
    recorder = Recorder()
    await runtime.spawn("a", recorder)
    await bus.publish("thread.t.broadcast", Event("early"))
    for topic in ("thread.t.broadcast", "b", "c"):
        await runtime.subscribe("a", topic)
    assert runtime.subscriptions("a") == ["agent.a.replies", "thread.t.broadcast", "b", "c"]
    await bus.publish("thread.t.broadcast", Event("late"))
    await settle()
    assert [e.type for e in recorder.events] == ["late"]
    for topic in ("thread.t.broadcast", "b", "c"):
        await runtime.unsubscribe("a", topic)
    assert runtime.subscriptions("a") == ["agent.a.replies"]
    await bus.publish("thread.t.broadcast", Event("after"))
    await settle()
    assert [e.type for e in recorder.events] == ["late"]


async def test_subscription_errors(runtime):
    await runtime.spawn("a", Recorder(), topics=["x"])
    with pytest.raises(AgentError, match="already subscribed"):
        await runtime.subscribe("a", "x")
    with pytest.raises(AgentError, match="not subscribed"):
        await runtime.unsubscribe("a", "y")
    with pytest.raises(AgentError, match="private topic"):
        await runtime.unsubscribe("a", "agent.a.replies")
    with pytest.raises(AgentNotFoundError):
        await runtime.subscribe("nobody", "x")
    with pytest.raises(ValueError, match="'>' must be the last token"):
        await runtime.subscribe("a", "a.>.b")


async def test_private_topic_reaches_only_its_agent(bus, runtime):  # AC3.4
    x, y = Recorder(expected=1), Recorder()
    await runtime.spawn("x", x)
    await runtime.spawn("y", y)
    await bus.publish("agent.x.replies", Event("for-x"))
    await x.wait()
    await settle()
    assert [e.type for e in x.events] == ["for-x"]
    assert y.events == []


async def test_thread_reply_and_private_topics_both_arrive(bus, runtime):  # AC3.4
    recorder = Recorder(expected=2)
    await runtime.spawn("x", recorder, topics=["thread.t1.reply"])
    await bus.publish("thread.t1.reply", Event("reply"))
    await bus.publish("agent.x.replies", Event("direct"))
    await recorder.wait()
    assert sorted(recorder.topics) == ["agent.x.replies", "thread.t1.reply"]


async def test_duplicate_ids_are_rejected(runtime):
    await runtime.spawn("a", Recorder())
    with pytest.raises(AgentExistsError, match="'a' already exists"):
        await runtime.spawn("a", Recorder())


@pytest.mark.parametrize("bad_id", ["", "a.b", "a b"])
async def test_invalid_ids_are_rejected(runtime, bad_id):
    with pytest.raises(AgentError, match="invalid agent id"):
        await runtime.create(bad_id, Recorder())


async def test_class_agents_dispatch_by_type_and_reply(bus, runtime):
    class Echo(Agent):
        topics = ("requests",)

        @handles("ping")
        async def ping(self, ctx: Context, event: Event) -> None:
            await ctx.reply(event, "pong", event.payload)

        async def on_other(self, ctx: Context, event: Event) -> None:
            ctx.memory["ignored"] = ctx.memory.get("ignored", 0) + 1

    client = Recorder(expected=1)
    await runtime.spawn("echo", Echo())
    await runtime.spawn("client", client)
    await bus.publish("requests", Event("noise"))
    request = Envelope.with_agent_reply("t9", "agent.client", "client").apply_to_event(
        Event("ping", b"hello")
    )
    await bus.publish("requests", request)
    await client.wait()
    [reply] = client.events
    assert (reply.type, reply.payload, reply.thread_id) == ("pong", b"hello", "t9")
    assert reply.sender == "agent.echo" and reply.correlation_id == "t9"
    assert runtime.agent("echo").__class__ is Echo


async def test_emit_starts_a_thread_replying_to_the_agent(bus, runtime):
    seen = Recorder(expected=1)
    await runtime.spawn("watcher", seen, topics=["out"])

    async def emitter(ctx: Context, event: Event) -> None:
        await ctx.emit("out", "said", b"x")

    await runtime.spawn("emitter", emitter, topics=["go"])
    await bus.publish("go", Event("go"))
    await seen.wait()
    [event] = seen.events
    assert event.source == "agent.emitter"
    assert event.reply_to == "agent.emitter.replies"


async def test_failing_handler_is_logged_restarted_and_goes_on(bus, runtime, caplog):
    starts = []

    class Flaky(Agent):
        topics = ("in",)

        async def on_start(self, ctx: Context) -> None:
            starts.append(dict(ctx.memory))
            ctx.memory["started"] = True

        async def on_event(self, ctx: Context, event: Event) -> None:
            if event.type == "bad":
                raise RuntimeError("handler broke")
            done.append(event.type)

    done: list[str] = []
    await runtime.spawn("flaky", Flaky())
    with caplog.at_level(logging.ERROR, logger="loom.agents"):
        bad = Event("bad", id="ev-bad")
        await bus.publish("in", bad)
        await bus.publish("in", Event("good"))
        for _ in range(200):
            if done:
                break
            await asyncio.sleep(0.005)
    assert done == ["good"]
    info = runtime.info("flaky")
    assert (info.failures, info.restarts, info.status) == (1, 1, AgentStatus.RUNNING)
    assert "RuntimeError: handler broke" in (info.last_error or "")
    assert starts == [{}, {}]  # restarted with fresh ephemeral memory
    message = next(r.getMessage() for r in caplog.records if "failed on event" in r.getMessage())
    assert "flaky" in message and "ev-bad" in message


async def test_agent_failing_too_often_is_stopped_and_reported(bus, runtime):
    reports = await bus.subscribe(AGENT_FAILED_TOPIC)
    survivor = Recorder(expected=1)

    async def always_fails(ctx: Context, event: Event) -> None:
        raise ValueError("nope")

    await runtime.spawn("doomed", always_fails, topics=["in"])
    await runtime.spawn("survivor", survivor, topics=["other"])
    for _ in range(FAST.max_restarts + 1):
        await bus.publish("in", Event("t"))
    _, report = await asyncio.wait_for(reports.get(), 2)
    assert report.type == "agent.failed"
    assert report.metadata["agent_id"] == "doomed"
    assert "ValueError: nope" in report.metadata["error"]
    assert runtime.info("doomed").status is AgentStatus.FAILED
    await bus.publish("other", Event("t"))  # the runtime goes on
    await survivor.wait()


async def test_stop_keeps_mailbox_and_start_resumes(bus, runtime):
    recorder = Recorder(expected=2)
    await runtime.create("a", recorder, topics=["in"])
    await bus.publish("in", Event("queued-before-start"))
    assert runtime.info("a").mailbox == 1
    await runtime.start("a")
    await bus.publish("in", Event("after-start"))
    await recorder.wait()
    await runtime.stop("a")
    assert runtime.info("a").status is AgentStatus.STOPPED
    assert await bus.publish("in", Event("while-stopped")) == 0
    await runtime.start("a")
    assert await bus.publish("in", Event("restarted")) == 1


async def test_full_mailbox_makes_the_publisher_wait_and_loses_nothing(bus):
    runtime = AgentRuntime(bus, mailbox_size=4)
    recorder = Recorder(expected=100)
    gate = asyncio.Event()

    async def slow(ctx: Context, event: Event) -> None:
        await gate.wait()
        await recorder(ctx, event)

    await runtime.spawn("slow", slow, topics=["in"])

    async def publish_all():
        for i in range(100):
            await bus.publish("in", Event("t", str(i).encode()))

    publisher = asyncio.create_task(publish_all())
    await settle()
    assert not publisher.done()  # blocked on the bounded mailbox
    assert runtime.info("slow").mailbox <= 4
    gate.set()
    await publisher
    await recorder.wait()
    assert [e.payload for e in recorder.events] == [str(i).encode() for i in range(100)]
    await runtime.shutdown()


def test_restart_backoff_doubles_and_is_capped():
    policy = RestartPolicy(initial_backoff_s=0.1, max_backoff_s=0.5)
    assert [policy.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_handler_must_be_callable():
    from loom.agents import FunctionAgent

    with pytest.raises(TypeError, match="callable"):
        FunctionAgent("not a function")  # type: ignore[arg-type]


def test_handles_needs_a_type():
    with pytest.raises(ValueError, match="at least one"):
        handles()


async def test_directory_follows_agents(bus, runtime):
    await runtime.spawn("a", Recorder(), topics=["sensor.*"])
    directory = runtime.directory
    assert [r.agent_id for r in directory.by_topic("sensor.kitchen")] == ["a"]
    await runtime.subscribe("a", "alerts")
    assert [r.agent_id for r in directory.by_topic("alerts")] == ["a"]
    await runtime.unsubscribe("a", "alerts")
    assert directory.by_topic("alerts") == []
    await runtime.delete("a")
    assert directory.by_id("a") is None


async def test_agent_state_persists_in_the_store(bus, tmp_path):
    from loom.state import RocksDBStateStore

    async def counter(ctx: Context, event: Event) -> None:
        count = int(await ctx.state.get("count") or b"0") + 1
        await ctx.state.put("count", str(count).encode(), sync=True)
        done.set()

    for expected in (b"1", b"2"):
        store = RocksDBStateStore(tmp_path / "db")
        runtime = AgentRuntime(bus, state_store=store)
        done = asyncio.Event()
        await runtime.spawn("counter", counter, topics=["tick"])
        await bus.publish("tick", Event("tick"))
        await asyncio.wait_for(done.wait(), 2)
        assert await store.for_agent("counter").get("count") == expected
        await runtime.shutdown()
        await store.close()


async def test_stop_right_after_start_still_runs_on_stop(runtime):
    calls = []

    class Lifecycle(Agent):
        async def on_start(self, ctx: Context) -> None:
            calls.append("start")

        async def on_stop(self, ctx: Context) -> None:
            calls.append("stop")

    for round_ in range(3):
        await runtime.spawn(f"quick{round_}", Lifecycle())
        await runtime.stop(f"quick{round_}")  # before the agent's task ever ran
    assert calls == ["start", "stop"] * 3
