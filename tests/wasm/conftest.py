"""Fixtures for loom-plugins-wasm: real guest modules built from WAT in each test's tmp dir."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from loom_wasm import WasmPlugin, WasmPolicy, load_plugin

GUESTS = Path(__file__).parent / "guests"
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "wasm"


def build_wat(source: Path, target: Path) -> Path:
    """Compile WAT text (a core module or a component) to a binary with wasmtime."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(wasmtime.wat2wasm(source.read_text()))
    return target


def write_manifest(folder: Path, stem: str, manifest: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.wasm.json"
    path.write_text(json.dumps(manifest))
    return path


def guest_manifest(
    name: str,
    capabilities: dict[str, str],
    *,
    abi: str = "cap-v1",
    limits: dict[str, Any] | None = None,
    grants: dict[str, Any] | None = None,
    reuse: bool = False,
) -> dict[str, Any]:
    """A manifest for a test guest: ``capabilities`` maps each capability to its export."""
    manifest: dict[str, Any] = {
        "name": name,
        "version": "0.1.0",
        "abi": abi,
        "reuse_instance": reuse,
        "limits": {"fuel": 50_000_000, "memory_pages": 32, "timeout_ms": 2000, **(limits or {})},
        "capabilities": [
            {"name": cap, "export": export, "input_schema": {}}
            for cap, export in capabilities.items()
        ],
    }
    if grants:
        manifest["grants"] = grants
    return manifest


@pytest.fixture
def policy(tmp_path: Path) -> WasmPolicy:
    """The default policy, with the compile cache in this test's tmp dir."""
    return WasmPolicy(cache_dir=str(tmp_path / "cache"))


MakePlugin = Callable[..., WasmPlugin]


@pytest.fixture
def make_plugin(tmp_path: Path, policy: WasmPolicy) -> Iterator[MakePlugin]:
    """``make_plugin(guest, capabilities, policy=None, folder=None, **manifest_options)``:
    build ``guests/<guest>.wat``, write its manifest, load it; closed after the test."""
    loaded: list[WasmPlugin] = []

    def make(
        guest: str,
        capabilities: dict[str, str],
        *,
        policy_override: WasmPolicy | None = None,
        folder: Path | None = None,
        **options: Any,
    ) -> WasmPlugin:
        where = folder or tmp_path / f"plugin-{len(loaded)}"
        build_wat(GUESTS / f"{guest}.wat", where / f"{guest}.wasm")
        manifest = guest_manifest(f"{guest}-{len(loaded)}", capabilities, **options)
        plugin = load_plugin(write_manifest(where, guest, manifest), policy_override or policy)
        loaded.append(plugin)
        return plugin

    try:
        yield make
    finally:
        for plugin in loaded:
            plugin.close()


@pytest.fixture
def text_tools(tmp_path: Path, policy: WasmPolicy) -> Iterator[WasmPlugin]:
    """The text-tools example, built from its WAT: the good plugin every attack test re-checks."""
    folder = tmp_path / "text-tools"
    build_wat(EXAMPLES / "text-tools" / "text_tools.wat", folder / "text_tools.wasm")
    manifest = folder / "text_tools.wasm.toml"
    manifest.write_text((EXAMPLES / "text-tools" / "text_tools.wasm.toml").read_text())
    plugin = load_plugin(manifest, policy)
    try:
        yield plugin
    finally:
        plugin.close()


@pytest.fixture
def still_works(text_tools: WasmPlugin) -> Callable[[], None]:
    """Checks that a good plugin answers correctly: the host went on after an attack."""

    def check() -> None:
        out = text_tools.call("text.upper", b'{"text": "still here"}')
        assert json.loads(out) == {"text": "STILL HERE"}

    return check


@pytest.fixture
def build_guest() -> Callable[..., Path]:
    """``build_guest(guest, folder, manifest_dict, stem=guest) -> manifest path``."""

    def build(guest: str, folder: Path, manifest: dict[str, Any], stem: str | None = None) -> Path:
        stem = stem or guest
        build_wat(GUESTS / f"{guest}.wat", folder / f"{stem}.wasm")
        return write_manifest(folder, stem, manifest)

    return build


@pytest.fixture
def manifest_for() -> Callable[..., dict[str, Any]]:
    """:func:`guest_manifest` as a fixture."""
    return guest_manifest
