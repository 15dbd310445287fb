"""The ``loom`` command line. Subcommands come from plugins through ``loom_cli_commands``."""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Awaitable, Sequence

from loom._version import __version__

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loom", description="Loom: a runtime in which AI agents sense, reason and act."
    )
    parser.add_argument("--version", action="version", version=f"loom {__version__}")
    return parser


async def _wait_for(awaitable: Awaitable[int | None]) -> int | None:
    return await awaitable


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``loom`` CLI and return its exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    if args_list[:1] == ["--version"]:  # answer without loading any plugin
        parser.parse_args(args_list)

    from loom.errors import PluginError
    from loom.host import create_host

    try:
        host = create_host()
    except PluginError as exc:  # only in strict mode (LOOM_STRICT_PLUGINS=1)
        print(f"loom: error: {exc}", file=sys.stderr)
        return 1
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = {}
    for command in host.cli_commands():
        sub = subparsers.add_parser(
            command.name, help=command.description, description=command.description
        )
        try:
            command.configure(sub)
        except Exception as exc:
            print(
                f"loom: warning: command {command.name!r} could not be set up: {exc}",
                file=sys.stderr,
            )
            continue
        commands[command.name] = command
    args = parser.parse_args(args_list)
    if args.command != "plugins":
        for failure in host.failures:
            print(f"loom: warning: {failure.describe()}", file=sys.stderr)
    if args.command is None:
        parser.print_help()
        return 2
    command = commands[args.command]
    try:
        result = command.run(args, host)
        if inspect.isawaitable(result):
            import asyncio

            result = asyncio.run(_wait_for(result))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        print(
            f"loom: error: command {command.name!r} failed: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
