"""Telemetry: OpenTelemetry traces and metrics of the bus, agents, broker and models, and
structured logs.

:func:`configure` sets up the OpenTelemetry SDK from a :class:`TelemetryConfig` and
returns a :class:`Telemetry`; :meth:`Telemetry.instrument` names the objects whose
metrics it reports. Spans cover publish (with a ``deliver`` event per subscription),
handle (an agent's handler), invoke (the broker) and LLM calls, and the W3C
``traceparent`` travels in ``Event.metadata`` and ``ActionCall.headers``, so one trace
follows an event from its publisher through agents and capabilities.

With tracing off (the default) the hot paths run no OpenTelemetry code: they read one
switch in :mod:`loom.telemetry._switch`. Metrics are read from the objects' own counters
when they are collected, not counted per event.

The SDK and the exporters are the ``telemetry`` extra (``pip install
'loom-core[telemetry]'``); this package imports them only when :func:`configure` runs, so
``import loom.telemetry`` stays light.

Example:
    .. code-block:: python

        from loom.telemetry import TelemetryConfig, configure

        telemetry = configure(TelemetryConfig(tracing="all", prometheus="127.0.0.1:9464"))
        telemetry.instrument(bus=bus, runtime=runtime, broker=broker)
        print("\\n".join(telemetry.describe()))
        ...
        await telemetry.shutdown()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loom.telemetry._config import TelemetryConfig
    from loom.telemetry._errors import TelemetryError
    from loom.telemetry._logging import JsonFormatter, TraceContextFilter, json_logging
    from loom.telemetry._propagate import inject, tracing_on
    from loom.telemetry._telemetry import Telemetry, TelemetryStats, active, configure

__all__ = [
    "JsonFormatter",
    "Telemetry",
    "TelemetryConfig",
    "TelemetryError",
    "TelemetryStats",
    "TraceContextFilter",
    "active",
    "configure",
    "inject",
    "json_logging",
    "tracing_on",
]

_LAZY = {
    "TelemetryConfig": "loom.telemetry._config",
    "TelemetryError": "loom.telemetry._errors",
    "JsonFormatter": "loom.telemetry._logging",
    "TraceContextFilter": "loom.telemetry._logging",
    "json_logging": "loom.telemetry._logging",
    "inject": "loom.telemetry._propagate",
    "tracing_on": "loom.telemetry._propagate",
    "Telemetry": "loom.telemetry._telemetry",
    "TelemetryStats": "loom.telemetry._telemetry",
    "active": "loom.telemetry._telemetry",
    "configure": "loom.telemetry._telemetry",
}


def __getattr__(name: str) -> Any:
    # The bus imports the switch module of this package: pydantic and OpenTelemetry load
    # only when one of these names is asked for.
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'loom.telemetry' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
