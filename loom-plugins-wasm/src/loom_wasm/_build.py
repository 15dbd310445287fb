"""``loom wasm build``: compile a plugin's source into the module its manifest names.

The language is recognised from the files beside the manifest ``<stem>.wasm.toml``:

- ``<stem>.wat``: WebAssembly text (a core module or a component), by ``wasmtime.wat2wasm``;
- ``*.c``: C, by zig's clang (``pip install ziglang``) for ``wasm32-wasi`` as a reactor,
  with a 1 MiB stack (without it every module reserves 16 MiB);
- ``<stem>.zig``: Zig, by the same ``ziglang`` package, as a library without an entry point;
- ``assembly/index.ts``: AssemblyScript, by the ``asc`` of the folder's ``node_modules``
  (``npm install`` there first), optimised and without the ``env.abort`` import.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from loom.errors import LoomError

__all__ = ["BuildError", "build", "toolchain"]

ZIG_FLAGS = (
    "--target=wasm32-wasi",
    "-O2",
    "-s",
    "-mexec-model=reactor",
    "-Wl,-z,stack-size=1048576",
)
ZIG_EXE_FLAGS = (
    "-target",
    "wasm32-wasi",
    "-fno-entry",
    "-rdynamic",
    "-O",
    "ReleaseSmall",
    "--stack",
    "1048576",
)
ASC_FLAGS = ("-O3", "--use", "abort=")


class BuildError(LoomError, RuntimeError):
    """A plugin's source could not be built (no source, a missing toolchain, a compile error)."""


def _manifest_in(folder: Path) -> Path:
    from loom_wasm._manifest import MANIFEST_SUFFIXES

    found = sorted(p for s in MANIFEST_SUFFIXES for p in folder.glob(f"*{s}"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise BuildError(f"{folder}: expected one *.wasm.toml or *.wasm.json, found {names}")
    return found[0]


def toolchain(folder: Path) -> str:
    """The language of the plugin in ``folder``: ``wat``, ``c``, ``zig`` or ``assemblyscript``.

    Raises:
        BuildError: no source is recognised.
    """
    from loom_wasm._manifest import load_manifest

    _, module = load_manifest(_manifest_in(folder))
    if (folder / f"{module.stem}.wat").is_file():
        return "wat"
    if sorted(folder.glob("*.c")):
        return "c"
    if (folder / f"{module.stem}.zig").is_file():
        return "zig"
    if (folder / "assembly" / "index.ts").is_file():
        return "assemblyscript"
    raise BuildError(f"{folder}: no source found ({module.stem}.wat, *.c, or assembly/index.ts)")


def _run(command: list[str], cwd: Path) -> None:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"{command[0]}: {exc}") from exc
    if done.returncode != 0:
        raise BuildError(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr or done.stdout}"
        )


def build(folder: Path, out_dir: Path | None = None) -> Path:
    """Build the plugin in ``folder``.

    Args:
        folder: holds the manifest and the source.
        out_dir: where to put the module and a copy of the manifest; None writes the
            module where the manifest says, in ``folder``.

    Returns:
        The manifest to load: the original, or its copy in ``out_dir``.

    Raises:
        BuildError: what went wrong, with the compiler's output.
    """
    from loom_wasm._manifest import load_manifest

    folder = folder.resolve()
    manifest_path = _manifest_in(folder)
    _, module = load_manifest(manifest_path)
    target = module
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir.resolve() / module.name
        manifest_path = Path(shutil.copy2(manifest_path, out_dir / manifest_path.name))
    language = toolchain(folder)
    if language == "wat":
        import wasmtime

        source = folder / f"{module.stem}.wat"
        try:
            target.write_bytes(wasmtime.wat2wasm(source.read_text(encoding="utf-8")))
        except wasmtime.WasmtimeError as exc:
            raise BuildError(f"{source}: {exc}") from exc
    elif language in ("c", "zig"):
        if importlib.util.find_spec("ziglang") is None:
            raise BuildError(f"building {language.title()} needs zig: pip install ziglang")
        zig = [sys.executable, "-m", "ziglang"]
        if language == "c":
            sources = [str(p) for p in sorted(folder.glob("*.c"))]
            _run([*zig, "cc", *ZIG_FLAGS, *sources, "-o", str(target)], folder)
        else:
            zig_source = str(folder / f"{module.stem}.zig")
            _run([*zig, "build-exe", *ZIG_EXE_FLAGS, zig_source, f"-femit-bin={target}"], folder)
    else:
        asc = folder / "node_modules" / ".bin" / "asc"
        if not asc.exists():
            raise BuildError(f"building AssemblyScript needs asc: run `npm install` in {folder}")
        _run([str(asc), "assembly/index.ts", *ASC_FLAGS, "-o", str(target)], folder)
    return manifest_path
