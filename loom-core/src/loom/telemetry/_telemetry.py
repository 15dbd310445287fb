"""configure() and Telemetry: the OpenTelemetry SDK set up from a TelemetryConfig."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loom._version import __version__
from loom.telemetry import _switch
from loom.telemetry._config import TelemetryConfig, display_url, parse_host_port
from loom.telemetry._errors import TelemetryError
from loom.telemetry._readings import Sources

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Tracer

    from loom.telemetry._exporters import Guard, QuietOTLPLogs
    from loom.telemetry._metrics import Metrics
    from loom.telemetry._tracing import Tracing

__all__ = ["Telemetry", "TelemetryStats", "active", "configure"]

log = logging.getLogger("loom.telemetry")

_EXTRA = "pip install 'loom-core[telemetry]'"
_active: Telemetry | None = None
_configure_lock = threading.Lock()


@dataclass
class TelemetryStats:
    """What went wrong with telemetry itself (the app is never stopped by it).

    Attributes:
        export_failures: failed exports by exporter (``otlp.traces``, ``otlp.metrics``,
            ``prometheus``): also the ``loom.telemetry.export_failures`` metric.
        degraded: exporters that are not working, with why (``prometheus``: the address
            is in use; ``sdk``: the extra is not installed; ``otlp.traces``: the last
            export failed).
    """

    export_failures: Counter[str] = field(default_factory=Counter)
    degraded: dict[str, str] = field(default_factory=dict)


def active() -> Telemetry | None:
    """The telemetry :func:`configure` set up last, unless it was shut down."""
    return _active


def configure(config: TelemetryConfig | Mapping[str, Any] | None = None) -> Telemetry:
    """Set up tracing, metrics and logging as ``config`` says; returns the :class:`Telemetry`.

    Never raises for an exporter that cannot work (a collector that refuses connections,
    a Prometheus port in use, an exporter package not installed): that is logged once,
    counted in :attr:`Telemetry.stats`, and said by :meth:`Telemetry.describe`; the rest
    works. Configuring again with equal settings returns the same object; with other
    settings, the previous setup is shut down first.

    Args:
        config: the settings, as a :class:`TelemetryConfig` or its fields in a mapping
            (the ``[telemetry]`` table of ``loom.toml``); None takes the defaults.

    Raises:
        pydantic.ValidationError: a mapping's field is unknown or out of range.
    """
    global _active
    if not isinstance(config, TelemetryConfig):
        config = TelemetryConfig.model_validate(dict(config or {}))
    with _configure_lock:
        current = _active
        if current is not None and not current.closed:
            if current.config == config:
                return current
            log.info("telemetry: configured again with other settings; replacing the setup")
            current._close()
        telemetry = Telemetry(config)
        _active = telemetry
        return telemetry


class Telemetry:
    """Telemetry as configured: providers, exporters, the /metrics server and the hooks.

    Made by :func:`configure`. Tracing and the delivery latency histogram cover every bus,
    runtime, broker and LLM client of the process; the counters and gauges cover the
    objects given to :meth:`instrument`.

    Attributes:
        config: the settings.
        stats: what went wrong with telemetry itself.
        tracer_provider: the SDK's tracer provider, when tracing is on.
        meter_provider: the SDK's meter provider, when metrics are exported somewhere.
        prometheus_url: where ``/metrics`` is served (the port really bound), or None.
    """

    def __init__(self, config: TelemetryConfig) -> None:
        self.config = config
        self.stats = TelemetryStats()
        self.tracer_provider: TracerProvider | None = None
        self.meter_provider: MeterProvider | None = None
        self.prometheus_url: str | None = None
        self._sources = Sources(config.collect_timeout_s)
        self._tracing: Tracing | None = None
        self._metrics: Metrics | None = None
        self._guards: list[Guard] = []
        self._quiet: QuietOTLPLogs | None = None
        self._server: WSGIServer | None = None
        self._server_thread: threading.Thread | None = None
        self._json_handler: logging.Handler | None = None
        self._replaced_handlers: list[logging.Handler] = []
        self._hooks: dict[str, Any] = {}
        self._closed = False
        self._setup()

    # -- setup -----------------------------------------------------------------------------

    def _degrade(self, what: str, why: str) -> None:
        self.stats.degraded[what] = why
        log.warning("telemetry: %s: %s; the app goes on without it", what, why)

    def _setup(self) -> None:
        config = self.config
        if config.log_format == "json":
            self._json_handler, self._replaced_handlers = _install_json()
        if not config.tracing_on and not config.metrics:
            return
        try:
            from opentelemetry.sdk.resources import Resource
        except ImportError as e:
            self._degrade("sdk", f"the OpenTelemetry SDK is not installed ({e}): {_EXTRA}")
            return
        resource = Resource.create({"service.name": config.service_name})
        if config.otlp_endpoint is not None:
            from loom.telemetry._exporters import QuietOTLPLogs

            self._quiet = QuietOTLPLogs()
            self._quiet.install()
        tracer = self._setup_tracing(resource) if config.tracing_on else None
        if config.metrics:
            self._setup_metrics(resource)
        self._install_hooks(tracer)

    def _setup_tracing(self, resource: Any) -> Tracer:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

        config = self.config
        root = ALWAYS_ON if config.tracing == "all" else TraceIdRatioBased(config.sample_ratio)
        provider = self.tracer_provider = TracerProvider(
            resource=resource, sampler=ParentBased(root)
        )
        if config.console:
            console = ConsoleSpanExporter(
                out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n"
            )
            provider.add_span_processor(BatchSpanProcessor(console))
        if config.otlp_endpoint is not None:
            exporter = self._otlp_spans(config.otlp_endpoint)
            if exporter is not None:
                provider.add_span_processor(BatchSpanProcessor(exporter))
        return provider.get_tracer("loom", __version__)

    def _otlp_spans(self, base: str) -> Any:
        from loom.telemetry._exporters import Guard, GuardedSpanExporter

        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as e:
            self._degrade("otlp.traces", f"the OTLP/HTTP exporter is not installed ({e}): {_EXTRA}")
            return None
        endpoint = f"{base}/v1/traces"
        guard = Guard("otlp.traces", display_url(endpoint), self.stats.export_failures, self._quiet)
        self._guards.append(guard)
        inner = OTLPSpanExporter(endpoint=endpoint, timeout=self.config.otlp_timeout_s)
        return GuardedSpanExporter(inner, guard)

    def _setup_metrics(self, resource: Any) -> None:
        from opentelemetry.sdk.metrics import MeterProvider

        from loom.telemetry._metrics import Metrics

        config = self.config
        readers: list[MetricReader] = []
        if config.prometheus is not None:
            reader = self._prometheus(config.prometheus)
            if reader is not None:
                readers.append(reader)
        if config.otlp_endpoint is not None:
            reader = self._otlp_metrics(config.otlp_endpoint)
            if reader is not None:
                readers.append(reader)
        if not readers:
            return  # nothing would read them: no instrument, no sampling
        provider = self.meter_provider = MeterProvider(metric_readers=readers, resource=resource)
        meter = provider.get_meter("loom", __version__)
        failures = self.stats.export_failures
        self._metrics = Metrics(meter, self._sources, config.label_limit, failures)

    def _prometheus(self, address: str) -> MetricReader | None:
        try:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError as e:
            self._degrade("prometheus", f"the Prometheus exporter is not installed ({e}): {_EXTRA}")
            return None
        host, port = parse_host_port(address)
        registry = CollectorRegistry(auto_describe=True)
        try:
            server, thread = start_http_server(port, addr=host, registry=registry)
        except OSError as e:
            self.stats.export_failures["prometheus"] += 1
            self._degrade("prometheus", f"cannot serve /metrics on {address}: {e}")
            return None
        self._server, self._server_thread = server, thread
        bound = server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.prometheus_url = f"http://{shown}:{bound}/metrics"
        return PrometheusMetricReader(registry=registry, scope_info_enabled=False)

    def _otlp_metrics(self, base: str) -> MetricReader | None:
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        from loom.telemetry._exporters import Guard, GuardedMetricExporter

        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
        except ImportError as e:
            self._degrade(
                "otlp.metrics", f"the OTLP/HTTP exporter is not installed ({e}): {_EXTRA}"
            )
            return None
        endpoint = f"{base}/v1/metrics"
        guard = Guard(
            "otlp.metrics", display_url(endpoint), self.stats.export_failures, self._quiet
        )
        self._guards.append(guard)
        timeout_s = self.config.otlp_timeout_s
        inner = OTLPMetricExporter(endpoint=endpoint, timeout=timeout_s)
        return PeriodicExportingMetricReader(
            GuardedMetricExporter(inner, guard),
            export_interval_millis=self.config.metrics_interval_s * 1000,
            export_timeout_millis=timeout_s * 1000 + 1000,
        )

    def _install_hooks(self, tracer: Tracer | None) -> None:
        from loom.telemetry._llm import LLMTelemetry
        from loom.telemetry._metrics import latency_sampler
        from loom.telemetry._tracing import Tracing

        metrics = self._metrics
        record = metrics.delivery_latency.record if metrics is not None else None
        hooks: dict[str, Any] = {}
        if tracer is not None:
            tracing = self._tracing = Tracing(tracer, record)
            hooks.update(
                publish=tracing.publish,
                handle=tracing.handle,
                invoke=tracing.invoke,
                capability=tracing.capability,
            )
        elif record is not None:
            hooks["handle"] = latency_sampler(record, self.config.latency_sample_every)
        if tracer is not None or metrics is not None:
            hooks["llm"] = LLMTelemetry(tracer, metrics)
        for name, hook in hooks.items():
            setattr(_switch, name, hook)
        self._hooks = hooks

    # -- use -------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` ran."""
        return self._closed

    @property
    def tracer(self) -> Tracer | None:
        """Loom's tracer (for spans of your own in Loom's traces), or None with tracing off."""
        return self._tracing.tracer if self._tracing is not None else None

    def instrument(
        self,
        *,
        bus: Any = None,
        runtime: Any = None,
        broker: Any = None,
        router: Any = None,
    ) -> None:
        """Report the metrics of these objects (call it from their event loop).

        ``bus`` is an :class:`~loom.bus.EventBus` (events published, delivered and dropped
        per topic, backlog, queue depths), ``runtime`` an
        :class:`~loom.agents.AgentRuntime` (per agent: handled, failures, restarts,
        expired, mailbox depth), ``broker`` an :class:`~loom.actions.ActionBroker` (calls
        by capability and code, circuits), ``router`` a
        :class:`~loom.models.ModelRouter` (decisions by route, fallbacks, failures). Each
        may be given once or in several calls; an object given twice counts once. Their
        values are read when an exporter collects, on the loop this is called from.

        Raises:
            TelemetryError: after :meth:`shutdown`.
        """
        if self._closed:
            raise TelemetryError("telemetry is shut down: configure() it again to instrument")
        sources = self._sources
        sources.add(sources.buses, bus)
        sources.add(sources.runtimes, runtime)
        sources.add(sources.brokers, broker)
        sources.add(sources.routers, router)

    def add_span_processor(self, processor: SpanProcessor) -> None:
        """Send finished spans to ``processor`` too (your exporter, a test's memory).

        Raises:
            TelemetryError: tracing is off (or its SDK missing), or after :meth:`shutdown`.
        """
        if self._closed or self.tracer_provider is None:
            raise TelemetryError(
                "no tracer provider: tracing is off" if not self._closed else "shut down"
            )
        self.tracer_provider.add_span_processor(processor)

    def describe(self) -> list[str]:
        """Human lines: what is on, and where traces and metrics can be seen."""
        config = self.config
        if self._closed:
            return ["telemetry: shut down"]
        lines: list[str] = []
        sdk = self.stats.degraded.get("sdk")
        if sdk is not None:
            return [f"telemetry: off: {sdk}"]
        if config.tracing_on:
            how = "all" if config.tracing == "all" else f"{config.sample_ratio:.0%} of new traces"
            where = []
            if config.console:
                where.append("printed to stderr")
            if config.otlp_endpoint is not None and "otlp.traces" not in self.stats.degraded:
                where.append(f"sent to {display_url(config.otlp_endpoint)}/v1/traces (OTLP)")
            if where:
                lines.append(f"traces ({how}): {', '.join(where)}")
            else:
                lines.append(
                    f"traces ({how}): made and carried in event metadata (traceparent), "
                    "but exported nowhere: set otlp_endpoint or console"
                )
        else:
            lines.append("traces: off (tracing = 'off')")
        if config.metrics:
            if self.prometheus_url is not None:
                lines.append(f"metrics: Prometheus scrapes {self.prometheus_url}")
            otlp = config.otlp_endpoint
            pushing = self.meter_provider is not None and "otlp.metrics" not in self.stats.degraded
            if otlp is not None and pushing:
                lines.append(
                    f"metrics: sent to {display_url(otlp)}/v1/metrics "
                    f"(OTLP) every {config.metrics_interval_s:g} s"
                )
            if self.meter_provider is None:
                lines.append(
                    "metrics: on, but nothing exports them: set prometheus or otlp_endpoint"
                )
        else:
            lines.append("metrics: off")
        for what, why in self.stats.degraded.items():
            lines.append(f"{what}: not working: {why}")
        for guard in self._guards:
            if guard.failing:
                lines.append(f"{guard.name}: failing: {guard.last_error}")
        if self._json_handler is not None:
            lines.append("logs: JSON lines on stderr, with trace_id and span_id inside spans")
        return lines

    # -- shutdown --------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Flush the exporters, stop the /metrics server, remove the hooks. Idempotent.

        The exporters' final flush runs in a worker thread, so the event loop keeps
        answering it (a final metrics collection reads the instrumented objects).
        """
        if self._closed:
            return
        self._unhook()
        await asyncio.to_thread(self._close)

    def _unhook(self) -> None:
        for name, hook in self._hooks.items():
            if getattr(_switch, name) is hook:
                setattr(_switch, name, None)

    def _close(self) -> None:
        global _active
        if self._closed:
            return
        self._closed = True
        self._unhook()
        for guard in self._guards:
            if guard.failing:
                log.info("telemetry: %s is failing; not waiting for its final export", guard.name)
        try:
            if self.tracer_provider is not None:
                self._fail_fast("otlp.traces")
                self.tracer_provider.shutdown()
            if self.meter_provider is not None:
                self._fail_fast("otlp.metrics")
                self.meter_provider.shutdown(timeout_millis=self.config.otlp_timeout_s * 2000)
        finally:
            self._stop_server()
            self._sources.clear()
            if self._quiet is not None:
                self._quiet.remove()
            self._restore_logging()
            if _active is self:
                _active = None

    def _fail_fast(self, name: str) -> None:
        """A failing exporter is shut down first, so the final flush does not wait on it."""
        for guard in self._guards:
            if guard.name == name and guard.failing:
                guard.shut_down_inner()

    def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._server_thread is not None:
            self._server_thread.join(timeout=5)
            self._server_thread = None

    def _restore_logging(self) -> None:
        handler, self._json_handler = self._json_handler, None
        if handler is None:
            return
        root = logging.getLogger()
        root.removeHandler(handler)
        for old in self._replaced_handlers:
            root.addHandler(old)
        self._replaced_handlers = []

    def __repr__(self) -> str:
        state = "shut down" if self._closed else "active"
        return f"<Telemetry {state}: tracing={self.config.tracing}, metrics={self.config.metrics}>"


def _install_json() -> tuple[logging.Handler, list[logging.Handler]]:
    from loom.telemetry._logging import install_json_handler

    return install_json_handler()
