"""``loom bench``: named scenarios, each measured beside its baseline in the same run.

A scenario is contributed through the ``loom_bench_scenarios`` hook as a
:class:`~loom.contributions.BenchScenario` whose ``run(scale)`` coroutine performs one run
and returns :class:`Figure` records. ``scale`` is 1.0 for a real measurement and small (say
0.01) for the smoke test that keeps every scenario working; a scenario multiplies its
event counts by it.

Scenarios that compare with ``baseline.asyncio_queue`` build their items with
:func:`bench_event`, so the work per item matches the baseline's.

The runner (:func:`run_bench`, :func:`select_scenarios`, :class:`ScenarioReport`) loads
the plugin host, so it is imported on first use, not with this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loom.bench._baseline import BENCH_EVENT_TYPE, BENCH_PAYLOAD, bench_event, percentile
from loom.bench._figures import Figure

if TYPE_CHECKING:
    from loom.bench._runner import (
        FigureSummary,
        ScenarioReport,
        UnknownScenarioError,
        run_bench,
        run_scenario,
        select_scenarios,
    )

__all__ = [
    "BENCH_EVENT_TYPE",
    "BENCH_PAYLOAD",
    "Figure",
    "FigureSummary",
    "ScenarioReport",
    "UnknownScenarioError",
    "bench_event",
    "percentile",
    "run_bench",
    "run_scenario",
    "select_scenarios",
]

_RUNNER_NAMES = frozenset(
    {
        "FigureSummary",
        "ScenarioReport",
        "UnknownScenarioError",
        "run_bench",
        "run_scenario",
        "select_scenarios",
    }
)


def __getattr__(name: str) -> Any:
    if name not in _RUNNER_NAMES:
        raise AttributeError(f"module 'loom.bench' has no attribute {name!r}")
    from loom.bench import _runner

    return getattr(_runner, name)
