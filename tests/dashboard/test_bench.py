"""The dashboard's bench scenarios run (at a tiny scale) and report their figures."""

from __future__ import annotations

import math

import pytest

import loom_dashboard.plugin as plugin
from loom.bench import run_scenario

SCENARIOS = {s.name: s for s in plugin.loom_bench_scenarios()}


@pytest.mark.parametrize(
    ("name", "figures"),
    [
        (
            "dashboard.tapped_publish",
            {
                "throughput",
                "untapped_throughput",
                "overhead_pct",
                "plain_subscriber_throughput",
                "tap_dropped",
            },
        ),
        ("dashboard.api_metrics", {"p50_us", "p99_us"}),
    ],
)
def test_scenario_smoke(name, figures):
    report = run_scenario(SCENARIOS[name], runs=1, scale=0.01)
    assert report.error is None, report.error
    got = {f.metric: f for f in report.figures}
    assert set(got) == figures
    for figure in report.figures:
        assert math.isfinite(figure.median)
        if figure.metric != "overhead_pct":  # a tapped run may beat a bare one by noise
            assert figure.median >= 0
    if "throughput" in got:
        assert got["throughput"].median > 0 and got["untapped_throughput"].median > 0


def test_the_publish_scenario_is_judged_by_the_asyncio_baseline():
    assert SCENARIOS["dashboard.tapped_publish"].baseline == "baseline.asyncio_queue"
