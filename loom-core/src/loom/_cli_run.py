"""``loom run [loom.toml]``: compose an app from its configuration and run it.

This module stays light (``loom plugins`` imports it); the app machinery loads in ``run``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from loom.contributions import CliCommand

if TYPE_CHECKING:
    from loom.host import PluginHost

__all__ = ["RUN_COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config", nargs="?", default="loom.toml", help="the app's configuration (loom.toml)"
    )
    parser.add_argument(
        "--run-for",
        type=float,
        metavar="SECONDS",
        help="stop after this many seconds (overrides run_for in the file)",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="do not end when every source is exhausted: run until Ctrl-C, SIGTERM or "
        "run_for (to look at /metrics, say)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the file and resolve every name against the installed plugins, "
        "then exit without starting anything",
    )
    parser.add_argument(
        "--console",
        choices=("auto", "rich", "plain"),
        default="auto",
        help="rich: styled, with a live status line; plain: lines only (default: rich on a "
        "terminal)",
    )
    parser.add_argument(
        "--status-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="plain console: print a status line this often (default: never)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="warning",
        help="log records shown on stderr (default: warning)",
    )


async def _run(args: argparse.Namespace, host: PluginHost) -> int:
    from loom.app._run import run_command

    return await run_command(args, host)


RUN_COMMAND = CliCommand(
    name="run",
    description="Run an app composed from loom.toml; Ctrl-C or SIGTERM stops it cleanly",
    run=_run,
    configure=_configure,
)
