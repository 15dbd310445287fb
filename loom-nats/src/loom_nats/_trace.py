"""The span of a publish over NATS, and the W3C trace context it writes into the event.

Used only while :func:`loom.telemetry.tracing_on` says yes, so OpenTelemetry loads only
then. As on the memory bus, the context travels in ``Event.metadata`` (``traceparent``,
``tracestate``), inside the ``loom.v1.Event`` on the wire: the receiving host's agent
runtime continues the trace of any event that carries one, whichever bus brought it.

Parent: the span current in the publishing task (an agent's handle span); with none, the
trace context the event already carries (one that came from elsewhere); with neither, a
new trace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loom import Event

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["end_publish_span", "start_publish_span"]

_TRACEPARENT = "traceparent"


def start_publish_span(topic: str, subject: str, event: Event) -> Span | None:
    """Start the span of one publish and write its context into ``event.metadata``;
    None when no tracer is configured (telemetry shut down meanwhile)."""
    from loom.telemetry import active

    telemetry = active()
    tracer = telemetry.tracer if telemetry is not None else None
    if tracer is None:
        return None
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    metadata = event.metadata
    parent = None
    if not trace.get_current_span().get_span_context().is_valid and _TRACEPARENT in metadata:
        parent = propagator.extract(metadata)
    span = tracer.start_span(
        "loom.publish",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "nats",
            "messaging.destination.name": topic,
            "messaging.message.id": event.id,
            "loom.event.type": event.type,
            "loom.nats.subject": subject,
        },
    )
    propagator.inject(metadata, trace.set_span_in_context(span))
    return span


def end_publish_span(span: Span, deliveries: int, error: BaseException | None) -> None:
    """End a publish span: ``deliveries`` local subscriptions reached, or the error that
    failed the publish."""
    if span.is_recording():
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        else:
            span.set_attribute("loom.deliveries", deliveries)
    span.end()
