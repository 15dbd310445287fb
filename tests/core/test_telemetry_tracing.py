"""Tracing: one trace follows an event from its publisher through agents, the broker and
capabilities, with the W3C trace context in Event.metadata and ActionCall.headers.

Spans are collected by the OpenTelemetry SDK's own InMemorySpanExporter; the bus, the
runtime, the broker and the LLM client are the real ones (the LLM answers from a real
HTTP server on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the telemetry extra: loom-core[telemetry]")

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from loom import ActionCall, CapabilityDescriptor, Event, QoS
from loom.actions import ActionBroker, NativeProvider, Provider, capability
from loom.agents import AgentRuntime, RestartPolicy
from loom.bus import MemoryBus
from loom.models import ModelRouter, OpenAIChatModel, OpenAIConfig, RoutingRequest
from loom.models.testing import ChatCompletionsServer, Reply
from loom.telemetry import Telemetry, TelemetryConfig, configure
from loom.telemetry import _switch as switch

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def traced():
    """Telemetry with tracing "all" and an in-memory exporter; shut down after the test."""
    made: list[Telemetry] = []

    def make(**fields) -> tuple[Telemetry, InMemorySpanExporter]:
        telemetry = configure(TelemetryConfig(tracing="all", **fields))
        memory = InMemorySpanExporter()
        telemetry.add_span_processor(SimpleSpanProcessor(memory))
        made.append(telemetry)
        return telemetry, memory

    yield make
    for telemetry in made:
        await telemetry.shutdown()


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _one(spans: list[ReadableSpan], name: str, **attributes: object) -> ReadableSpan:
    found = [
        s
        for s in spans
        if s.name == name and all(s.attributes.get(k) == v for k, v in attributes.items())
    ]
    assert len(found) == 1, f"{len(found)} spans {name} {attributes}: {[s.name for s in spans]}"
    return found[0]


def _traceparent_ids(value: str) -> tuple[int, int, str]:
    version, trace_id, span_id, flags = value.split("-")
    assert version == "00"
    return int(trace_id, 16), int(span_id, 16), flags


async def test_one_trace_from_publisher_through_agents_broker_and_capability(traced):
    _, memory = traced()
    seen_headers: dict[str, str] = {}
    got_reply: list[Event] = []
    done = asyncio.Event()

    async with MemoryBus() as bus:

        @capability("double")
        async def double(x: int) -> int:
            # Inside the capability the capability span is current: what it publishes
            # belongs to the trace too.
            await bus.publish("audit.double", Event("audit", json.dumps({"x": x}).encode()))
            return 2 * x

        class Recording(NativeProvider):
            async def invoke(self, call: ActionCall) -> bytes:
                seen_headers.update(call.headers)
                return await super().invoke(call)

        broker = ActionBroker()
        broker.register(Recording(double))
        runtime = AgentRuntime(bus, broker=broker)

        async def requester(ctx, event):
            reply = await ctx.request("jobs", payload={"x": 21}, timeout_s=5)
            got_reply.append(reply)
            await ctx.emit("done", "finished")
            done.set()

        async def worker(ctx, event):
            result = await ctx.tool("double", {"x": 21})
            await ctx.reply(event, {"result": result})

        async def auditor(ctx, event):
            pass

        await runtime.spawn("req", requester, topics=["start"])
        await runtime.spawn("worker", worker, topics=["jobs"])
        await runtime.spawn("auditor", auditor, topics=["audit.>"])
        start = Event("go")
        await bus.publish("start", start)
        await asyncio.wait_for(done.wait(), 5)
        for _ in range(50):  # the auditor's handle span ends on its own task
            if any(
                s.name == "loom.handle" and s.attributes.get("loom.agent.id") == "auditor"
                for s in memory.get_finished_spans()
            ):
                break
            await asyncio.sleep(0.01)
        await runtime.shutdown()

    spans = list(memory.get_finished_spans())
    root = _one(spans, "loom.publish", **{"messaging.destination.name": "start"})
    handle_req = _one(spans, "loom.handle", **{"loom.agent.id": "req"})
    publish_jobs = _one(spans, "loom.publish", **{"messaging.destination.name": "jobs"})
    handle_worker = _one(spans, "loom.handle", **{"loom.agent.id": "worker"})
    invoke = _one(spans, "loom.invoke", **{"loom.capability": "double"})
    cap = _one(spans, "loom.capability", **{"loom.capability": "double"})
    publish_audit = _one(spans, "loom.publish", **{"messaging.destination.name": "audit.double"})
    handle_auditor = _one(spans, "loom.handle", **{"loom.agent.id": "auditor"})
    publish_reply = _one(
        spans, "loom.publish", **{"messaging.destination.name": "agent.req.replies"}
    )
    publish_done = _one(spans, "loom.publish", **{"messaging.destination.name": "done"})

    # One trace, every span in it.
    trace_ids = {s.context.trace_id for s in spans}
    assert trace_ids == {root.context.trace_id}
    # Parent links: publisher -> agent -> request -> agent -> invoke -> capability -> ...
    assert _parent(root) is None
    assert _parent(handle_req) == root.context.span_id
    assert _parent(publish_jobs) == handle_req.context.span_id
    assert _parent(handle_worker) == publish_jobs.context.span_id
    assert _parent(invoke) == handle_worker.context.span_id
    assert _parent(cap) == invoke.context.span_id
    assert _parent(publish_audit) == cap.context.span_id
    assert _parent(handle_auditor) == publish_audit.context.span_id
    assert _parent(publish_reply) == handle_worker.context.span_id
    assert _parent(publish_done) == handle_req.context.span_id
    # Kinds, and what a publish says about its delivery.
    assert root.kind is SpanKind.PRODUCER and handle_req.kind is SpanKind.CONSUMER
    assert invoke.kind is SpanKind.CLIENT
    assert publish_jobs.attributes["loom.deliveries"] == 1
    delivers = [e for e in publish_jobs.events if e.name == "deliver"]
    assert len(delivers) == 1 and delivers[0].attributes["loom.subscription"].startswith("sub_jobs")
    assert invoke.attributes["loom.status"] == "OK"
    assert cap.attributes["loom.provider.kind"] == "NATIVE"
    # The context really travelled in the data: the published event, the reply, the call.
    assert _traceparent_ids(start.metadata["traceparent"])[:2] == (
        root.context.trace_id,
        root.context.span_id,
    )
    assert _traceparent_ids(got_reply[0].metadata["traceparent"])[:2] == (
        publish_reply.context.trace_id,
        publish_reply.context.span_id,
    )
    trace_id, span_id, flags = _traceparent_ids(seen_headers["traceparent"])
    assert (trace_id, span_id) == (cap.context.trace_id, cap.context.span_id)
    assert int(flags, 16) & 1  # sampled


async def test_an_event_from_another_process_continues_its_trace(traced):
    """An event that arrives with a traceparent (off the bridge or NATS) is handled in that
    trace, and what its handler publishes too."""
    _, memory = traced()
    remote_trace, remote_span = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    handled = asyncio.Event()
    async with MemoryBus() as bus:
        runtime = AgentRuntime(bus)

        async def relay(ctx, event):
            await ctx.emit("out", "relayed")
            handled.set()

        await runtime.spawn("relay", relay, topics=["in"])
        incoming = Event(
            "remote",
            metadata={"traceparent": f"00-{remote_trace:032x}-{remote_span:016x}-01"},
        )
        await bus.publish("in", incoming)
        await asyncio.wait_for(handled.wait(), 5)
        await runtime.shutdown()
    spans = memory.get_finished_spans()
    publish_in = _one(spans, "loom.publish", **{"messaging.destination.name": "in"})
    handle = _one(spans, "loom.handle", **{"loom.agent.id": "relay"})
    publish_out = _one(spans, "loom.publish", **{"messaging.destination.name": "out"})
    assert {s.context.trace_id for s in spans} == {remote_trace}
    assert _parent(publish_in) == remote_span and publish_in.parent.is_remote
    assert _parent(handle) == publish_in.context.span_id
    assert _parent(publish_out) == handle.context.span_id


async def test_a_failing_handler_marks_its_span_and_the_agent_restarts(traced):
    _, memory = traced()
    async with MemoryBus() as bus:
        runtime = AgentRuntime(bus, restart_policy=RestartPolicy(initial_backoff_s=0.001))
        calls = 0
        second = asyncio.Event()

        async def flaky(ctx, event):
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ValueError("bad reading")
            second.set()

        await runtime.spawn("flaky", flaky, topics=["t"])
        await bus.publish("t", Event("a"))
        await bus.publish("t", Event("b"))
        await asyncio.wait_for(second.wait(), 5)
        info = runtime.info("flaky")
        await runtime.shutdown()
    assert info.failures == 1 and info.restarts == 1
    handles = [s for s in memory.get_finished_spans() if s.name == "loom.handle"]
    assert [s.status.status_code for s in handles] == [StatusCode.ERROR, StatusCode.UNSET]
    assert "ValueError: bad reading" in (handles[0].status.description or "")
    assert handles[0].events[0].name == "exception"


async def test_failed_calls_mark_the_invoke_span_with_their_code(traced):
    _, memory = traced()
    broker = ActionBroker()

    @capability("strict")
    async def strict(n: int) -> int:
        return n

    broker.register(NativeProvider(strict))
    missing = await broker.invoke(ActionCall("nope", b"{}"))
    invalid = await broker.invoke(ActionCall("strict", b'{"n": "not a number"}'))
    assert missing.error is not None and invalid.error is not None
    spans = memory.get_finished_spans()
    invokes = [s for s in spans if s.name == "loom.invoke"]
    codes = {s.attributes["loom.capability"]: s.attributes["loom.error.code"] for s in invokes}
    assert codes == {"nope": "NOT_FOUND", "strict": "INVALID_PARAMS"}
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)
    # NOT_FOUND never reaches a provider; the native provider validates (and refuses)
    # inside its capability span, a child of the invoke span.
    cap = _one(list(spans), "loom.capability")
    assert cap.attributes["loom.capability"] == "strict"
    assert (
        _parent(cap)
        == next(s for s in invokes if s.attributes["loom.capability"] == "strict").context.span_id
    )


async def test_a_remote_provider_gets_the_capability_span_in_the_call_headers(traced):
    """What a bridge or MCP provider forwards: headers whose traceparent names the span
    that waits for it."""
    _, memory = traced()
    forwarded: list[dict[str, str]] = []

    class Remote(Provider):
        descriptor = CapabilityDescriptor("remote.echo")

        async def invoke(self, call: ActionCall) -> bytes:
            forwarded.append(dict(call.headers))
            return call.payload

    broker = ActionBroker()
    broker.register(Remote())
    result = await broker.invoke(ActionCall("remote.echo", b'"x"'))
    assert result.output == b'"x"'
    cap = _one(list(memory.get_finished_spans()), "loom.capability")
    trace_id, span_id, _ = _traceparent_ids(forwarded[0]["traceparent"])
    assert (trace_id, span_id) == (cap.context.trace_id, cap.context.span_id)
    # The envelope headers are still there beside it.
    assert forwarded[0]["thread_id"] and forwarded[0]["ttl"]


async def test_sampled_out_traces_still_carry_context_but_record_nothing():
    telemetry = configure(TelemetryConfig(tracing="sampled", sample_ratio=0.0))
    memory = InMemorySpanExporter()
    telemetry.add_span_processor(SimpleSpanProcessor(memory))
    try:
        async with MemoryBus() as bus:
            sub = await bus.subscribe("t", qos=QoS.BATCHED)
            await bus.publish("t", Event("x"))
            _, got = await sub.get()
        flags = got.metadata["traceparent"].rsplit("-", 1)[1]
        assert not int(flags, 16) & 1  # propagated, flagged not sampled
        assert memory.get_finished_spans() == ()
    finally:
        await telemetry.shutdown()


async def test_with_tracing_off_nothing_is_added_and_no_hook_is_set():
    telemetry = configure(TelemetryConfig(tracing="off"))  # metrics on, nothing exports them
    try:
        assert switch.publish is None and switch.invoke is None and switch.handle is None
        async with MemoryBus() as bus:
            sub = await bus.subscribe("t", qos=QoS.BATCHED)
            await bus.publish("t", Event("x", metadata={"k": "v"}))
            _, got = await sub.get()
        assert got.metadata == {"k": "v"}
    finally:
        await telemetry.shutdown()


async def test_llm_calls_are_spans_with_usage_and_pass_the_trace_on(traced):
    _, memory = traced()
    async with ChatCompletionsServer() as server:
        server.script(Reply.status(503), Reply.completion("hello"))
        llm = OpenAIChatModel(
            OpenAIConfig(
                base_url=server.base_url.replace("127.0.0.1", "user:pw@127.0.0.1"),
                model="m1",
                api_key="sk-secret-never-in-spans",
                backoff_base_s=0.01,
                backoff_max_s=0.02,
                location="local",
            )
        )
        try:
            turn = await llm.complete(USER)
        finally:
            await llm.aclose()
    assert turn.text == "hello"
    span = _one(list(memory.get_finished_spans()), "loom.llm.chat")
    attrs = span.attributes
    assert attrs["gen_ai.provider.name"] == "openai" and attrs["gen_ai.request.model"] == "m1"
    assert attrs["server.address"] == f"http://127.0.0.1:{server.port}/v1/chat/completions"
    assert attrs["gen_ai.usage.input_tokens"] == 10 and attrs["gen_ai.usage.output_tokens"] == 5
    assert [e.name for e in span.events] == ["retry"]
    everything = json.dumps([dict(s.attributes) for s in memory.get_finished_spans()])
    assert "sk-secret" not in everything and "pw@" not in everything
    # The endpoint got the trace context: a traced vLLM would continue this trace.
    sent = [r.headers.get("traceparent") for r in server.requests]
    assert all(
        _traceparent_ids(h)[:2] == (span.context.trace_id, span.context.span_id) for h in sent
    )


async def test_a_routed_request_is_a_route_span_over_the_provider_call(traced):
    from loom.models import RulePolicy

    _, memory = traced()
    async with ChatCompletionsServer() as server:
        server.script(Reply.completion("routed"))
        llm = OpenAIChatModel(
            OpenAIConfig(base_url=server.base_url, model="m2", location="local", api_key="k")
        )
        router = ModelRouter(RulePolicy(), {"local": llm})
        try:
            routed = await router.run(RoutingRequest(), USER)
        finally:
            await router.aclose()
    assert routed.turn.text == "routed"
    spans = list(memory.get_finished_spans())
    route = _one(spans, "loom.route")
    chat = _one(spans, "loom.llm.chat")
    assert _parent(chat) == route.context.span_id
    assert route.attributes["loom.route.route"] == routed.decision.route.value
    assert route.attributes["loom.route.served_by"] == "local"


async def test_a_failing_llm_call_is_an_error_span(traced):
    _, memory = traced()
    async with ChatCompletionsServer() as server:
        server.script(Reply.status(401))
        llm = OpenAIChatModel(OpenAIConfig(base_url=server.base_url, model="m", api_key="k"))
        with pytest.raises(Exception, match="401"):
            await llm.complete(USER)
        await llm.aclose()
    span = _one(list(memory.get_finished_spans()), "loom.llm.chat")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["loom.llm.attempts"] == 1


async def test_inject_serves_other_transports_and_is_a_no_op_with_tracing_off(traced):
    from loom.telemetry import inject

    headers: dict[str, str] = {}
    assert inject(headers) is False and headers == {}  # tracing off: nothing, nothing loaded
    telemetry, memory = traced()
    assert inject(headers) is False and headers == {}  # on, but no span current
    assert telemetry.tracer is not None
    with telemetry.tracer.start_as_current_span("forward") as span:
        assert inject(headers) is True
    trace_id, span_id, _ = _traceparent_ids(headers["traceparent"])
    assert (trace_id, span_id) == (
        span.get_span_context().trace_id,
        span.get_span_context().span_id,
    )
    assert [s.name for s in memory.get_finished_spans()] == ["forward"]
