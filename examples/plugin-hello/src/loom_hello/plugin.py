"""Hook implementations of the hello plugin (entry point ``hello`` in group ``loom``)."""

from __future__ import annotations

import argparse

from loom import hookimpl
from loom.contributions import Capability, CliCommand
from loom.host import PluginHost
from loom_hello import greet


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", default="world", help="who to greet")


def _run(args: argparse.Namespace, host: PluginHost) -> int:
    print(greet(args.name))
    return 0


@hookimpl
def loom_capabilities() -> list[Capability]:
    return [
        Capability(
            name="hello.greet",
            description="Greet someone by name",
            handler=greet,
            input_schema={
                "type": "object",
                "properties": {"name": {"type": "string"}},
            },
            output_schema={"type": "string"},
        )
    ]


@hookimpl
def loom_cli_commands() -> list[CliCommand]:
    return [
        CliCommand(name="hello", description="Print a greeting", run=_run, configure=_configure)
    ]
