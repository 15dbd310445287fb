"""Sandboxed WebAssembly capabilities for Loom.

A plugin is a ``.wasm`` (a core module speaking the "cap v1" ABI, or a component exporting
``func(input: string) -> string``) with a manifest naming its capabilities, limits and the
grants it asks for. :func:`load_plugin` checks and compiles it under a :class:`WasmPolicy`;
:class:`WasmProvider` runs each capability for the ActionBroker. See ``docs/wasm.md``.

Names load on first use, so ``import loom_wasm`` pulls in neither wasmtime nor pydantic.

Example:
    .. code-block:: python

        from loom_wasm import load_plugin

        plugin = load_plugin("examples/wasm/text-tools/text_tools.wasm.toml")
        plugin.call("text.upper", b'{"text": "hi"}')  # b'{"text": "HI"}'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loom_wasm._capabilities import wasm_capabilities
    from loom_wasm._errors import ErrorKind, WasmLoadError
    from loom_wasm._loader import LoadReport, find_manifests, load_plugin, load_plugins
    from loom_wasm._manifest import CapabilitySpec, DirGrant, Grants, Limits, PluginManifest
    from loom_wasm._plugin import WasmPlugin
    from loom_wasm._policy import DirRule, Granted, GrantedDir, WasmPolicy, load_policy
    from loom_wasm._provider import WasmProvider

__all__ = [
    "CapabilitySpec",
    "DirGrant",
    "DirRule",
    "ErrorKind",
    "Granted",
    "GrantedDir",
    "Grants",
    "Limits",
    "LoadReport",
    "PluginManifest",
    "WasmLoadError",
    "WasmPlugin",
    "WasmPolicy",
    "WasmProvider",
    "find_manifests",
    "load_plugin",
    "load_plugins",
    "load_policy",
    "wasm_capabilities",
]

_WHERE = {
    "wasm_capabilities": "_capabilities",
    "ErrorKind": "_errors",
    "WasmLoadError": "_errors",
    "CapabilitySpec": "_manifest",
    "DirGrant": "_manifest",
    "Grants": "_manifest",
    "Limits": "_manifest",
    "PluginManifest": "_manifest",
    "LoadReport": "_loader",
    "WasmPlugin": "_loader",
    "find_manifests": "_loader",
    "load_plugin": "_loader",
    "load_plugins": "_loader",
    "DirRule": "_policy",
    "Granted": "_policy",
    "GrantedDir": "_policy",
    "WasmPolicy": "_policy",
    "load_policy": "_policy",
    "WasmProvider": "_provider",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'loom_wasm' has no attribute {name!r}")
    return getattr(importlib.import_module(f"loom_wasm.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
