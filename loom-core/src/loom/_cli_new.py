"""``loom new app NAME`` and ``loom new plugin NAME``: scaffold a working app or plugin.

This module stays light (``loom plugins`` imports it); the templates load in ``run``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from loom.contributions import CliCommand

if TYPE_CHECKING:
    from loom.host import PluginHost

__all__ = ["NEW_COMMAND"]

_NEXT = {
    "app": [
        "cd {target}",
        "loom run              # runs loom.toml; it ends by itself after three ticks",
        "python -m pytest      # its tests",
    ],
    "plugin": [
        "cd {target}",
        "pip install -e '.[test]'",
        "loom plugins          # lists '{name}'",
        "loom {name} Ada       # Hello, Ada!",
        "python -m pytest      # its tests",
    ],
}


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("app", "plugin"), help="what to make")
    parser.add_argument("name", help="its name: letters, digits, '-' or '_'")
    parser.add_argument(
        "--dir", metavar="PATH", help="where to write it (default: a new directory NAME)"
    )
    parser.add_argument(
        "--force", action="store_true", help="write into an existing, non-empty directory"
    )


def _run(args: argparse.Namespace, host: PluginHost) -> int:
    from loom.app._scaffold import ScaffoldError, plan_scaffold, write_scaffold

    try:
        scaffold = plan_scaffold(args.kind, args.name, args.dir)
        written = write_scaffold(scaffold, force=args.force)
    except ScaffoldError as exc:
        print(f"loom new: error: {exc}", file=sys.stderr)
        return 2
    what = "app" if scaffold.kind == "app" else f"plugin package {scaffold.dist}"
    print(f"loom new: {what} {scaffold.name!r} in {scaffold.target}/")
    for path in written:
        print(f"  {path.relative_to(scaffold.target)}")
    print("next:")
    for step in _NEXT[scaffold.kind]:
        print("  " + step.format(target=scaffold.target, name=scaffold.pkg.removeprefix("loom_")))
    return 0


NEW_COMMAND = CliCommand(
    name="new",
    description="Scaffold a working app (loom.toml, agents, a capability, tests) or plugin",
    run=_run,
    configure=_configure,
)
