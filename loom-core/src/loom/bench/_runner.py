"""Runs bench scenarios: selection, baselines first, repetitions, and summaries.

Every run of every scenario happens in this process, one after another, each in a fresh
event loop (``asyncio.run``) after a ``gc.collect()``. A scenario that raises, or whose
module does not import, is reported as failed and the others still run.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import statistics
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loom.bench._figures import Figure
from loom.errors import LoomError

if TYPE_CHECKING:
    from loom.contributions import BenchScenario
    from loom.host import PluginHost

__all__ = [
    "FigureSummary",
    "ScenarioReport",
    "UnknownScenarioError",
    "run_bench",
    "run_scenario",
    "select_scenarios",
]

#: Names that start with this are baselines, and run before the scenarios judged by them.
BASELINE_PREFIX = "baseline."


class UnknownScenarioError(LoomError, LookupError):
    """A name given to ``--scenario`` matches no contributed scenario.

    Attributes:
        unknown: the names that matched nothing.
        known: every contributed scenario's name.
    """

    def __init__(self, unknown: Sequence[str], known: Sequence[str]) -> None:
        self.unknown = list(unknown)
        self.known = list(known)
        names = ", ".join(repr(n) for n in self.unknown)
        super().__init__(
            f"unknown bench scenario(s) {names}; known: {', '.join(self.known) or 'none'}"
        )

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class FigureSummary:
    """One figure of a scenario over all its runs.

    Attributes:
        scenario: the scenario's name.
        metric: the figure's name (``throughput``, ``p99_us``, ...).
        unit: its unit.
        values: the value of each run, in run order.
        baseline: the scenario this one is judged against, if any.
    """

    scenario: str
    metric: str
    unit: str
    values: tuple[float, ...]
    baseline: str | None = None

    @property
    def median(self) -> float:
        """The median over the runs: the figure's value."""
        return float(statistics.median(self.values))

    def to_json(self) -> dict[str, Any]:
        """The DESIGN.md §7 object, plus ``baseline`` when there is one."""
        document: dict[str, Any] = {
            "scenario": self.scenario,
            "metric": self.metric,
            "value": self.median,
            "unit": self.unit,
            "runs": len(self.values),
            "min": min(self.values),
            "median": self.median,
            "max": max(self.values),
        }
        if self.baseline is not None:
            document["baseline"] = self.baseline
        return document


