"""Apps: a ``loom.toml`` composed into a running system from the installed plugins.

- :class:`App`: resolves a configuration against the plugin host, starts the bus, state
  store, broker, router, agents, sources and telemetry, runs until a signal, ``run_for``
  or every source is exhausted, and shuts everything down in order.
- :func:`load_config` / :class:`AppConfig`: the ``loom.toml`` schema (pydantic, unknown
  keys refused); a bad file raises :class:`AppConfigError` naming the file, the key path
  and what is expected.
- :class:`TimerSource` and :class:`FileSource`: core's event sources ``timer`` and
  ``file``.
- :func:`current_app`: the app running the calling agent or source.

``loom run`` and ``loom new`` are the commands on top. See ``docs/apps.md``.
"""

from __future__ import annotations

from loom.app._app import App, current_app
from loom.app._config import (
    DEFAULT_CONFIG_FILE,
    AgentEntry,
    AppConfig,
    AppSection,
    BusSection,
    CapabilityEntry,
    McpSection,
    ModelEntry,
    RouterSection,
    SourceEntry,
    StateSection,
    TelemetrySection,
    load_config,
    parse_config,
)
from loom.app._errors import AppConfigError, AppError, ConfigIssue
from loom.app._report import AppStatus, RunReport, StopReason
from loom.app._sources import EventSourceLike, FileSource, TimerSource

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "AgentEntry",
    "App",
    "AppConfig",
    "AppConfigError",
    "AppError",
    "AppSection",
    "AppStatus",
    "BusSection",
    "CapabilityEntry",
    "ConfigIssue",
    "EventSourceLike",
    "FileSource",
    "McpSection",
    "ModelEntry",
    "RouterSection",
    "RunReport",
    "SourceEntry",
    "StateSection",
    "StopReason",
    "TelemetrySection",
    "TimerSource",
    "current_app",
    "load_config",
    "parse_config",
]
