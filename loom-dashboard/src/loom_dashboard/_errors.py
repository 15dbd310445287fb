"""The dashboard's errors: one root, and the configuration error that names the key."""

from __future__ import annotations

from loom.errors import LoomError

__all__ = ["DashboardConfigError", "DashboardError"]


class DashboardError(LoomError):
    """Root of the errors loom-dashboard raises."""


class DashboardConfigError(DashboardError, ValueError):
    """A dashboard setting is missing or out of range.

    Attributes:
        key: the setting, as written in ``loom.toml`` (``dashboard.port``).
        reason: what is wrong and what to write instead.
    """

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")
