"""The ``dashboard`` plugin: what loom-dashboard contributes to the Loom host.

Loaded through the entry point ``dashboard`` in group ``loom``. It imports nothing heavy:
the server (starlette, uvicorn) loads only when a dashboard starts.

- CLI: ``loom dashboard [loom.toml]`` (an app, or the demo host, with the dashboard).
- Lifecycle: ``loom run`` starts the dashboard with an app whose ``[dashboard]`` table says
  ``enabled = true``, and stops it with the app.
- Bench: ``dashboard.tapped_publish`` (bus throughput with a dashboard and a viewer
  attached, beside the same bus without) and ``dashboard.api_metrics`` (``/api/metrics``
  round trips over HTTP).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from loom.contributions import BenchScenario, CliCommand, lazy
from loom.hookspecs import hookimpl

__all__: list[str] = []


@hookimpl
def loom_cli_commands() -> list[CliCommand]:
    return [
        CliCommand(
            name="dashboard",
            description="serve the dashboard (topology, metrics, swimlanes, live events) "
            "for a loom.toml, or for a demo host",
            configure=lazy("loom_dashboard._cli", "configure"),
            run=lazy("loom_dashboard._cli", "run"),
        )
    ]


@hookimpl
def loom_bench_scenarios() -> list[BenchScenario]:
    return [
        BenchScenario(
            name="dashboard.tapped_publish",
            description="bus publish throughput with a dashboard and one viewer attached, "
            "beside the same bus without",
            run=lazy("loom_dashboard._bench", "tapped_publish"),
            baseline="baseline.asyncio_queue",
        ),
        BenchScenario(
            name="dashboard.api_metrics",
            description="GET /api/metrics round trips over HTTP against the demo host",
            run=lazy("loom_dashboard._bench", "api_metrics"),
        ),
    ]


@hookimpl
def loom_app_startup(app: Any) -> Awaitable[None]:
    from loom_dashboard._lifecycle import startup

    return startup(app)


@hookimpl
def loom_app_shutdown(app: Any) -> Awaitable[None]:
    from loom_dashboard._lifecycle import shutdown

    return shutdown(app)
