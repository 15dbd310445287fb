"""``loom wasm``: inspect, run, list, build and scaffold WASM plugins.

Exit status: 0 on success, 1 when a plugin does not load or a call fails (the error is
printed, naming the file or the error kind), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loom.host import PluginHost
    from loom_wasm._policy import WasmPolicy

__all__ = ["configure", "run"]

_EPILOG = """\
examples:
  loom wasm inspect examples/wasm/text-tools/text_tools.wasm.toml
  loom wasm inspect build/plugin.wasm                 imports and exports of a bare module
  loom wasm run text_tools.wasm.toml text.upper '{"text": "hi"}'
  loom wasm run reader.wasm.toml fs.read '{}' --allow-dir ./data
  loom wasm list                                      the plugins in $LOOM_WASM_PATH
  loom wasm new my-plugin --lang zig                  a new plugin in wat, c, zig or assemblyscript
  loom wasm build my-plugin                           compile its source to my_plugin.wasm
"""


def _policy_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", metavar="FILE", help="policy TOML (default $LOOM_WASM_POLICY)")
    parser.add_argument(
        "--allow-dir",
        action="append",
        default=[],
        metavar="DIR[:rw]",
        help="allow directory grants under DIR (read only unless :rw); repeatable",
    )
    parser.add_argument(
        "--allow-env", action="append", default=[], metavar="NAME", help="allow a variable"
    )
    parser.add_argument("--no-cache", action="store_true", help="do not cache compiled code")
    parser.add_argument("--json", action="store_true", help="print JSON")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``loom wasm`` subcommands to its parser."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    sub = parser.add_subparsers(dest="wasm_command", metavar="SUBCOMMAND")
    inspect = sub.add_parser("inspect", help="show a plugin's manifest, grants, imports, exports")
    inspect.add_argument("file", help="a *.wasm.toml / *.wasm.json manifest, or a .wasm")
    _policy_args(inspect)
    call = sub.add_parser("run", help="run one capability of a plugin")
    call.add_argument("manifest", help="the plugin's manifest")
    call.add_argument("capability", help="the capability's name")
    call.add_argument("input", nargs="?", help="JSON input (default: read stdin)")
    call.add_argument("--timeout-ms", type=int, default=None, help="a shorter deadline")
    _policy_args(call)
    listing = sub.add_parser("list", help="load the plugins in $LOOM_WASM_PATH (or PATHS)")
    listing.add_argument("paths", nargs="*", help="directories or manifests")
    _policy_args(listing)
    new = sub.add_parser("new", help="scaffold a plugin: source, manifest, README")
    new.add_argument("name", help="the plugin's name (also its directory)")
    new.add_argument("--lang", choices=["wat", "c", "zig", "assemblyscript"], default="wat")
    new.add_argument("--dir", default=".", help="where to create it (default: here)")
    build = sub.add_parser("build", help="compile a plugin's source (WAT, C, Zig, AS)")
    build.add_argument("dir", help="the plugin's directory (holding its manifest)")


def _policy(args: argparse.Namespace) -> WasmPolicy:
    from loom_wasm._capabilities import policy_from_env
    from loom_wasm._policy import DirRule, load_policy

    policy = load_policy(args.policy) if args.policy else policy_from_env()
    dirs = list(policy.dirs)
    for item in args.allow_dir:
        path, _, mode = item.rpartition(":") if item.endswith((":rw", ":ro")) else (item, "", "ro")
        dirs.append(DirRule(path=path, mode="rw" if mode == "rw" else "ro"))
    update: dict[str, Any] = {"dirs": dirs, "env": [*policy.env, *args.allow_env]}
    if args.no_cache:
        update["cache"] = False
    return policy.model_copy(update=update)


def _inspect_bare(path: Path) -> dict[str, Any]:
    import wasmtime

    data = path.read_bytes()
    if data[:4] != b"\0asm":
        raise ValueError(f"{path}: not a WebAssembly binary (no \\0asm header)")
    try:
        return _describe_binary(path, data)
    except wasmtime.WasmtimeError as exc:
        raise ValueError(f"{path}: does not compile: {str(exc).strip().splitlines()[0]}") from exc


def _describe_binary(path: Path, data: bytes) -> dict[str, Any]:
    import wasmtime
    import wasmtime.component

    from loom_wasm._abi import describe_type
    from loom_wasm._engine import engine

    if data[6:8] == b"\x01\x00":
        component = wasmtime.component.Component(engine(), data)
        ctype = component.type
        return {
            "file": str(path),
            "kind": "component",
            "imports": sorted(ctype.imports(engine())),
            "exports": sorted(ctype.exports(engine())),
        }
    module = wasmtime.Module(engine(), data)
    return {
        "file": str(path),
        "kind": "module",
        "imports": [f"{i.module}.{i.name}: {describe_type(i.type)}" for i in module.imports],
        "exports": [f"{e.name}: {describe_type(e.type)}" for e in module.exports],
    }


def _print_description(doc: dict[str, Any]) -> None:
    for key, value in doc.items():
        if isinstance(value, list):
            print(f"{key}:" + ("" if value else " -"))
            for item in value:
                print(f"  {json.dumps(item) if isinstance(item, dict) else item}")
        elif isinstance(value, dict):
            print(f"{key}: {json.dumps(value)}")
        else:
            print(f"{key}: {value}")


def _cmd_inspect(args: argparse.Namespace) -> int:
    from loom_wasm._loader import load_plugin
    from loom_wasm._manifest import MANIFEST_SUFFIXES

    path = Path(args.file)
    if path.name.endswith(MANIFEST_SUFFIXES):
        plugin = load_plugin(path, _policy(args))
        try:
            doc = plugin.describe()
        finally:
            plugin.close()
    else:
        doc = _inspect_bare(path)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        _print_description(doc)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from loom.actions import CapabilityError
    from loom_wasm._loader import load_plugin

    text = args.input if args.input is not None else sys.stdin.read()
    try:
        json.loads(text)
    except ValueError as exc:
        print(f"loom wasm run: the input is not JSON: {exc}", file=sys.stderr)
        return 2
    plugin = load_plugin(args.manifest, _policy(args))
    try:
        output = plugin.call(args.capability, text.encode(), timeout_ms=args.timeout_ms)
    except CapabilityError as exc:
        if args.json:
            document = {"code": exc.code, "message": exc.message, "details": exc.details}
            print(json.dumps({"error": document}))
        else:
            kind = exc.details.get("kind")
            print(f"loom wasm run: {exc.code}{f' ({kind})' if kind else ''}: {exc.message}")
        return 1
    finally:
        plugin.close()
    print(output.decode())
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from loom_wasm._capabilities import configured_paths
    from loom_wasm._loader import load_plugins

    paths = args.paths or configured_paths()
    if not paths:
        print("No plugin paths: give PATHS or set LOOM_WASM_PATH.", file=sys.stderr)
        return 2
    report = load_plugins(paths, _policy(args))
    try:
        if args.json:
            document = {
                "plugins": [p.describe() for p in report.plugins],
                "errors": [{"file": e.path, "error": e.reason} for e in report.errors],
            }
            print(json.dumps(document, indent=2))
        else:
            for plugin in report.plugins:
                caps = ", ".join(f"{s.name} {s.version}" for s in plugin.manifest.capabilities)
                print(f"{plugin.name} {plugin.manifest.version}  ({plugin.manifest_path})")
                print(f"    capabilities: {caps}")
                for refusal in plugin.granted.refused:
                    print(f"    refused: {refusal}")
            for error in report.errors:
                print(f"error: {error}")
    finally:
        for plugin in report.plugins:
            plugin.close()
    return 1 if report.errors else 0


def _cmd_new(args: argparse.Namespace) -> int:
    from loom_wasm._scaffold import scaffold

    folder = scaffold(args.name, args.lang, Path(args.dir))
    print(f"created {folder}; build it with: loom wasm build {folder}")
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from loom_wasm._build import build
    from loom_wasm._manifest import load_manifest

    manifest = build(Path(args.dir))
    _, module = load_manifest(manifest)
    print(f"built {module} ({module.stat().st_size} bytes) for {manifest}")
    return 0


_COMMANDS = {
    "inspect": _cmd_inspect,
    "run": _cmd_run,
    "list": _cmd_list,
    "new": _cmd_new,
    "build": _cmd_build,
}


def run(args: argparse.Namespace, host: PluginHost) -> int:
    """Run ``loom wasm SUBCOMMAND``."""
    from loom_wasm._build import BuildError
    from loom_wasm._errors import WasmLoadError

    command = _COMMANDS.get(args.wasm_command or "")
    if command is None:
        print("loom wasm: give a subcommand: " + ", ".join(_COMMANDS), file=sys.stderr)
        return 2
    try:
        return command(args)
    except (WasmLoadError, BuildError, ValueError, OSError) as exc:
        print(f"loom wasm {args.wasm_command}: error: {exc}", file=sys.stderr)
        return 1
