"""``loom nats status|replay`` and the loom-nats bench scenarios, against a real server."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from pathlib import Path

import pytest

from loom import Event, QoS
from loom.bench import run_scenario
from loom.cli import main
from loom_nats import NatsBus, StreamLimits

pytestmark = pytest.mark.nats

LIMITS = StreamLimits(max_age=600, duplicate_window=60)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


async def _fill(url: str, prefix: str) -> None:
    async with NatsBus(url, prefix=prefix, limits=LIMITS, name="cli") as bus:
        await bus.subscribe("log.>", qos=QoS.BATCHED)
        for i in range(4):
            await bus.publish(f"log.{'ab'[i % 2]}", Event("line", f"#{i}".encode(), source="cli"))


def test_status(nats_url: str, prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_fill(nats_url, prefix))
    code, out, _ = run_cli(["nats", "status", "--servers", nats_url, "--prefix", prefix], capsys)
    assert code == 0
    assert "JetStream" in out and f"stream   {prefix.upper()} over {prefix}.>" in out
    assert "4 events" in out and "consumer cli-" in out and "(durable)" in out
    code, out, _ = run_cli(
        ["nats", "status", "--servers", nats_url, "--prefix", prefix, "--json"], capsys
    )
    report = json.loads(out)
    assert code == 0 and report["stream_state"]["messages"] == 4
    assert report["stream_config"]["max_age_s"] == 600
    assert [c["durable"] for c in report["consumers"]] == [True]
    code, out, _ = run_cli(["nats", "status", "--servers", nats_url, "--prefix", "none"], capsys)
    assert code == 1 and "does not exist" in out


def test_status_of_an_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["nats", "status", "--servers", "nats://127.0.0.1:1"], capsys)
    assert code == 1 and "cannot connect to NATS at nats://127.0.0.1:1" in err


def test_replay_to_a_file(
    nats_url: str, prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_fill(nats_url, prefix))
    output = tmp_path / "log.jsonl"
    args = ["nats", "replay", "log.a", "--servers", nats_url, "--prefix", prefix]
    code, _, err = run_cli([*args, "--from", "1", "--output", str(output)], capsys)
    assert code == 0 and "replayed 2 events" in err
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(r["seq"], r["topic"]) for r in records] == [(1, "log.a"), (3, "log.a")]
    assert [base64.b64decode(r["event"]["payload_b64"]) for r in records] == [b"#0", b"#2"]
    assert records[0]["event"]["source"] == "cli" and records[0]["event"]["type"] == "line"
    code, out, _ = run_cli([*args[:2], "log.>", *args[3:], "--from", "1h", "--limit", "3"], capsys)
    assert code == 0 and len(out.splitlines()) == 3
    code, _, err = run_cli([*args, "--from", "soon"], capsys)
    assert code == 2 and "--from takes" in err
    code, _, err = run_cli([*args[:6], "nosuch", "--from", "1"], capsys)
    assert code == 1 and "no JetStream stream 'NOSUCH'" in err and "--prefix" in err


@pytest.mark.parametrize(
    ("name", "metrics"),
    [
        (
            "baseline.nats_raw",
            {
                "core_throughput",
                "core_protobuf_throughput",
                "jetstream_throughput",
                "reqreply_p50_us",
                "reqreply_p99_us",
            },
        ),
        ("nats.publish_1sub", {"throughput", "batched_throughput"}),
        ("nats.jetstream_publish", {"throughput", "ack_throughput", "ack_p50_us"}),
        ("nats.request_reply", {"p50_us", "p99_us"}),
    ],
)
def test_bench_scenarios_run_small(nats_url: str, name: str, metrics: set[str]) -> None:
    from loom_nats.plugin import loom_bench_scenarios

    (scenario,) = [s for s in loom_bench_scenarios() if s.name == name]
    report = run_scenario(scenario, runs=1, scale=0.01)
    assert report.ok, f"{report.error}\n{report.traceback}"
    figures = {f.metric: f.values[0] for f in report.figures}
    assert set(figures) == metrics
    assert all(value > 0 and math.isfinite(value) for value in figures.values())
