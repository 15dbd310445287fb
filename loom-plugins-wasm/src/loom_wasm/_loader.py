"""Loading plugins: read and check the manifest and module, compile, probe; find manifests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from loom_wasm._engine import compile_artifact, default_cache_dir
from loom_wasm._errors import WasmLoadError
from loom_wasm._manifest import MANIFEST_SUFFIXES, load_manifest
from loom_wasm._plugin import Runner, WasmPlugin
from loom_wasm._policy import WasmPolicy, resolve_grants

__all__ = ["LoadReport", "find_manifests", "load_plugin", "load_plugins"]

_WASM_MAGIC = b"\0asm"


def _read_module(path: Path, abi: str) -> tuple[bytes | str, str]:
    """The module's bytes (or WAT text) and its SHA-256; checks it is the kind the ABI needs."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WasmLoadError(
            path, f"module not found (built from source? run: loom wasm build {path.parent})"
        ) from None
    except OSError as exc:
        raise WasmLoadError(path, f"cannot read module: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if path.suffix == ".wat":
        try:
            return data.decode("utf-8"), digest
        except UnicodeDecodeError as exc:
            raise WasmLoadError(path, f"WAT text is not UTF-8: {exc}") from exc
    if len(data) < 8 or data[:4] != _WASM_MAGIC:
        raise WasmLoadError(path, "not a WebAssembly binary (no \\0asm header)")
    is_component = data[6:8] == b"\x01\x00"
    if abi == "cap-v1" and is_component:
        raise WasmLoadError(path, "is a component, but the manifest says abi = 'cap-v1'")
    if abi == "component-v1" and not is_component:
        raise WasmLoadError(path, "is a core module, but the manifest says abi = 'component-v1'")
    return data, digest


def load_plugin(manifest_path: str | Path, policy: WasmPolicy | None = None) -> WasmPlugin:
    """Load, check and compile one plugin.

    Args:
        manifest_path: its ``*.wasm.toml`` or ``*.wasm.json``.
        policy: what the app allows; the default allows no directory or variable.

    Raises:
        WasmLoadError: naming the file at fault: a bad manifest, a limit above the policy,
            a missing, truncated or non-wasm module, a forbidden import, a wrong export
            signature, or an instance that fails to start.
    """
    from loom_wasm import _abi

    policy = policy or WasmPolicy()
    path = Path(manifest_path).resolve()
    manifest, module_path = load_manifest(path)
    granted = resolve_grants(manifest, path, policy)
    wasm, digest = _read_module(module_path, manifest.abi)
    kind: Literal["module", "component"] = "module" if manifest.abi == "cap-v1" else "component"
    cache_dir = None
    if policy.cache:
        cache_dir = Path(policy.cache_dir).expanduser() if policy.cache_dir else default_cache_dir()
    import wasmtime

    try:
        artifact, cache = compile_artifact(kind, wasm, cache_dir)
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise WasmLoadError(module_path, f"does not compile as a {kind}: {first}") from exc
    exports = {manifest.export_of(spec) for spec in manifest.capabilities}
    runner: Runner
    try:
        if isinstance(artifact, wasmtime.Module):
            shape = _abi.check_core_module(artifact, exports)
            if shape.min_memory_bytes > granted.limits.memory_bytes:
                raise ValueError(
                    f"its initial memory of {shape.min_memory_bytes} bytes is over the memory cap "
                    f"of {granted.limits.memory_bytes} bytes"
                )
            from loom_wasm._core import CoreRunner

            runner = CoreRunner(artifact, shape, granted, exports)
            imports, described = shape.imports, shape.exports
        else:
            imports, described = _abi.check_component(artifact, exports, clock=granted.clock)
            from loom_wasm._component import ComponentRunner

            runner = ComponentRunner(artifact, granted, exports)
        runner.probe()
    except (ValueError, wasmtime.WasmtimeError) as exc:
        raise WasmLoadError(module_path, str(exc)) from exc
    return WasmPlugin(
        manifest, path, module_path, digest, granted, runner, imports, described, cache
    )


def find_manifests(paths: Iterable[str | Path]) -> list[Path]:
    """Manifests in ``paths``: a manifest file itself, or ``*.wasm.toml``/``*.wasm.json``
    in a directory and its immediate subdirectories. Sorted, without duplicates."""
    found: dict[Path, None] = {}

    def scan(folder: Path) -> Iterator[Path]:
        for suffix in MANIFEST_SUFFIXES:
            yield from folder.glob(f"*{suffix}")

    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_file():
            found[path.resolve()] = None
        elif path.is_dir():
            for candidate in sorted(scan(path)):
                found[candidate.resolve()] = None
            for sub in sorted(p for p in path.iterdir() if p.is_dir()):
                for candidate in sorted(scan(sub)):
                    found[candidate.resolve()] = None
    return list(found)


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_plugins` loaded, and what it could not load (one error per file)."""

    plugins: list[WasmPlugin]
    errors: list[WasmLoadError]


def load_plugins(paths: Iterable[str | Path], policy: WasmPolicy | None = None) -> LoadReport:
    """Load every plugin found in ``paths``; a plugin that fails is reported, the others load.

    A second plugin with a name already loaded is an error naming both manifests.
    """
    plugins: list[WasmPlugin] = []
    errors: list[WasmLoadError] = []
    names: dict[str, Path] = {}
    for manifest in find_manifests(paths):
        try:
            plugin = load_plugin(manifest, policy)
        except WasmLoadError as exc:
            errors.append(exc)
            continue
        if plugin.name in names:
            plugin.close()
            errors.append(
                WasmLoadError(
                    manifest, f"plugin name {plugin.name!r} is already used by {names[plugin.name]}"
                )
            )
            continue
        names[plugin.name] = manifest
        plugins.append(plugin)
    return LoadReport(plugins, errors)
