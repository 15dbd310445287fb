"""The bus's ``loom bench`` scenarios keep working at a tiny size (no timing asserted)."""

from __future__ import annotations

import pytest

from loom.bench import Figure
from loom.bus import _bench


@pytest.mark.parametrize(
    ("scenario", "metrics"),
    [
        (_bench.publish_1sub, {"throughput"}),
        (_bench.fanout10, {"throughput"}),
        (_bench.realtime_overload, {"publisher_rate", "dropped", "delivered"}),
        (_bench.mixed_qos_latency, {"p50_us", "p99_us"}),
    ],
)
async def test_scenario_runs_small(scenario, metrics):
    figures = await scenario(0.01)
    assert all(isinstance(f, Figure) and f.value >= 0 for f in figures)
    assert metrics <= {f.metric for f in figures}


async def test_realtime_overload_counts_every_event():
    figures = {f.metric: f.value for f in await _bench.realtime_overload(0.001)}
    assert figures["dropped"] > 0 and figures["delivered"] > 0
    assert figures["dropped"] + figures["delivered"] == 1000
