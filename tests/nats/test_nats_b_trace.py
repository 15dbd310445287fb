"""Trace context across NATS: with tracing on, a publish on one NatsBus is a span whose W3C
``traceparent`` rides in the event's metadata over the wire, and the agent on the other
bus that handles the event continues that trace (and so does what it publishes back).

Spans are collected by the OpenTelemetry SDK's own InMemorySpanExporter; the buses, the
server and the agent runtime are the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the telemetry extra: loom-core[telemetry]")

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from loom import Event, QoS
from loom.agents import AgentRuntime
from loom.errors import InvalidEventError
from loom.telemetry import Telemetry, TelemetryConfig, configure, tracing_on
from loom_nats import NatsBus, StreamLimits

pytestmark = pytest.mark.nats

LIMITS = StreamLimits(max_age=600, duplicate_window=60)


@pytest.fixture
async def traced() -> AsyncIterator[Callable[[], InMemorySpanExporter]]:
    made: list[Telemetry] = []

    def make() -> InMemorySpanExporter:
        telemetry = configure(TelemetryConfig(tracing="all"))
        memory = InMemorySpanExporter()
        telemetry.add_span_processor(SimpleSpanProcessor(memory))
        made.append(telemetry)
        return memory

    yield make
    for telemetry in made:
        await telemetry.shutdown()


@pytest.fixture
async def two_buses(nats_url: str, prefix: str) -> AsyncIterator[tuple[NatsBus, NatsBus]]:
    a = NatsBus(nats_url, prefix=prefix, limits=LIMITS, name="host-a")
    b = NatsBus(nats_url, prefix=prefix, limits=LIMITS, name="host-b")
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await b.shutdown()
        await a.shutdown()


def _spans(memory: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in memory.get_finished_spans() if s.name == name]


def _ids(traceparent: str) -> tuple[int, int]:
    version, trace_id, span_id, _ = traceparent.split("-")
    assert version == "00"
    return int(trace_id, 16), int(span_id, 16)


async def test_tracing_on_follows_configure_and_shutdown():
    assert not tracing_on()
    telemetry = configure(TelemetryConfig(tracing="all"))
    try:
        assert tracing_on()
    finally:
        await telemetry.shutdown()
    assert not tracing_on()
    metrics_only = configure(TelemetryConfig(tracing="off", metrics=True))
    try:
        assert not tracing_on()
    finally:
        await metrics_only.shutdown()


@pytest.mark.parametrize("qos", [QoS.REALTIME, QoS.BATCHED])
async def test_the_trace_crosses_the_wire_and_the_other_host_continues_it(
    traced, two_buses: tuple[NatsBus, NatsBus], qos: QoS
):
    memory = traced()
    a, b = two_buses
    runtime = AgentRuntime(b)
    handled: list[Event] = []

    async def worker(ctx, event: Event) -> None:
        handled.append(event)
        await ctx.emit("jobs.done", "job.done", b"ok")

    done = await a.subscribe("jobs.done", qos=qos)  # the way back: core NATS or JetStream
    await runtime.spawn("worker", worker, topics=["jobs.new"])

    sent = Event("job.new", b"{}")
    assert await a.publish("jobs.new", sent) == 0  # no subscription on a
    _, reply = await asyncio.wait_for(done.get(), 10)
    await runtime.stop("worker")

    (publish_a,) = [
        s for s in _spans(memory, "loom.publish") if s.attributes["loom.event.type"] == "job.new"
    ]
    assert publish_a.kind is SpanKind.PRODUCER
    assert publish_a.attributes["messaging.system"] == "nats"
    assert publish_a.attributes["loom.nats.subject"] == f"{a.prefix}.jobs.new"
    trace_id = publish_a.context.trace_id
    # The context went over the wire inside the loom.v1.Event's metadata.
    assert handled and _ids(handled[0].metadata["traceparent"]) == (
        trace_id,
        publish_a.context.span_id,
    )
    (handle,) = _spans(memory, "loom.handle")
    assert handle.context.trace_id == trace_id
    assert handle.parent is not None and handle.parent.span_id == publish_a.context.span_id
    (publish_b,) = [
        s for s in _spans(memory, "loom.publish") if s.attributes["loom.event.type"] == "job.done"
    ]
    assert publish_b.context.trace_id == trace_id
    assert publish_b.parent is not None and publish_b.parent.span_id == handle.context.span_id
    assert _ids(reply.metadata["traceparent"]) == (trace_id, publish_b.context.span_id)


async def test_an_event_that_already_carries_a_trace_continues_it(
    traced, two_buses: tuple[NatsBus, NatsBus]
):
    memory = traced()
    a, b = two_buses
    sub = await b.subscribe("relay")
    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await a.publish("relay", Event("relayed", b"", metadata={"traceparent": upstream}))
    _, got = await asyncio.wait_for(sub.get(), 10)
    (span,) = _spans(memory, "loom.publish")
    assert span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span.parent is not None and span.parent.span_id == 0xB7AD6B7169203331
    assert _ids(got.metadata["traceparent"]) == (span.context.trace_id, span.context.span_id)


async def test_a_failed_publish_ends_its_span_as_an_error_and_the_bus_goes_on(
    traced, two_buses: tuple[NatsBus, NatsBus]
):
    memory = traced()
    a, b = two_buses
    sub = await b.subscribe("big")
    with pytest.raises(InvalidEventError, match="max_payload"):
        await a.publish("big", Event("huge", bytes(a._max_payload + 1)))
    (failed,) = _spans(memory, "loom.publish")
    assert failed.status.status_code is StatusCode.ERROR
    assert "InvalidEventError" in (failed.status.description or "")
    await a.publish("big", Event("small", b"x"))
    _, got = await asyncio.wait_for(sub.get(), 10)
    assert got.type == "small" and "traceparent" in got.metadata


async def test_with_tracing_off_nothing_is_added(two_buses: tuple[NatsBus, NatsBus]):
    a, b = two_buses
    sub = await b.subscribe("plain")
    await a.publish("plain", Event("plain", b"", metadata={"k": "v"}))
    _, got = await asyncio.wait_for(sub.get(), 10)
    assert got.metadata == {"k": "v"}
