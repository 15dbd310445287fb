"""``loom bench``: run bench scenarios and print their figures.

Exit status: 0 when every scenario ran, 1 when one failed (it is reported and the others
still run), 2 for an unknown scenario name.
"""

from __future__ import annotations

import argparse
import json
import sys

from loom.bench._runner import ScenarioReport, UnknownScenarioError, run_bench, select_scenarios
from loom.contributions import CliCommand
from loom.host import PluginHost

__all__ = ["BENCH_COMMAND"]

_EPILOG = """\
examples:
  loom bench                                    every scenario, 3 runs each, as a table
  loom bench --json --scenario bus.,state.      one JSON object per figure and line
  loom bench --scenario bus.publish_1sub --runs 5
The baseline a scenario is judged against always runs too, first.
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument(
        "--scenario",
        "-s",
        action="append",
        metavar="NAMES",
        help="comma-separated names or prefixes (bus. or bus.*) to run; default: all",
    )
    parser.add_argument(
        "--runs", type=_positive_int, default=3, help="runs of each scenario (default 3)"
    )
    parser.add_argument(
        "--scale",
        type=_positive_float,
        default=1.0,
        help="multiplies every scenario's sizes (default 1.0; 0.01 for a smoke test)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per figure")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--verbose", "-v", action="store_true", help="show failure tracebacks")


def _format_value(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.2f}"


class _Table:
    """Prints each scenario's rows as soon as it is done, in aligned columns."""

    def __init__(self, scenario_width: int) -> None:
        self.widths = (max(scenario_width, 8), 22, 14, 14, 14, 14)
        self.header_printed = False

    def row(self, cells: tuple[str, ...]) -> None:
        left = f"{cells[0]:<{self.widths[0]}}  {cells[1]:<{self.widths[1]}}"
        numbers = "".join(f"{c:>{w}}" for c, w in zip(cells[2:5], self.widths[2:5], strict=True))
        print(f"{left}{numbers}  {cells[5]}".rstrip(), flush=True)

    def report(self, report: ScenarioReport) -> None:
        if not self.header_printed:
            self.row(("scenario", "metric", "median", "min", "max", "unit"))
            self.header_printed = True
        if not report.ok:
            print(f"{report.scenario:<{self.widths[0]}}  FAILED: {report.error}", flush=True)
            return
        for s in report.figures:
            values = (_format_value(s.median), _format_value(min(s.values)))
            self.row((s.scenario, s.metric, *values, _format_value(max(s.values)), s.unit))


def _list(host: PluginHost) -> int:
    for scenario in host.bench_scenarios():
        against = f"  (vs {scenario.baseline})" if scenario.baseline else ""
        print(f"{scenario.name}{against}")
        if scenario.description:
            print(f"    {scenario.description}")
    return 0


def _run(args: argparse.Namespace, host: PluginHost) -> int:
    if args.list:
        return _list(host)
    names = [n for group in args.scenario or () for n in group.split(",")]
    table: _Table | None = None

    def started(name: str) -> None:
        if not args.json:
            print(f"loom bench: running {name} ({args.runs} runs)...", file=sys.stderr, flush=True)

    def finished(report: ScenarioReport) -> None:
        if not report.ok:
            print(
                f"loom bench: scenario {report.scenario!r} failed: {report.error}",
                file=sys.stderr,
                flush=True,
            )
            if args.verbose and report.traceback:
                print(report.traceback, file=sys.stderr, flush=True)
        if args.json:
            for document in report.to_json():
                print(json.dumps(document), flush=True)
        elif table is not None:
            table.report(report)

    try:
        order = select_scenarios(host.bench_scenarios(), names or None)
        if not args.json:
            table = _Table(max((len(n) for n in order), default=8))
        reports = run_bench(
            host,
            names or None,
            runs=args.runs,
            scale=args.scale,
            on_start=started,
            on_report=finished,
        )
    except UnknownScenarioError as exc:
        print(f"loom bench: {exc}", file=sys.stderr)
        return 2
    failed = [r.scenario for r in reports if not r.ok]
    if failed:
        print(f"loom bench: {len(failed)} scenario(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


BENCH_COMMAND = CliCommand(
    name="bench",
    description="Run bench scenarios, each beside its baseline, and print their figures",
    run=_run,
    configure=_configure,
)
