"""Collaboration primitives on the bus: request/reply, fanout, barrier, contract net.

The requesting side is a :class:`Collab` (code that is no agent: replies on
``thread.{id}.reply`` through a subscription per call); the responders are real agents.
The agent side of the same primitives (``ctx.request`` ...) is in test_collab_agents.py.
"""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from loom import Envelope, Event, InvalidTopicError
from loom.agents import AgentRuntime, Context
from loom.bus import MemoryBus
from loom.collab import (
    ALL,
    ANY,
    COLLAB_AWARD,
    COLLAB_BARRIER,
    COLLAB_CFP,
    COLLAB_PROPOSAL,
    COLLAB_SUMMARY,
    COLLAB_TIMEOUT,
    MAJORITY,
    Collab,
    CollabTimeout,
    Strategy,
    Thread,
    first_k,
    json_payload,
    window,
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


class Reports:
    """Every collab.summary and collab.timeout published on thread topics."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Event]] = []

    def __call__(self, topic: str, event: Event) -> None:
        self.events.append((topic, event))

    def of(self, event_type: str) -> list[tuple[str, Event]]:
        return [(t, e) for t, e in self.events if e.type == event_type]

    async def settle(self) -> None:
        for _ in range(10):
            await asyncio.sleep(0)


@pytest.fixture
async def reports(bus):
    recorder = Reports()
    for pattern in ("thread.*.reply", "thread.*.broadcast"):
        await bus.subscribe(pattern, event_types=(COLLAB_SUMMARY, COLLAB_TIMEOUT), handler=recorder)
    return recorder


def echo(delay: float = 0.0, times: int = 1):
    """An agent handler that answers each event ``times`` times after ``delay`` seconds."""

    async def handler(ctx: Context, event: Event) -> None:
        await asyncio.sleep(delay)
        for _ in range(times):
            await ctx.reply(event, "collab.reply", event.payload)

    return handler


def assert_report(event: Event, *, priority: int = 40) -> None:
    assert event.priority == priority
    assert event.tags == ("collab",)
    assert event.sender == "client"


# -- request/reply --------------------------------------------------------------------------


async def test_request_to_an_echo_agent_returns_the_payload(bus, runtime, reports):  # AC4.1
    await runtime.spawn("echo", echo(), topics=["svc.echo"])
    collab = Collab(bus, "client")
    reply = await collab.request("svc.echo", payload=b"hello", timeout_s=1.0)
    assert reply.payload == b"hello"
    assert reply.sender == "agent.echo"
    # The request was a new thread whose id is its correlation id; the reply kept both.
    assert reply.correlation_id == reply.thread_id
    await reports.settle()
    [(topic, summary)] = reports.of(COLLAB_SUMMARY)
    assert topic == f"thread.{reply.thread_id}.reply"
    assert summary.metadata["primitive"] == "request"
    assert summary.metadata["received"] == "1"
    assert summary.correlation_id == reply.correlation_id
    assert_report(summary)
    assert reports.of(COLLAB_TIMEOUT) == []
    # The subscription made for the call is gone.
    assert bus.stats(topic).active_subscriptions == 1  # the observer's wildcard only
    assert (collab.stats.started, collab.stats.completed) == (1, 1)


async def test_json_payloads_and_metadata(bus, runtime):
    async def answer(ctx: Context, event: Event) -> None:
        assert event.metadata["content_type"] == "application/json"
        assert event.metadata["lang"] == "en"
        await ctx.reply(event, {"echo": json_payload(event)})

    await runtime.spawn("svc", answer, topics=["svc.json"])
    reply = await Collab(bus, "client").request(
        "svc.json", "ask", {"q": "why"}, metadata={"lang": "en"}, timeout_s=1.0
    )
    assert reply.type == "collab.reply"
    assert json_payload(reply) == {"echo": {"q": "why"}}


async def test_a_responder_that_is_no_agent(bus):
    responder = Collab(bus, "plain")

    async def answer(topic: str, event: Event) -> None:
        await responder.reply(event, "pong", "text: " + event.payload.decode())

    await bus.subscribe("svc.plain", handler=answer)
    reply = await Collab(bus, "client").request("svc.plain", payload="hi", timeout_s=1.0)
    assert (reply.type, reply.payload, reply.sender) == ("pong", b"text: hi", "plain")
    assert reply.reply_to == f"thread.{reply.thread_id}.reply"
    with pytest.raises(ValueError, match=r"\(pong\) does not carry JSON"):
        json_payload(reply)


async def test_request_to_a_topic_nobody_serves_times_out_cleanly(bus, reports):
    collab = Collab(bus, "client")
    with pytest.raises(CollabTimeout) as caught:
        await collab.request("nobody.home", payload=b"?", timeout_s=0.05)
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert (error.primitive, error.reason, error.result) == (
        "request",
        "request_reply_timeout",
        None,
    )
    assert "'nobody.home'" in str(error) and "0.05 s" in str(error)
    await reports.settle()
    [(topic, timeout)] = reports.of(COLLAB_TIMEOUT)
    assert topic == f"thread.{error.thread_id}.reply"
    assert timeout.metadata["reason"] == "request_reply_timeout"
    assert timeout.metadata["timeout_ms"] == "50"
    assert timeout.correlation_id == error.correlation_id
    assert_report(timeout)
    [(_, summary)] = reports.of(COLLAB_SUMMARY)
    assert summary.metadata["received"] == "0"
    assert collab.stats.timeouts == 1
    assert bus.stats(topic).active_subscriptions == 1  # only the observer is left
    assert bus.stats("nobody.home").published == 1


async def test_a_late_reply_is_dropped_and_never_reaches_the_next_request(bus, runtime):
    async def slow_then_fast(ctx: Context, event: Event) -> None:
        if event.payload == b"first":
            await asyncio.sleep(0.15)
        await ctx.reply(event, "collab.reply", event.payload)

    await runtime.spawn("svc", slow_then_fast, topics=["svc"])
    collab = Collab(bus, "client")
    thread = Thread.new("client", "shared")  # both requests use one reply topic
    with pytest.raises(CollabTimeout):
        await collab.request("svc", payload=b"first", timeout_s=0.05, thread=thread)

    async def answer_second_late(ctx: Context, event: Event) -> None:
        await asyncio.sleep(0.2)  # the late "first" arrives while "second" waits
        await ctx.reply(event, "collab.reply", event.payload)

    await runtime.spawn("svc2", answer_second_late, topics=["svc2"])
    reply = await collab.request("svc2", payload=b"second", timeout_s=2.0, thread=thread)
    assert reply.payload == b"second"
    assert collab.stats.late == 1


async def test_concurrent_requests_keep_their_own_deadlines(bus, runtime):
    await runtime.spawn("slow", echo(0.15), topics=["svc.slow"])
    collab = Collab(bus, "client")
    patient = asyncio.create_task(collab.request("svc.slow", payload=b"1", timeout_s=2.0))
    await asyncio.sleep(0.01)
    started = asyncio.get_running_loop().time()
    with pytest.raises(CollabTimeout):  # shorter, and started later: it expires first
        await collab.request("nobody", payload=b"2", timeout_s=0.05)
    assert asyncio.get_running_loop().time() - started < 1.0  # not the other's 2 s
    assert (await patient).payload == b"1"
    assert (collab.stats.completed, collab.stats.timeouts) == (1, 1)


async def test_a_request_stuck_publishing_still_times_out(bus):
    # A responder that never reads, with a full mailbox: the publish itself waits for room.
    runtime = AgentRuntime(bus, mailbox_size=1)
    gate = asyncio.Event()

    async def stuck(ctx: Context, event: Event) -> None:
        await gate.wait()

    await runtime.spawn("stuck", stuck, topics=["svc.stuck"])
    await bus.publish("svc.stuck", Event("first"))  # in the handler
    await bus.publish("svc.stuck", Event("second"))  # fills the mailbox of 1
    collab = Collab(bus, "client")
    started = asyncio.get_running_loop().time()
    with pytest.raises(CollabTimeout):  # (wait_for's own TimeoutError would not match)
        await asyncio.wait_for(collab.request("svc.stuck", payload=b"?", timeout_s=0.1), 2)
    assert asyncio.get_running_loop().time() - started < 1.0
    # The deadline's cancellation did not leak: this task goes on awaiting normally.
    await asyncio.sleep(0.01)
    assert asyncio.current_task().cancelling() == 0
    gate.set()
    await runtime.shutdown()


async def test_bad_request_arguments_are_refused(bus):
    collab = Collab(bus, "client")
    for bad in (0, -1.0, math.nan, math.inf, True, "1"):
        with pytest.raises(ValueError, match="timeout_s must be a positive number"):
            await collab.request("svc", timeout_s=bad)
    with pytest.raises(InvalidTopicError):
        await collab.request("svc.*", timeout_s=1.0)
    with pytest.raises(TypeError, match="not bytes, str or JSON"):
        await collab.request("svc", payload=object(), timeout_s=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sender must be a non-empty str"):
        Collab(bus, "")
    assert bus.stats("svc") is None  # nothing was published


# -- fanout / fanin -------------------------------------------------------------------------


@pytest.fixture
async def three_responders(runtime):
    """Responders on fan.a, fan.b, fan.c answering after 0, 50 and 100 ms."""
    for name, delay in (("a", 0.0), ("b", 0.05), ("c", 0.1)):
        await runtime.spawn(name, echo(delay), topics=[f"fan.{name}"])
    return ["fan.a", "fan.b", "fan.c"]


async def test_first_k_returns_exactly_k_replies(bus, three_responders, reports):  # AC4.2
    collab = Collab(bus, "client")
    result = await collab.fanout(three_responders, payload=b"q", strategy=first_k(2), timeout_s=1)
    assert len(result.replies) == 2
    assert result.complete and result.strategy == first_k(2)
    assert result.answered == ("fan.a", "fan.b")
    assert result.missing == ("fan.c",)
    assert [r.sender for r in result.replies] == ["agent.a", "agent.b"]
    assert {r.correlation_id for r in result.replies} == {
        f"{result.correlation_id}:0",
        f"{result.correlation_id}:1",
    }
    await reports.settle()
    [(topic, summary)] = reports.of(COLLAB_SUMMARY)
    assert topic == f"thread.{result.thread_id}.reply"
    assert summary.metadata["target_first_k"] == "2"
    assert (summary.metadata["received"], summary.metadata["targets"]) == ("2", "3")
    assert_report(summary)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (ANY, ["agent.a"]),
        ("any", ["agent.a"]),
        (MAJORITY, ["agent.a", "agent.b"]),
        ("majority", ["agent.a", "agent.b"]),
        (ALL, ["agent.a", "agent.b", "agent.c"]),
        (window(0.3), ["agent.a", "agent.b", "agent.c"]),
    ],
)
async def test_strategies(bus, three_responders, strategy, expected):
    result = await Collab(bus, "client").fanout(
        three_responders, payload=b"q", strategy=strategy, timeout_s=1.0
    )
    assert [r.sender for r in result.replies] == expected
    assert result.complete


async def test_window_collects_until_its_deadline(bus, runtime, three_responders):
    await runtime.spawn("slow", echo(0.5), topics=["fan.slow"])
    result = await Collab(bus, "client").fanout(
        [*three_responders, "fan.slow"], payload=b"q", strategy=window(0.25), timeout_s=5.0
    )
    assert result.complete
    assert result.answered == ("fan.a", "fan.b", "fan.c")
    assert result.elapsed_s >= 0.25  # it waited for its whole window


async def test_fanout_ending_short_carries_what_arrived(bus, runtime, reports):
    await runtime.spawn("a", echo(), topics=["fan.a"])
    await runtime.spawn("b", echo(), topics=["fan.b"])
    collab = Collab(bus, "client")
    with pytest.raises(CollabTimeout) as caught:
        await collab.fanout(["fan.a", "fan.b", "fan.silent"], strategy=ALL, timeout_s=0.1)
    error = caught.value
    assert (error.primitive, error.reason) == ("fanout", "fanout_timeout")
    result = error.result
    assert result is not None and not result.complete
    assert sorted(result.answered) == ["fan.a", "fan.b"]
    assert result.missing == ("fan.silent",)
    assert "missing: fan.silent" in str(error)
    await reports.settle()
    [(_, timeout)] = reports.of(COLLAB_TIMEOUT)
    assert timeout.metadata["reason"] == "fanout_timeout"
    assert timeout.metadata["received"] == "2"
    [(_, summary)] = reports.of(COLLAB_SUMMARY)
    assert (summary.metadata["received"], summary.metadata["expected"]) == ("2", "3")
    assert collab.stats.timeouts == 1


async def test_window_with_no_reply_times_out(bus):
    with pytest.raises(CollabTimeout) as caught:
        await Collab(bus, "client").fanout(["fan.none"], strategy=window(0.05), timeout_s=1)
    assert caught.value.result is not None and caught.value.result.replies == ()


async def test_duplicate_replies_count_once(bus, runtime):
    await runtime.spawn("twice", echo(times=2), topics=["fan.twice"])
    await runtime.spawn("slow", echo(0.1), topics=["fan.slow"])
    collab = Collab(bus, "client")
    result = await collab.fanout(["fan.twice", "fan.slow"], strategy=ALL, timeout_s=1.0)
    assert [r.sender for r in result.replies] == ["agent.twice", "agent.slow"]
    assert collab.stats.duplicates == 1


async def test_bad_fanout_arguments_are_refused(bus):
    collab = Collab(bus, "client")
    with pytest.raises(ValueError, match="first_k must be an int >= 1, got 0"):
        first_k(0)
    with pytest.raises(ValueError, match="window must be a positive number"):
        window(0)
    with pytest.raises(ValueError, match="strategy must be a Strategy"):
        await collab.fanout(["a"], strategy="most")
    with pytest.raises(TypeError, match="not one str"):
        await collab.fanout("a.b", timeout_s=1.0)
    with pytest.raises(ValueError, match="at least one target"):
        await collab.fanout([], timeout_s=1.0)
    with pytest.raises(ValueError, match="timeout_s must be a positive number"):
        await collab.fanout(["a"], timeout_s=0)
    with pytest.raises(InvalidTopicError):
        await collab.fanout(["ok", "not ok"], timeout_s=1.0)
    assert bus.stats("ok") is None  # validated before anything was published


def test_strategy_rules():
    assert [str(s) for s in (ANY, first_k(3), MAJORITY, ALL, window(0.5))] == [
        "any",
        "first_k(3)",
        "majority",
        "all",
        "window(0.5s)",
    ]
    assert Strategy.of("all") is ALL
    # Majority is more than half of the targets.
    assert not MAJORITY.satisfied(replies=2, answered=2, targets=4)
    assert MAJORITY.satisfied(replies=3, answered=3, targets=4)
    assert MAJORITY.satisfied(replies=2, answered=2, targets=3)
    assert first_k(2).satisfied(replies=2, answered=1, targets=3)  # counts replies
    assert not ALL.satisfied(replies=5, answered=2, targets=3)  # counts targets
    assert not window(1).satisfied(replies=9, answered=9, targets=9)
    assert window(0.2).deadline_s(5.0) == 0.2 and ALL.deadline_s(5.0) == 5.0


# -- barrier --------------------------------------------------------------------------------


async def test_barrier_completes_when_n_distinct_parties_arrive(bus, reports):
    async def join(name: str, delay: float):
        await asyncio.sleep(delay)
        return await Collab(bus, name).barrier("meet", 3, timeout_s=2.0)

    # The last one subscribes after the others checked in: it learns about them anyway.
    results = await asyncio.gather(join("p1", 0), join("p2", 0.02), join("p3", 0.1))
    for result in results:
        assert result.complete
        assert sorted(result.arrived) == ["p1", "p2", "p3"]
    await reports.settle()
    summaries = reports.of(COLLAB_SUMMARY)
    assert len(summaries) == 3
    assert {topic for topic, _ in summaries} == {"thread.meet.broadcast"}
    assert all(e.metadata["primitive"] == "barrier" for _, e in summaries)
    assert sorted(json.loads(summaries[0][1].metadata["participants"])) == ["p1", "p2", "p3"]


async def test_barrier_times_out_and_reports_who_arrived(bus, reports):
    async def join(name: str):
        return await Collab(bus, name).barrier("meet", 3, timeout_s=0.1)

    outcomes = await asyncio.gather(join("p1"), join("p2"), return_exceptions=True)
    for outcome in outcomes:
        assert isinstance(outcome, CollabTimeout)
        assert outcome.reason == "barrier_timeout"
        assert outcome.result is not None and sorted(outcome.result.arrived) == ["p1", "p2"]
        assert not outcome.result.complete
    await reports.settle()
    timeouts = reports.of(COLLAB_TIMEOUT)
    assert [t for t, _ in timeouts] == ["thread.meet.broadcast"] * 2
    assert {e.metadata["arrived"] for _, e in timeouts} == {"2"}


async def test_barrier_observer_is_not_counted(bus):
    observer = Collab(bus, "observer")
    watching = asyncio.create_task(observer.barrier("meet", 2, timeout_s=1, participate=False))
    await asyncio.sleep(0.02)
    await asyncio.gather(
        Collab(bus, "p1").barrier("meet", 2, timeout_s=1),
        Collab(bus, "p2").barrier("meet", 2, timeout_s=1),
    )
    result = await watching
    assert sorted(result.arrived) == ["p1", "p2"]


async def test_barrier_skips_malformed_check_ins(bus):
    party = Collab(bus, "p1")
    waiting = asyncio.create_task(party.barrier("meet", 2, timeout_s=1))
    await asyncio.sleep(0.01)
    envelope = Envelope.new("meet", "intruder")
    await bus.publish(
        "thread.meet.broadcast", envelope.apply_to_event(Event(COLLAB_BARRIER, b"not json"))
    )
    await bus.publish("thread.meet.broadcast", Event(COLLAB_BARRIER, b""))  # no sender
    await Collab(bus, "p2").barrier("meet", 2, timeout_s=1)
    result = await waiting
    assert sorted(result.arrived) == ["p1", "p2"]
    assert party.stats.malformed == 2


async def test_bad_barrier_arguments_are_refused(bus):
    collab = Collab(bus, "p")
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        await collab.barrier("meet", 0)
    with pytest.raises(ValueError, match="timeout_s"):
        await collab.barrier("meet", 2, timeout_s=-1)
    with pytest.raises(ValueError, match=r"thread id 'a\.b' must hold no dots"):
        await collab.barrier("a.b", 2)


# -- contract net ---------------------------------------------------------------------------


def bidder(score: str | None, *, deliver: bool = True, extra: dict[str, str] | None = None):
    """A bidder agent: proposes with ``score`` metadata (raw text), delivers if awarded."""

    async def handler(ctx: Context, event: Event) -> None:
        if event.type == COLLAB_CFP:
            metadata = dict(extra or {})
            if score is not None:
                metadata["score"] = score
            await ctx.reply(event, COLLAB_PROPOSAL, f"bid {score}".encode(), metadata=metadata)
        elif event.type == COLLAB_AWARD and event.metadata["award_to"] == ctx.sender and deliver:
            await ctx.reply(event, "collab.reply", b"work by " + ctx.sender.encode())

    return handler


async def test_the_best_score_wins(bus, runtime, reports):  # AC4.3
    for name, score in (("b10", "10"), ("b80", "80"), ("b50", "50")):
        await runtime.spawn(
            name, bidder(score, extra={"tool": name}), topics=["thread.t.broadcast"]
        )
    awards = await bus.subscribe("thread.t.broadcast", event_types=(COLLAB_AWARD,))
    collab = Collab(bus, "client")
    result = await collab.contract_net("t", b"who?", window_s=0.3, max_awards=1)
    assert result.complete and result.phase == "done"
    assert [p.score for p in result.proposals] == [80.0, 50.0, 10.0]
    assert result.winners == ("agent.b80",)
    assert result.elapsed_s >= 0.3  # without `bidders` the whole window is used
    _, award = awards.get_nowait()
    assert award.metadata["score"] == "80"
    assert award.metadata["award_to"] == "agent.b80"
    assert award.metadata["tool"] == "b80"  # the proposal's own metadata travels on
    assert award.priority == 60 and award.tags == ("collab",)
    assert award.sender == "client" and award.correlation_id == result.correlation_id
    assert awards.qsize() == 0  # one award only
    await reports.settle()
    [(topic, summary)] = reports.of(COLLAB_SUMMARY)
    assert topic == "thread.t.broadcast"
    assert json.loads(summary.metadata["winners"]) == ["agent.b80"]
    assert summary.metadata["max_awards"] == "1"


async def test_agents_scoring_and_results(bus, runtime):  # AC4.3 with real agents
    async def scorer(score: float):
        async def handler(ctx: Context, event: Event) -> None:
            if event.type == COLLAB_CFP:
                await ctx.propose(event, score, {"plan": ctx.agent_id})
            elif event.type == COLLAB_AWARD and event.metadata["award_to"] == ctx.sender:
                await ctx.reply(event, "collab.reply", {"done_by": ctx.agent_id})

        return handler

    await runtime.spawn("a", await scorer(0.7), topics=["thread.job.broadcast"])
    await runtime.spawn("b", await scorer(0.9), topics=["thread.job.broadcast"])
    result = await Collab(bus, "boss").contract_net(
        "job", {"task": "x"}, window_s=10.0, bidders=2, result_timeout_s=5.0
    )
    assert "agent.b" in result.winners[0]
    assert result.elapsed_s < 5.0  # both bid: the 10 s window closed early
    [delivered] = result.results
    assert json_payload(delivered) == {"done_by": "b"}
    assert result.result_of("agent.b") is delivered
    assert result.result_of("agent.a") is None


async def test_malformed_and_missing_scores(bus, runtime):
    await runtime.spawn("nan", bidder("nan"), topics=["thread.t.broadcast"])
    await runtime.spawn("text", bidder("high"), topics=["thread.t.broadcast"])
    await runtime.spawn("none", bidder(None), topics=["thread.t.broadcast"])
    await runtime.spawn("low", bidder("-1.5"), topics=["thread.t.broadcast"])
    collab = Collab(bus, "client")
    result = await collab.contract_net("t", window_s=0.5, max_awards=2)
    assert [(p.sender, p.score) for p in result.proposals] == [
        ("agent.none", 0.0),
        ("agent.low", -1.5),
    ]
    assert result.winners == ("agent.none", "agent.low")
    assert collab.stats.malformed == 2


async def test_no_proposal_ends_short(bus, reports):
    with pytest.raises(CollabTimeout) as caught:
        await Collab(bus, "client").contract_net("empty", window_s=0.05)
    error = caught.value
    assert (error.reason, error.result.phase, error.result.awards) == (
        "contract_net_no_proposals",
        "proposals",
        (),
    )
    await reports.settle()
    [(topic, timeout)] = reports.of(COLLAB_TIMEOUT)
    assert topic == "thread.empty.broadcast"
    assert timeout.metadata["reason"] == "contract_net_no_proposals"


async def test_a_winner_that_does_not_deliver_ends_short(bus, runtime):
    await runtime.spawn("lazy", bidder("0.9", deliver=False), topics=["thread.t.broadcast"])
    await runtime.spawn("busy", bidder("0.5"), topics=["thread.t.broadcast"])
    with pytest.raises(CollabTimeout) as caught:
        await Collab(bus, "client").contract_net(
            "t", window_s=2.0, bidders=2, max_awards=2, result_timeout_s=0.5
        )
    error = caught.value
    assert error.reason == "contract_net_results_timeout"
    assert error.result.phase == "results"
    assert [r.sender for r in error.result.results] == ["agent.busy"]
    assert "no result from agent.lazy" in str(error)


async def test_bad_contract_net_arguments_are_refused(bus):
    collab = Collab(bus, "client")
    with pytest.raises(ValueError, match="window_s must be a positive number"):
        await collab.contract_net("t", window_s=0)
    with pytest.raises(ValueError, match="max_awards must be an int >= 1"):
        await collab.contract_net("t", window_s=1, max_awards=0)
    with pytest.raises(ValueError, match="bidders must be an int >= 1"):
        await collab.contract_net("t", window_s=1, bidders=0)
    with pytest.raises(ValueError, match="result_timeout_s must be a positive number"):
        await collab.contract_net("t", window_s=1, result_timeout_s=0)
    with pytest.raises(ValueError, match="score must be a finite number"):
        await collab.propose(Event(COLLAB_CFP), math.nan)


# -- through runtime agents on the broadcast topic ---------------------------------------------


async def test_request_on_the_broadcast_topic_advances_hop_and_ttl(bus, runtime):  # AC4.4
    seen: list[Event] = []

    async def member(ctx: Context, event: Event) -> None:
        seen.append(event)
        await ctx.reply(event, "collab.reply", b"here")

    await runtime.spawn("member", member, topics=["thread.t4.broadcast"])
    thread = Thread.new("client", "t4")
    reply = await Collab(bus, "client").request(
        thread.broadcast_topic, payload=b"anyone?", thread=thread, timeout_s=1.0
    )
    [request] = seen
    assert (request.metadata["hop"], request.metadata["ttl"]) == ("1", "15")
    assert (reply.metadata["hop"], reply.metadata["ttl"]) == ("1", "15")
    assert reply.thread_id == "t4" and reply.payload == b"here"


async def test_contract_net_through_agents_advances_hop_and_ttl(bus, runtime):  # AC4.4
    cfps: list[Event] = []

    async def member(ctx: Context, event: Event) -> None:
        if event.type == COLLAB_CFP:
            cfps.append(event)
            await ctx.propose(event, 1.0)

    await runtime.spawn("member", member, topics=["thread.t5.broadcast"])
    result = await Collab(bus, "client").contract_net("t5", window_s=1.0, bidders=1)
    [cfp] = cfps
    assert (cfp.metadata["hop"], cfp.metadata["ttl"]) == ("1", "15")
    [proposal] = result.proposals
    assert (proposal.event.metadata["hop"], proposal.event.metadata["ttl"]) == ("1", "15")
    assert proposal.event.thread_id == "t5"
