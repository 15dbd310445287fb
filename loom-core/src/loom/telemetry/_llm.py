"""Spans and metrics of LLM calls (the OpenAI-compatible client) and routed requests.

An LLM call takes milliseconds to seconds, so it is measured per call: a ``loom.llm.chat``
span (provider, model, the endpoint without credentials, token usage, finish reason,
retries as span events) and the ``loom.llm.*`` metrics. A routed request gets a
``loom.route`` span with the decision's fields, the parent of the provider's call.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from loom.telemetry._metrics import Metrics

__all__ = ["LLMTelemetry"]

_PROPAGATOR = TraceContextTextMapPropagator()


def _attributes(model: Any, stream: bool) -> dict[str, Any]:
    location = getattr(model, "location", "")
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": str(getattr(model, "name", type(model).__name__)),
        "gen_ai.request.model": str(getattr(model, "model", "")),
        "server.address": str(getattr(model, "endpoint", "")),  # credential-free by contract
        "loom.llm.location": str(getattr(location, "value", location)),
        "loom.llm.stream": stream,
    }


def _usage_attributes(span: Span, usage: Any, finish_reason: str | None, model: str) -> None:
    if not span.is_recording():
        return
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
    if finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
    if model:
        span.set_attribute("gen_ai.response.model", model)


def _fail(span: Span | None, exc: BaseException) -> None:
    if span is not None and span.is_recording():
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        attempts = getattr(exc, "attempts", None)
        if isinstance(attempts, int):
            span.set_attribute("loom.llm.attempts", attempts)


class LLMTelemetry:
    """The LLM hook: spans when tracing is on, metrics when metrics are on.

    Args:
        tracer: where spans go, or None.
        metrics: where calls are counted, or None.
    """

    def __init__(self, tracer: Tracer | None, metrics: Metrics | None) -> None:
        self.tracer = tracer
        self.metrics = metrics

    def _start(self, name: str, attributes: dict[str, Any], kind: SpanKind) -> Span | None:
        if self.tracer is None:
            return None
        return self.tracer.start_span(name, kind=kind, attributes=attributes)

    def _record(self, model: Any, outcome: str, started: float, usage: Any) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        labels = metrics.llm_labels(
            str(getattr(model, "name", type(model).__name__)), str(getattr(model, "model", ""))
        )
        metrics.record_llm(
            labels,
            outcome,
            time.perf_counter() - started,
            getattr(usage, "prompt_tokens", None),
            getattr(usage, "completion_tokens", None),
        )

    async def complete(self, model: Any, call: Awaitable[Any], *, stream: bool) -> Any:
        """Await one request's answer inside a ``loom.llm.chat`` span (current meanwhile)."""
        span = self._start("loom.llm.chat", _attributes(model, stream), SpanKind.CLIENT)
        token = otel_context.attach(trace.set_span_in_context(span)) if span else None
        started = time.perf_counter()
        try:
            turn = await call
        except BaseException as exc:
            _fail(span, exc)
            self._record(model, type(exc).__name__, started, None)
            if span is not None:
                span.end()
            raise
        finally:
            if token is not None:
                otel_context.detach(token)
        usage = getattr(turn, "usage", None)
        self._record(model, "ok", started, usage)
        if span is not None:
            _usage_attributes(
                span, usage, getattr(turn, "finish_reason", None), getattr(turn, "model", "")
            )
            span.end()
        return turn

    async def stream(
        self, model: Any, deltas: AsyncGenerator[Any, None]
    ) -> AsyncGenerator[Any, None]:
        """Pass a stream of pieces through, inside a span that ends with the stream.

        The span is not made current: the consumer runs between the pieces.
        """
        span = self._start("loom.llm.chat", _attributes(model, True), SpanKind.CLIENT)
        started = time.perf_counter()
        usage: Any = None
        finish: str | None = None
        pieces = 0
        outcome = "ok"
        try:
            async for delta in deltas:
                pieces += 1
                usage = delta.usage or usage
                finish = delta.finish_reason or finish
                yield delta
        except GeneratorExit:
            outcome = "closed"
            raise
        except BaseException as exc:
            outcome = type(exc).__name__
            _fail(span, exc)
            raise
        finally:
            await deltas.aclose()
            self._record(model, outcome, started, usage)
            if span is not None:
                _usage_attributes(span, usage, finish, "")
                if span.is_recording():
                    span.set_attribute("loom.llm.pieces", pieces)
                span.end()

    def headers(self) -> dict[str, str] | None:
        """``traceparent`` (and ``tracestate``) of the current span, so a traced endpoint
        (vLLM, a gateway) continues the trace; None with tracing off."""
        if self.tracer is None or not trace.get_current_span().get_span_context().is_valid:
            return None
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier

    def retry(self, model: Any, error: BaseException, attempt: int, wait_s: float) -> None:
        """Note a retried attempt on the current LLM span and in ``loom.llm.retries``."""
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "retry",
                {
                    "loom.llm.attempt": attempt,
                    "loom.llm.wait_s": round(wait_s, 3),
                    "error.type": type(error).__name__,
                },
            )
        if self.metrics is not None:
            self.metrics.llm_retries.add(
                1,
                self.metrics.llm_labels(
                    str(getattr(model, "name", "")), str(getattr(model, "model", ""))
                ),
            )

    async def route(self, router: Any, request: Any, run: Awaitable[Any]) -> Any:
        """Await one routed request inside a ``loom.route`` span (current meanwhile)."""
        if self.tracer is None:
            return await run
        span = self.tracer.start_span(
            "loom.route",
            kind=SpanKind.INTERNAL,
            attributes={
                "loom.route.request_id": str(getattr(request, "request_id", "")),
                "loom.route.privacy": str(getattr(getattr(request, "privacy", ""), "value", "")),
                "loom.agent.id": str(getattr(request, "agent_id", "")),
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            routed = await run
        except BaseException as exc:
            decision = getattr(exc, "decision", None)
            if decision is not None:
                _decision_attributes(span, decision)
            _fail(span, exc)
            raise
        else:
            _decision_attributes(span, routed.decision)
            if span.is_recording():
                span.set_attribute("loom.route.served_by", routed.provider)
                span.set_attribute("loom.route.latency_ms", routed.latency_ms)
                span.set_attribute("loom.route.cost", routed.cost)
            return routed
        finally:
            otel_context.detach(token)
            span.end()


def _decision_attributes(span: Span, decision: Any) -> None:
    if not span.is_recording():
        return
    metadata = getattr(decision, "metadata", None)
    if metadata is None:
        return
    for key, value in metadata().items():
        span.set_attribute(f"loom.route.{key}", value)
