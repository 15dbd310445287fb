"""Errors of app composition: a bad ``loom.toml``, or a name nothing installed provides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loom.errors import LoomError

__all__ = ["AppConfigError", "AppError", "ConfigIssue"]


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in an app's configuration.

    Attributes:
        key: where, as a key path (``agents[2].type``); "" for the file as a whole.
        message: what is wrong and what is expected.
    """

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class AppConfigError(LoomError, ValueError):
    """An app's configuration is invalid, or names something no installed plugin provides.

    The message names the file, the key path and what is expected, one line per problem:
    ``loom.toml: agents[2].type: unknown agent type 'sensr'; installed: ...``.

    Attributes:
        source: the file (or ``<config>`` for a configuration built in code).
        issues: every problem found.
    """

    def __init__(self, source: str, issues: Sequence[ConfigIssue]) -> None:
        if not issues:
            raise ValueError("AppConfigError needs at least one issue")
        self.source = source
        self.issues = tuple(issues)
        if len(self.issues) == 1:
            text = f"{source}: {self.issues[0]}"
        else:
            lines = "\n".join(f"  {issue}" for issue in self.issues)
            text = f"{source}: {len(self.issues)} problems:\n{lines}"
        super().__init__(text)

    @classmethod
    def one(cls, source: str, key: str, message: str) -> AppConfigError:
        """An error with a single issue."""
        return cls(source, [ConfigIssue(key, message)])

    @property
    def keys(self) -> list[str]:
        """The key paths of the issues, in order."""
        return [issue.key for issue in self.issues]


class AppError(LoomError, RuntimeError):
    """An app could not start or run: a backend failed to open, a source failed to start.

    Configuration problems are :class:`AppConfigError` instead.
    """
