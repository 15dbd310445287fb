"""Core's built-in plugin: what loom-core contributes, through the same hooks as any plugin."""

from __future__ import annotations

from loom.contributions import CliCommand
from loom.hookspecs import hookimpl

__all__: list[str] = []


@hookimpl
def loom_cli_commands() -> list[CliCommand]:
    from loom._cli_plugins import PLUGINS_COMMAND

    return [PLUGINS_COMMAND]
