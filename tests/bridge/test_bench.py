"""The bridge's ``loom bench`` scenarios run, at a tiny scale, through the real CLI and host."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bridge_scenarios_run_beside_the_raw_grpc_baseline():
    result = subprocess.run(
        [
            sys.executable, "-m", "loom.cli", "bench", "--json", "--scale", "0.01", "--runs", "1",
            "--scenario", "baseline.grpc_raw,bridge.",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    seen = {(f["scenario"], f["metric"], f["unit"]) for f in figures}
    assert seen == {
        ("baseline.grpc_raw", "stream_throughput", "messages/s"),
        ("baseline.grpc_raw", "unary_p50_us", "us"),
        ("bridge.push", "throughput", "events/s"),
        ("bridge.push", "raw_stream_throughput", "messages/s"),
        ("bridge.push_batched", "throughput", "events/s"),
        ("bridge.push_batched", "raw_stream_throughput", "messages/s"),
        ("bridge.publish", "throughput", "events/s"),
        ("bridge.publish", "raw_stream_throughput", "messages/s"),
        ("bridge.publish_batched", "throughput", "events/s"),
        ("bridge.publish_batched", "raw_stream_throughput", "messages/s"),
        ("bridge.forward_action", "p50_us", "us"),
        ("bridge.forward_action", "p99_us", "us"),
        ("bridge.forward_action", "raw_unary_p50_us", "us"),
    }
    for figure in figures:
        assert figure["value"] > 0
        if figure["scenario"].startswith("bridge."):
            assert figure["baseline"] == "baseline.grpc_raw"
    # The baseline ran first, in the same process run.
    assert figures[0]["scenario"] == "baseline.grpc_raw"


def test_importing_the_plugin_and_the_package_stays_light():
    code = (
        "import sys, json, loom_bridge, loom_bridge.plugin\nprint(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = json.loads(out.stdout)
    heavy = [
        m
        for m in modules
        if m.split(".")[0] in {"grpc", "google", "pydantic"} or m.startswith("loom.v1")
    ]
    assert heavy == []
