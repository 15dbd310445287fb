"""The ``mcp`` plugin: light to load, its commands and scenarios listed, and its bench
scenarios working at a tiny size (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from loom.bench import Figure
from loom_mcp import _bench

LIGHT_CHECK = """
import sys, json
import loom_mcp, loom_mcp.plugin
loom_mcp.plugin.loom_cli_commands(); loom_mcp.plugin.loom_bench_scenarios()
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in
      ('mcp', 'mcp_types', 'anyio', 'httpx2', 'pydantic', 'starlette', 'uvicorn', 'asyncio'))))
"""


def test_loading_the_plugin_imports_no_sdk():
    out = subprocess.run([sys.executable, "-c", LIGHT_CHECK], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_loom_plugins_lists_what_mcp_contributes():
    out = subprocess.run(
        [sys.executable, "-m", "loom.cli", "plugins", "--json"], capture_output=True, text=True
    )
    [mcp] = [p for p in json.loads(out.stdout)["plugins"] if p["name"] == "mcp"]
    assert mcp["distribution"] == "loom-mcp"
    assert mcp["contributions"] == {
        "bench_scenarios": ["baseline.mcp_sdk", "mcp.http_call", "mcp.stdio_call"],
        "cli_commands": ["mcp"],
    }


def test_the_package_exports_what_it_declares():
    import loom_mcp

    for name in loom_mcp.__all__:
        assert getattr(loom_mcp, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        loom_mcp.nope  # noqa: B018


@pytest.mark.parametrize("server", ["python", pytest.param("everything", marks=pytest.mark.mcp)])
@pytest.mark.parametrize(
    ("scenario", "metrics"),
    [
        (_bench.sdk_baseline, {"stdio_p50_us", "stdio_p99_us", "http_p50_us", "http_p99_us"}),
        (_bench.stdio_call, {"p50_us", "p99_us", "sdk_p50_us", "overhead_pct"}),
        (_bench.http_call, {"p50_us", "p99_us", "sdk_p50_us", "overhead_pct"}),
    ],
)
async def test_scenario_runs_small(scenario, metrics, server, monkeypatch, request):
    if server == "everything":
        request.getfixturevalue("everything_bin")  # skips when the peer is missing
    monkeypatch.setenv(_bench.SERVER_ENV, server)
    figures = await scenario(0.005)
    latencies = [f for f in figures if f.unit == "us"]
    assert all(isinstance(f, Figure) and f.value > 0 for f in latencies)
    by_metric = {f.metric: f for f in figures}
    assert set(by_metric) == metrics
    if "overhead_pct" in by_metric:  # the broker's p50 against the SDK's, interleaved
        expected = (by_metric["p50_us"].value / by_metric["sdk_p50_us"].value - 1) * 100
        assert by_metric["overhead_pct"].unit == "%"
        assert by_metric["overhead_pct"].value == pytest.approx(expected)
