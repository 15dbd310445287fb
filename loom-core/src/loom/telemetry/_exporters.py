"""Exporters that fail quietly: counted, logged once, never in the app's way.

An OTLP collector that refuses connections makes the OpenTelemetry exporter log a warning
per attempt and an error per batch, forever. Wrapped here, a failure is counted (by
exporter name), the first one is logged with the library's own words, a recovery is
logged once, and the library's repeated lines are held back.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["Guard", "GuardedMetricExporter", "GuardedSpanExporter", "QuietOTLPLogs"]

log = logging.getLogger("loom.telemetry")

#: The loggers the OTLP/HTTP exporters (and their HTTP client) write to.
OTLP_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.common.http",
)


class QuietOTLPLogs(logging.Filter):
    """Holds back the OTLP exporters' warnings and errors, remembering the last one, so
    that a dead collector is reported once (by :class:`Guard`) instead of per attempt."""

    def __init__(self) -> None:
        super().__init__("loom.telemetry.quiet")
        self.last: dict[str, str] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        with self._lock:
            self.last[record.name] = record.getMessage()
        return False

    def last_message(self) -> str:
        """The newest message held back, or ""."""
        with self._lock:
            return next(reversed(self.last.values()), "")

    def install(self) -> None:
        """Start holding back."""
        for name in OTLP_LOGGERS:
            logging.getLogger(name).addFilter(self)

    def remove(self) -> None:
        """Stop holding back."""
        for name in OTLP_LOGGERS:
            logging.getLogger(name).removeFilter(self)


class Guard:
    """The failure record of one exporter.

    Args:
        name: the exporter's name in ``loom.telemetry.export_failures`` (``otlp.traces``).
        target: where it sends, for the log line (no credentials).
        failures: the shared counter of failures by exporter name.
        quiet: where the library's held-back messages are.
    """

    def __init__(
        self, name: str, target: str, failures: Counter[str], quiet: QuietOTLPLogs | None
    ) -> None:
        self.name = name
        self.target = target
        self.failures = failures
        self.quiet = quiet
        self.failing = False
        self.last_error = ""
        self._lock = threading.Lock()
        self._shut_down: Callable[[], None] | None = None

    def on_shut_down(self, shut_down: Callable[[], None]) -> None:
        """How to shut the guarded exporter down (see :meth:`shut_down_inner`)."""
        self._shut_down = shut_down

    def shut_down_inner(self) -> None:
        """Shut the exporter down now: its exports fail at once from here on, so a final
        flush to a dead collector does not wait for its retries."""
        if self._shut_down is not None:
            self._shut_down()

    def failed(self, error: BaseException | None = None) -> None:
        """Count one failed export; log it if it is the first of a run of failures."""
        detail = f"{type(error).__name__}: {error}" if error is not None else ""
        if not detail and self.quiet is not None:
            detail = self.quiet.last_message()
        with self._lock:
            self.failures[self.name] += 1
            self.last_error = detail or "export failed"
            first = not self.failing
            self.failing = True
        if first:
            log.warning(
                "telemetry: %s export to %s failed (%s); the app goes on, telemetry keeps "
                "trying, failures are counted in loom.telemetry.export_failures{exporter=%r}",
                self.name,
                self.target,
                self.last_error,
                self.name,
            )

    def succeeded(self) -> None:
        """An export went through; log the recovery if it ends a run of failures."""
        with self._lock:
            recovered = self.failing
            self.failing = False
        if recovered:
            log.info("telemetry: %s export to %s works again", self.name, self.target)


class GuardedSpanExporter(SpanExporter):
    """A span exporter whose failures go to a :class:`Guard` instead of raising or logging."""

    def __init__(self, inner: SpanExporter, guard: Guard) -> None:
        self.inner = inner
        self.guard = guard
        self._once = threading.Lock()
        self._done = False
        guard.on_shut_down(self.shutdown)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as e:  # noqa: BLE001  # an exporter bug must not kill the export thread
            self.guard.failed(e)
            return SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.guard.succeeded()
        else:
            self.guard.failed()
        return result

    def shutdown(self) -> None:
        with self._once:
            done, self._done = self._done, True
        if not done:
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class GuardedMetricExporter(MetricExporter):
    """A metric exporter whose failures go to a :class:`Guard` instead of raising or logging."""

    def __init__(self, inner: MetricExporter, guard: Guard) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.guard = guard
        self._once = threading.Lock()
        self._done = False
        guard.on_shut_down(self.shutdown)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as e:  # noqa: BLE001  # an exporter bug must not kill the reader thread
            self.guard.failed(e)
            return MetricExportResult.FAILURE
        if result is MetricExportResult.SUCCESS:
            self.guard.succeeded()
        else:
            self.guard.failed()
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        with self._once:
            done, self._done = self._done, True
        if not done:
            self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)
