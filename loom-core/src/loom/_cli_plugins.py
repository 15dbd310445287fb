"""``loom plugins``: what is installed, what it implements and contributes, what failed."""

from __future__ import annotations

import argparse
import json
from typing import Any

from loom._version import __version__
from loom.contributions import CliCommand
from loom.host import PluginFailure, PluginHost, PluginInfo

__all__ = ["PLUGINS_COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--all", action="store_true", help="include core's built-in plugins")
    parser.add_argument("--hook", metavar="NAME", help="only plugins implementing this hook")
    parser.add_argument("--verbose", "-v", action="store_true", help="show failure tracebacks")


def _failure_json(failure: PluginFailure) -> dict[str, Any]:
    return {
        "plugin": failure.plugin,
        "distribution": failure.distribution,
        "version": failure.version,
        "hook": failure.hook,
        "error": failure.error,
    }


def _info_json(info: PluginInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "distribution": info.distribution,
        "version": info.version,
        "builtin": info.builtin,
        "hooks": list(info.hooks),
        "contributions": info.contributions,
    }


def _run(args: argparse.Namespace, host: PluginHost) -> int:
    infos = sorted(
        (host.info(name) for name in host.plugin_names()), key=lambda i: (not i.builtin, i.name)
    )
    if not args.all:
        infos = [info for info in infos if not info.builtin]
    if args.hook:
        infos = [info for info in infos if args.hook in info.hooks]
    failures = list(host.failures)
    if args.json:
        document = {
            "loom_version": __version__,
            "plugins": [_info_json(info) for info in infos],
            "failures": [_failure_json(f) for f in failures],
        }
        print(json.dumps(document, indent=2))
        return 0
    if not infos:
        print("No plugins installed." if not args.all else "No plugins registered.")
    for info in infos:
        origin = f"{info.distribution} {info.version}" if info.distribution else "not installed"
        print(f"{info.name}  ({origin}){'  [built-in]' if info.builtin else ''}")
        print(f"    hooks: {', '.join(info.hooks) or '-'}")
        for kind, names in sorted(info.contributions.items()):
            print(f"    {kind}: {', '.join(names) or '-'}")
    if failures:
        print(f"\n{len(failures)} plugin failure(s):")
        for failure in failures:
            print(f"  {failure.describe()}")
            if args.verbose:
                print("    " + failure.traceback.replace("\n", "\n    "))
    return 0


PLUGINS_COMMAND = CliCommand(
    name="plugins",
    description="List installed plugins, what they implement and contribute, and failures",
    run=_run,
    configure=_configure,
)
