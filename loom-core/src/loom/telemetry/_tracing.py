"""The spans of publish, handle, invoke and capability calls, and the trace context that
travels with events (``Event.metadata``) and calls (``ActionCall.headers``).

These are the hooks :mod:`loom.telemetry._switch` holds while tracing is on. The trace
context is written and read by OpenTelemetry's W3C propagator (``traceparent`` and
``tracestate``), so it means the same to any OpenTelemetry peer: loom-bridge, NATS
consumers, or services in other languages.

Parents: a publish or invoke continues the span current in its task (an agent's handle
span, so whatever a handler publishes, replies or invokes belongs to the event's trace);
with none, it continues the trace context the event or call already carries (one that came
from another process); with neither, it starts a trace. A handle span is the child of the
publish that delivered its event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context as OtelContext
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from loom._action import ActionStatus
from loom.telemetry._metrics import event_age_s

if TYPE_CHECKING:
    from loom._action import ActionCall, ActionResult, CapabilityDescriptor
    from loom._event import Event
    from loom.actions._provider import Provider
    from loom.agents._context import Context
    from loom.bus._memory import MemoryBus

__all__ = ["TRACEPARENT", "Tracing"]

#: The metadata key (and ActionCall header) of the W3C trace context.
TRACEPARENT = "traceparent"

_PROPAGATOR = TraceContextTextMapPropagator()


def _carried(carrier: Mapping[str, str]) -> OtelContext | None:
    """The parent for a new span: None (the current span) when one is current, else the
    context ``carrier`` holds, else None (a new trace)."""
    if trace.get_current_span().get_span_context().is_valid:
        return None
    if TRACEPARENT in carrier:
        return _PROPAGATOR.extract(carrier)
    return None


def _fail(span: Span, exc: BaseException) -> None:
    if span.is_recording():
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


class _PublishSpan:
    """One publish in flight: the span, and what it needs to describe the delivery."""

    __slots__ = ("bus", "dropped_before", "event_type", "span", "topic")

    def __init__(self, span: Span, bus: MemoryBus, topic: str, event_type: str) -> None:
        self.span = span
        self.bus = bus
        self.topic = topic
        self.event_type = event_type
        counters = bus._counters.get(topic)
        self.dropped_before = counters.dropped if counters is not None else 0

    def end(self, delivered: int) -> None:
        span = self.span
        if span.is_recording():
            bus, topic = self.bus, self.topic
            route = bus._routes.get(topic)
            for sub in route.subs if route is not None else ():
                types = sub._types
                if types is None or self.event_type in types:
                    span.add_event(
                        "deliver",
                        {"loom.subscription": sub.id, "loom.queue.depth": len(sub.queue._items)},
                    )
            counters = bus._counters.get(topic)
            dropped = (counters.dropped if counters is not None else 0) - self.dropped_before
            if dropped > 0:
                span.set_attributes({"loom.deliveries": delivered, "loom.dropped": dropped})
            else:
                span.set_attribute("loom.deliveries", delivered)
        span.end()


class _Unrecorded:
    """The end of a publish whose trace is not sampled: nothing to do."""

    __slots__ = ()

    def end(self, delivered: int) -> None:
        return None


_UNRECORDED = _Unrecorded()


class Tracing:
    """The tracing hooks, bound to one tracer.

    Args:
        tracer: where spans are made.
        record_latency: records a delivery latency (seconds) for every handled event, or
            None without metrics.
    """

    def __init__(self, tracer: Tracer, record_latency: Callable[[float], None] | None) -> None:
        self.tracer = tracer
        self._record_latency = record_latency

    def publish(self, bus: MemoryBus, topic: str, event: Event) -> _PublishSpan | _Unrecorded:
        """Start the span of one publish and write its context into ``event.metadata``."""
        metadata = event.metadata
        span = self.tracer.start_span(
            "loom.publish",
            context=_carried(metadata),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "loom",
                "messaging.destination.name": topic,
                "messaging.message.id": event.id,
                "loom.event.type": event.type,
            },
        )
        _PROPAGATOR.inject(metadata, trace.set_span_in_context(span))
        if not span.is_recording():  # sampled out: the context travels, nothing is recorded
            return _UNRECORDED
        return _PublishSpan(span, bus, topic, event.type)

    async def handle(
        self,
        ctx: Context,
        topic: str,
        event: Event,
        on_event: Callable[[Context, Event], Awaitable[None]],
    ) -> None:
        """Run an agent's handler inside a span that continues the event's trace."""
        metadata = event.metadata
        age = event_age_s(event)
        if self._record_latency is not None:
            self._record_latency(age)
        span = self.tracer.start_span(
            "loom.handle",
            context=_PROPAGATOR.extract(metadata) if TRACEPARENT in metadata else None,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "loom",
                "messaging.operation.type": "process",
                "messaging.destination.name": topic,
                "messaging.message.id": event.id,
                "loom.event.type": event.type,
                "loom.agent.id": ctx.agent_id,
                "loom.event.age_ms": round(age * 1000, 3),
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await on_event(ctx, event)
        except Exception as exc:
            _fail(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()

    async def invoke(
        self, call: ActionCall, run: Callable[[ActionCall], Awaitable[ActionResult]]
    ) -> ActionResult:
        """Run ``run(call)`` (the broker's invoke) inside an invoke span."""
        span = self.tracer.start_span(
            "loom.invoke",
            context=_carried(call.headers),
            kind=SpanKind.CLIENT,
            attributes={
                "loom.capability": call.capability,
                "loom.capability.version": call.version,
                "loom.call.id": call.id,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            result = await run(call)
        except BaseException as exc:  # only cancellation: invoke answers failures
            _fail(span, exc)
            span.end()
            raise
        finally:
            otel_context.detach(token)
        if span.is_recording():
            span.set_attribute("loom.status", ActionStatus(result.status).name)
            error = result.error
            if error is not None:
                span.set_attribute("loom.error.code", error.code)
                span.set_status(Status(StatusCode.ERROR, f"{error.code}: {error.message}"))
        span.end()
        return result

    async def capability(
        self, provider: Provider, descriptor: CapabilityDescriptor, call: ActionCall
    ) -> bytes:
        """Run ``provider.invoke(call)`` inside a capability span whose context the call's
        headers carry to the provider (and over the wire, for a remote one)."""
        span = self.tracer.start_span(
            "loom.capability",
            kind=SpanKind.INTERNAL,
            attributes={
                "loom.capability": descriptor.name,
                "loom.capability.version": descriptor.version,
                "loom.provider.kind": descriptor.provider.name,
                "loom.call.id": call.id,
            },
        )
        context = trace.set_span_in_context(span)
        _PROPAGATOR.inject(call.headers, context)
        token = otel_context.attach(context)
        try:
            return await provider.invoke(call)
        except asyncio.CancelledError:  # the broker's timeout, or the caller gave up
            span.set_attribute("loom.cancelled", True)
            raise
        except Exception as exc:
            _fail(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()
