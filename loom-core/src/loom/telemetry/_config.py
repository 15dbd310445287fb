"""TelemetryConfig: what to trace, which metrics to export where, how to log."""

from __future__ import annotations

import urllib.parse
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["TelemetryConfig", "display_url", "parse_host_port"]


def display_url(url: str) -> str:
    """``url`` fit for logs and ``describe()``: no user info, no query string."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    if port is not None:
        host = f"{host}:{port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def parse_host_port(text: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"``, ``"[::1]:9464"`` or ``":9464"`` (every interface) as (host, port).

    Raises:
        ValueError: not ``host:port``, or the port is not in 0..65535 (0 takes a free one).
    """
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"expected host:port such as 127.0.0.1:9464, got {text!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} is out of range 0..65535 in {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if any(c.isspace() for c in host) or "/" in host:
        raise ValueError(f"expected host:port such as 127.0.0.1:9464, got {text!r}")
    return host or "0.0.0.0", port


class TelemetryConfig(BaseModel):
    """Telemetry settings: the ``[telemetry]`` table of ``loom.toml``.

    Attributes:
        service_name: ``service.name`` of every span and metric.
        tracing: ``"off"`` (no span is made; the hot paths run no OpenTelemetry code),
            ``"sampled"`` (a ``sample_ratio`` share of new traces; a trace continued from
            an event's ``traceparent`` follows its parent's decision) or ``"all"``.
        sample_ratio: the share of new traces recorded with ``tracing="sampled"``.
        metrics: whether metrics are collected (read from the objects given to
            ``Telemetry.instrument`` when an exporter asks, plus sampled delivery
            latencies and LLM calls).
        prometheus: ``host:port`` to serve ``GET /metrics`` on (port 0 takes a free one;
            ``Telemetry.prometheus_url`` says which).
        otlp_endpoint: base URL of an OTLP/HTTP collector (``http://127.0.0.1:4318``):
            traces go to ``/v1/traces`` and metrics to ``/v1/metrics``.
        console: print finished spans to stderr (debugging).
        log_format: ``"json"`` installs :func:`~loom.telemetry.json_logging` on the root
            logger (one JSON object per line, with ``trace_id``/``span_id`` inside a
            span); ``"text"`` leaves logging as it is.
        label_limit: distinct values a metric label (topic, agent, capability, provider)
            takes; further values are reported together as ``"other"``.
        latency_sample_every: with tracing off, one handled event in this many (and at
            least one a second) is timed for the delivery latency histogram; with tracing
            on, every one is. Recording a sample costs about 3 µs.
        metrics_interval_s: how often metrics are pushed to the OTLP endpoint.
        otlp_timeout_s: the bound on one OTLP export, retries included.
        collect_timeout_s: how long a collection (a scrape, an OTLP push) waits for the
            event loop to read the instrumented objects; a loop busy for longer gets its
            last values reported again, counted in ``loom.telemetry.collect_timeouts``.

    Example:
        >>> TelemetryConfig(tracing="all", prometheus="127.0.0.1:9464").tracing
        'all'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    service_name: str = Field(default="loom", min_length=1)
    tracing: Literal["off", "sampled", "all"] = "off"
    sample_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    metrics: bool = True
    prometheus: str | None = None
    otlp_endpoint: str | None = None
    console: bool = False
    log_format: Literal["text", "json"] = "text"
    label_limit: int = Field(default=100, ge=1, le=10_000)
    latency_sample_every: int = Field(default=64, ge=1)
    metrics_interval_s: float = Field(default=10.0, gt=0.0)
    otlp_timeout_s: float = Field(default=5.0, gt=0.0)
    collect_timeout_s: float = Field(default=2.0, gt=0.0)

    @field_validator("prometheus")
    @classmethod
    def _check_prometheus(cls, value: str | None) -> str | None:
        if value is not None:
            parse_host_port(value)
        return value

    @field_validator("otlp_endpoint")
    @classmethod
    def _check_otlp(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urllib.parse.urlsplit(value.strip())
            parts.port  # noqa: B018  # raises ValueError for a port out of range
        except ValueError as e:
            raise ValueError(f"not a URL: {e}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"expected an http(s) URL of an OTLP/HTTP collector such as "
                f"http://127.0.0.1:4318, got {value!r}"
            )
        path = parts.path.rstrip("/")
        if path.endswith(("/v1/traces", "/v1/metrics")):
            raise ValueError(
                f"give the collector's base URL; /v1/traces and /v1/metrics are added: {value!r}"
            )
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))

    @property
    def tracing_on(self) -> bool:
        """Whether spans are made at all."""
        return self.tracing != "off"
