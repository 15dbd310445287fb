"""The telemetry package's error."""

from __future__ import annotations

from loom.errors import LoomError

__all__ = ["TelemetryError"]


class TelemetryError(LoomError, RuntimeError):
    """Telemetry was used in a way it cannot serve (instrumenting after ``shutdown``)."""
