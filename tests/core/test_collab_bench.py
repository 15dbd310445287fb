"""The collaboration bench scenarios and the mailbox+future floor, run at a tiny scale."""

from __future__ import annotations

import asyncio

import pytest

from loom.bench._baseline import asyncio_queue
from loom.collab import _bench


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (_bench.request_reply, [("p50_us", "us"), ("p99_us", "us")]),
        (
            _bench.fanout10_first_k,
            [("p50_us", "us"), ("p99_us", "us"), ("throughput", "fanouts/s")],
        ),
        (_bench.contract_net10, [("p50_us", "us")]),
    ],
)
def test_scenario_runs_and_reports_its_figures(scenario, expected):
    figures = asyncio.run(scenario(0.01))
    assert [(f.metric, f.unit) for f in figures] == expected
    assert all(f.value > 0 for f in figures)
    by_name = {f.metric: f.value for f in figures}
    if "p99_us" in by_name:
        assert by_name["p50_us"] <= by_name["p99_us"]


def test_baseline_has_the_mailbox_future_round_trip():
    figures = {f.metric: f for f in asyncio.run(asyncio_queue(0.005))}
    p50 = figures["mailbox_future_rtt_p50_us"]
    p99 = figures["mailbox_future_rtt_p99_us"]
    assert p50.unit == p99.unit == "us"
    assert 0 < p50.value <= p99.value
