"""Trace context for transports of other packages (a bus on NATS, a broker over a bridge)."""

from __future__ import annotations

from collections.abc import MutableMapping

from loom.telemetry import _switch

__all__ = ["inject", "tracing_on"]


def tracing_on() -> bool:
    """Whether tracing is on: :func:`~loom.telemetry.configure` ran with ``tracing`` other
    than ``"off"`` and its telemetry is not shut down.

    One attribute read: a transport may ask it per message and do its tracing work only
    when it says yes. OpenTelemetry is not loaded.

    Example:
        .. code-block:: python

            from loom.telemetry import tracing_on

            if tracing_on():
                ...  # start a span, write the trace context into the message
    """
    return _switch.publish is not None


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