@dataclass(frozen=True)
class ScenarioReport:
    """What one scenario produced: its figures, or the error that stopped it.

    Attributes:
        scenario: the scenario's name.
        baseline: the scenario it is judged against, if any.
        figures: one summary per (metric, unit), in the order the scenario returned them.
        error: ``Type: message`` of the failure, or None if every run succeeded.
        traceback: the failure's formatted traceback.
        seconds: wall time of all its runs.
    """

    scenario: str
    baseline: str | None = None
    figures: tuple[FigureSummary, ...] = ()
    error: str | None = None
    traceback: str = field(default="", repr=False)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every run succeeded."""
        return self.error is None

    def to_json(self) -> list[dict[str, Any]]:
        """One object per figure, or one ``{"scenario", "error"}`` object for a failure."""
        if self.error is None:
            return [summary.to_json() for summary in self.figures]
        document: dict[str, Any] = {"scenario": self.scenario, "error": self.error}
        if self.baseline is not None:
            document["baseline"] = self.baseline
        return [document]


def select_scenarios(
    available: Sequence[BenchScenario], selection: Iterable[str] | None = None
) -> list[str]:
    """The names to run, in run order: the baselines first, then the rest, each by name.

    Each item of ``selection`` is a scenario name, or a prefix: one ending in ``.`` or
    ``*`` (``bus.``, ``bus.*``), or a group name (``bus`` for every ``bus.*``). None or
    nothing selects every scenario. The baseline that a selected scenario names is always
    added, even when not selected (and even when no plugin contributes it: running it then
    reports it as failed).

    Raises:
        UnknownScenarioError: an item matches no scenario.
    """
    by_name = {scenario.name: scenario for scenario in available}
    wanted = [item.strip() for item in selection or () if item.strip()]
    chosen: set[str] = set() if wanted else set(by_name)
    unknown: list[str] = []
    for item in wanted:
        matched = _match(item, by_name)
        if not matched:
            unknown.append(item)
        chosen.update(matched)
    if unknown:
        raise UnknownScenarioError(unknown, sorted(by_name))
    baselines = {n for n in chosen if n.startswith(BASELINE_PREFIX)}
    for name in chosen:
        scenario = by_name.get(name)
        if scenario is not None and scenario.baseline:
            baselines.add(scenario.baseline)
    return sorted(baselines) + sorted(chosen - baselines)


def _match(item: str, names: Iterable[str]) -> list[str]:
    if item in names:
        return [item]
    if item.endswith("*"):
        prefix = item[:-1]
    elif item.endswith("."):
        prefix = item
    else:
        prefix = item + "."
    return [name for name in names if name.startswith(prefix)]


def run_scenario(scenario: BenchScenario, *, runs: int = 3, scale: float = 1.0) -> ScenarioReport:
    """Run one scenario ``runs`` times and summarise its figures.

    Each run gets a fresh event loop, after a ``gc.collect()``. An exception in any run
    (or on the way to the first, such as the scenario's module failing to import) ends
    the scenario and is returned as the report's ``error``.
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    values: dict[tuple[str, str], list[float]] = {}
    started = time.perf_counter()
    try:
        for _ in range(runs):
            gc.collect()
            for figure in asyncio.run(_one_run(scenario, scale)):
                values.setdefault((figure.metric, figure.unit), []).append(float(figure.value))
    # A failing scenario is reported and the runner goes on with the next one.
    except Exception as exc:  # noqa: BLE001
        return ScenarioReport(
            scenario=scenario.name,
            baseline=scenario.baseline,
            error=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc)),
            seconds=time.perf_counter() - started,
        )
    finally:
        gc.collect()
    figures = tuple(
        FigureSummary(scenario.name, metric, unit, tuple(vals), scenario.baseline)
        for (metric, unit), vals in values.items()
    )
    return ScenarioReport(
        scenario=scenario.name,
        baseline=scenario.baseline,
        figures=figures,
        seconds=time.perf_counter() - started,
    )


async def _one_run(scenario: BenchScenario, scale: float) -> list[Figure]:
    result: Any = scenario.run(scale)
    if not inspect.isawaitable(result):
        raise TypeError(
            f"scenario {scenario.name!r}: run(scale) must return an awaitable, "
            f"not {type(result).__name__}"
        )
    figures = list(await result)
    for figure in figures:
        if not isinstance(figure, Figure):
            raise TypeError(
                f"scenario {scenario.name!r} returned {type(figure).__name__}, "
                "expected loom.bench.Figure"
            )
    return figures


def run_bench(
    host: PluginHost,
    names: Iterable[str] | None = None,
    *,
    runs: int = 3,
    scale: float = 1.0,
    on_start: Callable[[str], None] | None = None,
    on_report: Callable[[ScenarioReport], None] | None = None,
) -> list[ScenarioReport]:
    """Run the selected scenarios of ``host`` (see :func:`select_scenarios`), baselines first.

    Args:
        host: where the scenarios come from (``host.bench_scenarios()``).
        names: names or prefixes to run; None runs every scenario.
        runs: repetitions of each scenario.
        scale: multiplies each scenario's sizes.
        on_start: called with a scenario's name before it runs.
        on_report: called with each report as soon as it is ready.

    Returns:
        One report per scenario, in run order.

    Raises:
        UnknownScenarioError: a name matches no scenario (before anything runs).
    """
    available = host.bench_scenarios()
    by_name = {scenario.name: scenario for scenario in available}
    order = select_scenarios(available, names)
    judged_by = {s.baseline: s.name for s in available if s.baseline and s.name in order}
    reports: list[ScenarioReport] = []
    for name in order:
        if on_start is not None:
            on_start(name)
        scenario = by_name.get(name)
        if scenario is None:
            report = ScenarioReport(
                scenario=name,
                error=(
                    f"LookupError: baseline {name!r} of {judged_by.get(name, '?')!r} is "
                    "not contributed by any installed plugin"
                ),
            )
        else:
            report = run_scenario(scenario, runs=runs, scale=scale)
        reports.append(report)
        if on_report is not None:
            on_report(report)
    return reports
