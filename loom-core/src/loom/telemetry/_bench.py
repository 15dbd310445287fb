"""``loom bench`` scenarios of telemetry's cost on the bus's hot path.

Both have the shape of ``bus.publish_1sub`` (one publisher, one Batched subscriber that
reads, each event built by :func:`~loom.bench.bench_event`) and measure, in the same run,
the throughput with telemetry not configured and with it configured, in the order
off, on, on, off (each a quarter of the events), so that a drift of the machine's speed
during the run weighs on both alike. Figures: ``throughput`` (telemetry on),
``throughput_off`` and ``overhead_pct`` (how much slower, in percent).
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

from loom._action import QoS
from loom.bench import Figure, bench_event
from loom.bus import MemoryBus, Subscription
from loom.telemetry._config import TelemetryConfig
from loom.telemetry._telemetry import Telemetry, configure

__all__ = ["publish_1sub_default", "publish_1sub_tracing"]

_TOPIC = "bench.telemetry.tick"


async def _read(sub: Subscription, n: int) -> None:
    got = 0
    async for _ in sub:
        got += 1
        if got == n:
            return


async def _seconds(bus: MemoryBus, n: int) -> float:
    """Seconds to publish ``n`` events to one reading Batched subscriber."""
    sub = await bus.subscribe(_TOPIC, qos=QoS.BATCHED)
    reader = asyncio.create_task(_read(sub, n))
    await asyncio.sleep(0)
    publish = bus.publish
    start = time.perf_counter()
    for i in range(n):
        await publish(_TOPIC, bench_event(i))
    await reader
    elapsed = time.perf_counter() - start
    await bus.unsubscribe(sub.id)
    return elapsed


def _configure(config: TelemetryConfig) -> Telemetry:
    telemetry = configure(config)
    if telemetry.stats.degraded:
        why = "; ".join(f"{k}: {v}" for k, v in telemetry.stats.degraded.items())
        raise RuntimeError(f"telemetry could not be set up as the scenario needs: {why}")
    return telemetry


async def _compare(
    n: int, config: TelemetryConfig, *, spans: list[int] | None = None
) -> tuple[float, float]:
    """Events/s with telemetry off and on, measured off, on, on, off."""
    quarter = max(25, n // 4)
    off_s = on_s = 0.0
    async with MemoryBus() as bus:
        off_s += await _seconds(bus, quarter)
        telemetry = _configure(config)
        try:
            if spans is not None:
                _count_spans(telemetry, spans)
            telemetry.instrument(bus=bus)
            on_s += await _seconds(bus, quarter)
            on_s += await _seconds(bus, quarter)
            if telemetry.prometheus_url is not None:
                await _check_scrape(telemetry.prometheus_url, 3 * quarter)
        finally:
            await telemetry.shutdown()
        off_s += await _seconds(bus, quarter)
    return 2 * quarter / off_s, 2 * quarter / on_s


async def _check_scrape(url: str, published: int) -> None:
    """The /metrics page counts what was published while telemetry was on (and before)."""

    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    text = await asyncio.to_thread(fetch)
    wanted = f'loom_bus_published_total{{topic="{_TOPIC}"}} {float(published)}'
    if wanted not in text:
        raise RuntimeError(f"/metrics lacks {wanted!r}")


def _count_spans(telemetry: Telemetry, spans: list[int]) -> None:
    """Export spans in batches, as to a collector, into a counter instead of the network."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Counting(SpanExporter):
        def export(self, batch: Sequence[ReadableSpan]) -> SpanExportResult:
            spans[0] += len(batch)
            return SpanExportResult.SUCCESS

    telemetry.add_span_processor(BatchSpanProcessor(Counting()))


def _figures(off: float, on: float, *extra: Figure) -> list[Figure]:
    return [
        Figure("throughput", on, "events/s"),
        Figure("throughput_off", off, "events/s"),
        Figure("overhead_pct", (off - on) / off * 100, "%"),
        *extra,
    ]


async def publish_1sub_default(scale: float) -> list[Figure]:
    """Telemetry's default configuration (metrics on, tracing off) with Prometheus serving
    /metrics on a free port, the bus instrumented, against telemetry not configured."""
    n = max(400, int(300_000 * scale))
    off, on = await _compare(n, TelemetryConfig(prometheus="127.0.0.1:0"))
    return _figures(off, on)


async def publish_1sub_tracing(scale: float) -> list[Figure]:
    """Tracing ``all``: a span per publish (and a ``deliver`` event), exported in batches
    as to a collector (counted, not sent), against telemetry not configured."""
    n = max(400, int(300_000 * scale))
    spans = [0]
    config: Any = TelemetryConfig(tracing="all", prometheus="127.0.0.1:0")
    off, on = await _compare(n, config, spans=spans)
    return _figures(off, on, Figure("spans_exported", float(spans[0]), "count"))
