"""The Loom dashboard: watch a running host in a browser.

A plugin (entry point ``dashboard``) that serves one static page and a small JSON API over
HTTP: the topology (agents, the topics they subscribe to, capabilities and their
providers, bridge and MCP connections), metrics (events/s per topic, delivery latency,
drops by reason, queue depths, tool calls and errors, routing decisions), swimlanes of
collaboration threads and a live event tail, streamed to the page with server-sent
events, bounded at every step.

Start one beside your own parts::

    async with DashboardServer(HostParts(bus, runtime=runtime, broker=broker),
                               DashboardSettings(port=0)) as dashboard:
        print("open", dashboard.url)

or let ``loom run`` start it with an app whose ``loom.toml`` has ``[dashboard]
enabled = true``, or run ``loom dashboard`` (a demo host) / ``loom dashboard loom.toml``.

Importing this package is light: starlette and uvicorn load when a server starts. See
``docs/dashboard.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from loom_dashboard._errors import DashboardConfigError, DashboardError
from loom_dashboard._observed import BrokerView, HostParts, ObservedHost, RouterView, RuntimeView
from loom_dashboard._settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DashboardSettings,
    settings_from_app,
)

if TYPE_CHECKING:
    from loom_dashboard._demo import DemoHost
    from loom_dashboard._server import DashboardServer

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "BrokerView",
    "DashboardConfigError",
    "DashboardError",
    "DashboardServer",
    "DashboardSettings",
    "DemoHost",
    "HostParts",
    "ObservedHost",
    "RouterView",
    "RuntimeView",
    "settings_from_app",
]

_LAZY = {"DashboardServer": "loom_dashboard._server", "DemoHost": "loom_dashboard._demo"}


def __getattr__(name: str) -> Any:
    # The server pulls the bus and the collaboration modules, the demo the whole core.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loom_dashboard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
