"""``loom bench``: the runner, the CLI, and a smoke run of every built-in scenario."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence

import pytest

from loom import hookimpl
from loom._builtins import loom_bench_scenarios
from loom.bench import (
    Figure,
    ScenarioReport,
    UnknownScenarioError,
    run_bench,
    run_scenario,
    select_scenarios,
)
from loom.bench._cli import BENCH_COMMAND
from loom.cli import main
from loom.contributions import BenchScenario
from loom.host import PluginHost, create_host

REQUIRED_KEYS = {"scenario", "metric", "value", "unit", "runs", "min", "median", "max"}


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _check_figure(document: dict[str, object], runs: int) -> None:
    assert set(document) - {"baseline"} == REQUIRED_KEYS
    assert document["runs"] == runs
    assert document["value"] == document["median"]
    low, mid, high = document["min"], document["median"], document["max"]
    assert isinstance(low, float) and isinstance(mid, float) and isinstance(high, float)
    assert low <= mid <= high
    assert isinstance(document["unit"], str) and document["unit"]


# -- the CLI, in process, with the built-in scenarios ---------------------------------------


def test_cli_json_baseline_and_rocksdb(capsys: pytest.CaptureFixture[str]) -> None:
    names = "baseline.asyncio_queue,state.rocksdb_put_get"
    code = main(["bench", "--json", "--scale", "0.01", "--runs", "1", "--scenario", names])
    out = capsys.readouterr().out
    assert code == 0
    lines = _json_lines(out)
    for document in lines:
        _check_figure(document, runs=1)
        assert "baseline" not in document  # neither is judged against another scenario
    metrics = [(d["scenario"], d["metric"], d["unit"]) for d in lines]
    assert metrics == [
        ("baseline.asyncio_queue", "1to1_throughput", "events/s"),
        ("baseline.asyncio_queue", "fanout10_throughput", "deliveries/s"),
        ("baseline.asyncio_queue", "reqreply_p50_us", "us"),
        ("baseline.asyncio_queue", "reqreply_p99_us", "us"),
        ("baseline.asyncio_queue", "mailbox_future_rtt_p50_us", "us"),
        ("baseline.asyncio_queue", "mailbox_future_rtt_p99_us", "us"),
        ("state.rocksdb_put_get", "put_throughput", "puts/s"),
        ("state.rocksdb_put_get", "get_throughput", "gets/s"),
        ("state.rocksdb_put_get", "sync_put_throughput", "puts/s"),
    ]


def test_cli_unknown_scenario_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--scenario", "baseline.asyncio_queue,no.such", "--scale", "0.01"])
    captured = capsys.readouterr()
    assert code == 2
    assert "unknown bench scenario(s) 'no.such'" in captured.err
    assert "baseline.asyncio_queue" in captured.err  # the known ones are listed
    assert captured.out == ""  # nothing ran


def test_cli_rejects_bad_runs_and_scale(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--runs", "0"], ["--scale", "0"], ["--scale", "-1"]):
        with pytest.raises(SystemExit) as caught:
            main(["bench", *args])
        assert caught.value.code == 2
    assert "must be" in capsys.readouterr().err


# -- the runner with a host of our own -----------------------------------------------------------


class _Plugin:
    """Contributes a baseline, a scenario judged against it, one that raises, one that lies."""

    def __init__(self) -> None:
        self.loops: list[asyncio.AbstractEventLoop] = []

    async def base(self, scale: float) -> list[Figure]:
        return [Figure("throughput", 100.0, "events/s")]

    async def judged(self, scale: float) -> list[Figure]:
        self.loops.append(asyncio.get_running_loop())
        value = 10.0 * len(self.loops)
        return [Figure("throughput", value, "events/s"), Figure("p99_us", scale, "us")]

    async def boom(self, scale: float) -> list[Figure]:
        raise RuntimeError("scenario exploded")

    async def liar(self, scale: float) -> list[object]:
        return ["not a figure"]

    @hookimpl
    def loom_bench_scenarios(self) -> list[BenchScenario]:
        return [
            BenchScenario(name="baseline.test", run=self.base),
            BenchScenario(name="test.judged", run=self.judged, baseline="baseline.test"),
            BenchScenario(name="test.boom", run=self.boom, baseline="baseline.test"),
            BenchScenario(name="test.liar", run=self.liar),  # type: ignore[arg-type]
            BenchScenario(name="test.orphan", run=self.base, baseline="baseline.missing"),
            BenchScenario(name="other.one", run=self.base),
        ]


@pytest.fixture
def plugin() -> _Plugin:
    return _Plugin()


@pytest.fixture
def host(plugin: _Plugin) -> PluginHost:
    return create_host(load_entrypoints=False, builtins=False, plugins=[plugin])


def _bench(host: PluginHost, argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="loom bench")
    BENCH_COMMAND.configure(parser)
    result = BENCH_COMMAND.run(parser.parse_args(argv), host)
    assert isinstance(result, int)
    return result


def test_failing_scenario_is_reported_and_others_run(
    host: PluginHost, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _bench(host, ["--json", "--runs", "2", "--scenario", "test.boom,test.judged"])
    captured = capsys.readouterr()
    assert code == 1
    assert "scenario 'test.boom' failed: RuntimeError: scenario exploded" in captured.err
    lines = _json_lines(captured.out)
    assert [(d["scenario"], d.get("metric")) for d in lines] == [
        ("baseline.test", "throughput"),  # the baseline runs first, though not selected
        ("test.boom", None),
        ("test.judged", "throughput"),
        ("test.judged", "p99_us"),
    ]
    assert lines[1] == {
        "scenario": "test.boom",
        "error": "RuntimeError: scenario exploded",
        "baseline": "baseline.test",
    }
    judged = lines[2]
    _check_figure(judged, runs=2)
    assert judged["baseline"] == "baseline.test"
    assert (judged["min"], judged["median"], judged["max"]) == (10.0, 15.0, 20.0)
    assert "baseline" not in lines[0]


def test_each_run_gets_a_fresh_event_loop(host: PluginHost, plugin: _Plugin) -> None:
    scenario = {s.name: s for s in host.bench_scenarios()}["test.judged"]
    report = run_scenario(scenario, runs=3, scale=0.5)
    assert report.ok
    assert len(plugin.loops) == 3
    assert len({id(loop) for loop in plugin.loops}) == 3
    assert all(loop.is_closed() for loop in plugin.loops)
    throughput, p99 = report.figures
    assert throughput.values == (10.0, 20.0, 30.0)
    assert p99.values == (0.5, 0.5, 0.5)


def test_wrong_return_type_and_missing_baseline_fail_cleanly(host: PluginHost) -> None:
    reports = {r.scenario: r for r in run_bench(host, ["test.liar", "test.orphan"], runs=1)}
    assert list(reports) == ["baseline.missing", "test.liar", "test.orphan"]
    assert reports["test.liar"].error is not None
    assert "expected loom.bench.Figure" in reports["test.liar"].error
    missing = reports["baseline.missing"]
    assert missing.error is not None
    assert "not contributed" in missing.error
    assert "test.orphan" in missing.error
    assert reports["test.orphan"].ok


def test_table_output(host: PluginHost, capsys: pytest.CaptureFixture[str]) -> None:
    code = _bench(host, ["--runs", "1", "--scenario", "test.judged,test.boom"])
    out = capsys.readouterr().out
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["scenario", "metric", "median", "min", "max", "unit"]
    assert lines[1].split() == [
        "baseline.test",
        "throughput",
        "100.00",
        "100.00",
        "100.00",
        "events/s",
    ]
    assert "FAILED: RuntimeError: scenario exploded" in out
    assert any(line.split()[:2] == ["test.judged", "p99_us"] for line in lines)


def test_list(host: PluginHost, capsys: pytest.CaptureFixture[str]) -> None:
    assert _bench(host, ["--list"]) == 0
    out = capsys.readouterr().out
    assert "test.judged  (vs baseline.test)" in out


def test_a_failing_contribution_hook_leaves_the_rest(capsys: pytest.CaptureFixture[str]) -> None:
    class Broken:
        @hookimpl
        def loom_bench_scenarios(self) -> list[BenchScenario]:
            raise RuntimeError("no scenarios today")

    host = create_host(load_entrypoints=False, plugins=[Broken()])
    assert _bench(host, ["--json", "--runs", "1", "--scale", "0.01", "-s", "baseline."]) == 0
    assert {d["scenario"] for d in _json_lines(capsys.readouterr().out)} == {
        "baseline.asyncio_queue",
        "baseline.python_call",
    }
    assert any("no scenarios today" in f.error for f in host.failures)


# -- selection ----------------------------------------------------------------------------------


def _scenario(name: str, baseline: str | None = None) -> BenchScenario:
    async def run(scale: float) -> list[Figure]:
        return []

    return BenchScenario(name=name, run=run, baseline=baseline)


AVAILABLE = [
    _scenario("baseline.q"),
    _scenario("baseline.nats"),
    _scenario("bus.a", "baseline.q"),
    _scenario("bus.b", "baseline.q"),
    _scenario("busy.x"),
    _scenario("nats.c", "baseline.nats"),
    _scenario("state.s"),
]


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (None, ["baseline.nats", "baseline.q", "bus.a", "bus.b", "busy.x", "nats.c", "state.s"]),
        ([], ["baseline.nats", "baseline.q", "bus.a", "bus.b", "busy.x", "nats.c", "state.s"]),
        (["bus."], ["baseline.q", "bus.a", "bus.b"]),
        (["bus.*"], ["baseline.q", "bus.a", "bus.b"]),
        (["bus"], ["baseline.q", "bus.a", "bus.b"]),
        (["bus*"], ["baseline.q", "bus.a", "bus.b", "busy.x"]),
        (["state.s", "nats.c"], ["baseline.nats", "nats.c", "state.s"]),
        (["bus.b", " bus.b ", ""], ["baseline.q", "bus.b"]),
        (["baseline.q"], ["baseline.q"]),
    ],
)
def test_select_scenarios(selection: list[str] | None, expected: list[str]) -> None:
    assert select_scenarios(AVAILABLE, selection) == expected


def test_select_unknown_names_lists_the_known() -> None:
    with pytest.raises(UnknownScenarioError) as caught:
        select_scenarios(AVAILABLE, ["bus.a", "nope", "bus.z"])
    assert caught.value.unknown == ["nope", "bus.z"]
    assert "known: baseline.nats, baseline.q, bus.a" in str(caught.value)
    assert isinstance(caught.value, LookupError)


# -- every built-in scenario keeps working ---------------------------------------------------------

BUILTIN_SCENARIOS = {scenario.name: scenario for scenario in loom_bench_scenarios()}


@pytest.mark.parametrize("name", sorted(BUILTIN_SCENARIOS))
def test_builtin_scenario_smoke(name: str) -> None:
    """Each built-in scenario runs at scale 0.01 and returns figures.

    Not skipped or xfailed when its module does not import yet: that must fail loudly.
    """
    report: ScenarioReport = run_scenario(BUILTIN_SCENARIOS[name], runs=1, scale=0.01)
    if not report.ok:
        pytest.fail(f"scenario {name} failed: {report.error}\n{report.traceback}")
    assert report.figures
    for summary in report.figures:
        _check_figure(summary.to_json(), runs=1)
        assert summary.values[0] == summary.values[0]  # not NaN
