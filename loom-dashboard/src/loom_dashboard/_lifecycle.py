"""Starting and stopping a dashboard with an app (the ``loom_app_startup`` and
``loom_app_shutdown`` hooks), by the app's ``[dashboard]`` settings."""

from __future__ import annotations

import logging
from typing import Any, Final

from loom_dashboard._server import DashboardServer
from loom_dashboard._settings import DashboardSettings, settings_from_app

__all__ = ["EXTENSION_KEY", "override", "running", "shutdown", "startup"]

log = logging.getLogger("loom.dashboard")

#: Where the running server is kept in ``app.extensions`` (when the app has that dict).
EXTENSION_KEY: Final = "dashboard"

# Apps without an ``extensions`` dict, and settings the CLI forces on an app, by id(app).
_SERVERS: dict[int, tuple[Any, DashboardServer]] = {}
_OVERRIDES: dict[int, tuple[Any, DashboardSettings]] = {}


def override(app: Any, settings: DashboardSettings) -> None:
    """Make :func:`startup` use ``settings`` for ``app`` whatever its configuration says
    (``loom dashboard CONFIG`` does, so a configuration needs no ``[dashboard]`` table)."""
    _OVERRIDES[id(app)] = (app, settings)


def running(app: Any) -> DashboardServer | None:
    """The dashboard started for ``app``, if any."""
    extensions = getattr(app, "extensions", None)
    if isinstance(extensions, dict):
        server = extensions.get(EXTENSION_KEY)
        if isinstance(server, DashboardServer):
            return server
    held = _SERVERS.get(id(app))
    return held[1] if held is not None and held[0] is app else None


async def startup(app: Any) -> None:
    """Start the dashboard for ``app`` when its settings enable it.

    Raises:
        DashboardConfigError: the ``[dashboard]`` table is invalid (the host reports it
            against this plugin; the app goes on without a dashboard).
        DashboardError: the dashboard cannot listen where it is told to.
    """
    forced = _OVERRIDES.pop(id(app), None)
    settings = forced[1] if forced is not None and forced[0] is app else settings_from_app(app)
    if settings is None or not (settings.enabled or forced is not None):
        return
    if running(app) is not None:
        return
    server = DashboardServer(app, settings)
    await server.start()
    extensions = getattr(app, "extensions", None)
    if isinstance(extensions, dict):
        extensions[EXTENSION_KEY] = server
    else:
        _SERVERS[id(app)] = (app, server)
    line = f"dashboard: {server.url}"
    on_phase = getattr(app, "on_phase", None)
    if callable(on_phase):
        on_phase(line)
    else:
        log.info("%s", line)


async def shutdown(app: Any) -> None:
    """Stop the dashboard started for ``app``, if any."""
    server = running(app)
    if server is None:
        return
    extensions = getattr(app, "extensions", None)
    if isinstance(extensions, dict):
        extensions.pop(EXTENSION_KEY, None)
    _SERVERS.pop(id(app), None)
    await server.stop()
