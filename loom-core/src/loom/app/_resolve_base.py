"""The resolver's base: where it reports problems, and how it looks names up and calls
factories."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from loom.app._config import AppConfig
from loom.app._errors import ConfigIssue
from loom.contributions import Contribution
from loom.host import PluginHost

__all__ = ["ResolverBase"]

C = TypeVar("C", bound=Contribution)


class ResolverBase:
    """Holds what is resolved against, and collects every problem found (with its key)."""

    def __init__(
        self, config: AppConfig, host: PluginHost, source: str, base_dir: Path, app: object
    ) -> None:
        self.config = config
        self.host = host
        self.source = source
        self.base_dir = base_dir
        self.app = app
        self.issues: list[ConfigIssue] = []
        self.notes: list[str] = []

    def issue(self, key: str, message: str) -> None:
        """Record a problem at ``key``."""
        self.issues.append(ConfigIssue(key, message))

    def _named(self, key: str, kind: str, name: str, records: Sequence[C]) -> C | None:
        for record in records:
            if record.name == name:
                return record
        installed = ", ".join(r.name for r in records) or "none"
        self.issue(
            key,
            f"unknown {kind} {name!r}; installed: {installed} "
            f"(a plugin that contributes {name!r} must be installed and not disabled)",
        )
        return None

    def _build(self, key: str, what: str, factory: Callable[..., Any], **options: Any) -> Any:
        try:
            return factory(**options)
        except TypeError as exc:
            self.issue(key, f"{what} refused these options: {exc}")
        except Exception as exc:  # noqa: BLE001  # any factory error is the config's problem
            self.issue(key, f"{what}: {type(exc).__name__}: {exc}")
        return None
