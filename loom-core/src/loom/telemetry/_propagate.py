"""Trace context for transports of other packages (a bus on NATS, a broker over a bridge)."""

from __future__ import annotations

from collections.abc import MutableMapping

from loom.telemetry import _switch

__all__ = ["inject"]


def inject(carrier: MutableMapping[str, str]) -> bool:
    """Write the current span's W3C trace context (``traceparent``, ``tracestate``) into
    ``carrier``, e.g. ``event.metadata`` or ``call.headers`` before they leave the process.

    With tracing off it does nothing and costs one check, and OpenTelemetry is not loaded.
    The receiving side needs nothing more: Loom's runtime continues the trace of any event
    or call that carries a ``traceparent``.

    Returns:
        Whether a context was written (tracing on, and a span current).

    Example:
        .. code-block:: python

            from loom.telemetry import inject

            inject(call.headers)  # then forward the call to the other process
    """
    if _switch.publish is None:  # tracing off
        return False
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not trace.get_current_span().get_span_context().is_valid:
        return False
    TraceContextTextMapPropagator().inject(carrier)
    return True
