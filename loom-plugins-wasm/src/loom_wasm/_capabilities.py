"""WASM plugins as ``loom_capabilities`` records, loaded on first call.

The hook is called by ``loom plugins`` as well as when an app composes its broker, so it
reads manifests only (no compiling); each plugin loads, once, on the first call to any of
its capabilities. A package that ships ``.wasm`` files contributes them from its own
``loom_capabilities`` hook with :func:`wasm_capabilities`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Iterable
from pathlib import Path

from loom._action import ActionCall, ProviderKind
from loom.actions import CapabilityError, CapabilityFunction, ErrorCode
from loom.contributions import Capability
from loom_wasm._errors import WasmLoadError
from loom_wasm._loader import find_manifests, load_plugin
from loom_wasm._manifest import CapabilitySpec, PluginManifest, load_manifest
from loom_wasm._plugin import WasmPlugin
from loom_wasm._policy import WasmPolicy, load_policy

__all__ = [
    "LazyPlugin",
    "WasmFunction",
    "configured_paths",
    "policy_from_env",
    "wasm_capabilities",
]

log = logging.getLogger("loom_wasm")

#: Directories (or manifests) to load plugins from, separated by ``os.pathsep``.
PATH_VARIABLE = "LOOM_WASM_PATH"
#: A TOML file holding the :class:`WasmPolicy` (top level or a ``[wasm]`` table).
POLICY_VARIABLE = "LOOM_WASM_POLICY"


def configured_paths() -> list[str]:
    """The entries of ``$LOOM_WASM_PATH``."""
    return [p for p in os.environ.get(PATH_VARIABLE, "").split(os.pathsep) if p.strip()]


def policy_from_env() -> WasmPolicy:
    """The policy in ``$LOOM_WASM_POLICY``, or the default one.

    Raises:
        WasmLoadError: the file is unreadable or invalid.
    """
    path = os.environ.get(POLICY_VARIABLE)
    return load_policy(path) if path else WasmPolicy()


class LazyPlugin:
    """A plugin loaded on first use (in a worker thread: compiling takes milliseconds)."""

    def __init__(self, manifest_path: Path, policy: WasmPolicy | None) -> None:
        self.manifest_path = manifest_path
        self.policy = policy
        self._plugin: WasmPlugin | None = None
        self._error: WasmLoadError | None = None
        self._lock = threading.Lock()

    def get(self) -> WasmPlugin:
        """The loaded plugin; loads it the first time.

        Raises:
            CapabilityError: ``PROVIDER_UNAVAILABLE`` naming the file, when it does not load
                (remembered: the load is not retried).
        """
        with self._lock:
            if self._plugin is None and self._error is None:
                try:
                    self._plugin = load_plugin(self.manifest_path, self.policy)
                except WasmLoadError as exc:
                    log.warning("loom-wasm: %s", exc)
                    self._error = exc
            if self._error is not None:
                raise CapabilityError(
                    ErrorCode.PROVIDER_UNAVAILABLE,
                    f"wasm plugin did not load: {self._error}",
                    details={"manifest": str(self.manifest_path)},
                )
            assert self._plugin is not None
            return self._plugin

    async def aget(self) -> WasmPlugin:
        """:meth:`get`, off the event loop the first time."""
        plugin = self._plugin
        if plugin is not None:
            return plugin
        return await asyncio.to_thread(self.get)

    def handler(self, spec: CapabilitySpec) -> WasmFunction:
        """The ``Capability.handler`` for one capability of this plugin."""
        return WasmFunction(self, spec)

    def close(self) -> None:
        """Close the plugin if it was loaded."""
        with self._lock:
            if self._plugin is not None:
                self._plugin.close()


class WasmFunction(CapabilityFunction[[ActionCall], Awaitable[bytes]]):
    """One WASM capability as a ``Capability.handler``.

    The broker wraps a handler in a :class:`~loom.actions.NativeProvider`, which runs it
    through :meth:`run`. This one hands the payload to the plugin as it is (any JSON, not
    only objects); the broker has validated it against the manifest's input schema, which
    differs from the signature's and so is checked first.
    """

    def __init__(self, lazy: LazyPlugin, spec: CapabilitySpec) -> None:
        async def run_wasm(call: ActionCall) -> bytes:
            return await self.run(call)

        run_wasm.__qualname__ = run_wasm.__name__ = f"wasm:{spec.name}"
        super().__init__(
            run_wasm, name=spec.name, version=spec.version, description=spec.description
        )
        self.lazy = lazy
        self.spec = spec

    async def run(self, call: ActionCall) -> bytes:
        """Load the plugin if needed, and run the call in it."""
        plugin = await self.lazy.aget()
        return await plugin.invoke(
            self.spec.name, call.payload, timeout_ms=call.timeout_ms, version=self.spec.version
        )


def _record(
    lazy: LazyPlugin, manifest: PluginManifest, spec: CapabilitySpec, module: Path
) -> Capability:
    metadata = {
        "wasm.plugin": manifest.name,
        "wasm.plugin_version": manifest.version,
        "wasm.abi": manifest.abi,
        "wasm.export": manifest.export_of(spec),
        "wasm.manifest": str(lazy.manifest_path),
        "wasm.module": str(module),
    }
    return Capability(
        name=spec.name,
        description=spec.description,
        handler=lazy.handler(spec),
        version=spec.version,
        provider=ProviderKind.WASM,
        input_schema=spec.input_schema,
        output_schema=spec.output_schema,
        metadata=metadata,
    )


def wasm_capabilities(
    paths: Iterable[str | Path], policy: WasmPolicy | None = None
) -> list[Capability]:
    """``loom_capabilities`` records for every plugin found in ``paths``.

    Manifests are read now; a bad one is logged (naming the file) and skipped, the others
    are returned. Modules load on the first call, and a module that fails to load answers
    its calls ``PROVIDER_UNAVAILABLE`` naming the file.

    Args:
        paths: directories (scanned with their immediate subdirectories) or manifest files.
        policy: what the plugins may be granted; the default allows no directory or
            variable.

    Example:
        .. code-block:: python

            # in a package that ships my_pkg/wasm/*.wasm and their manifests
            @hookimpl
            def loom_capabilities():
                from loom_wasm import wasm_capabilities

                return wasm_capabilities([Path(__file__).parent / "wasm"])
    """
    records: list[Capability] = []
    for manifest_path in find_manifests(paths):
        try:
            manifest, module = load_manifest(manifest_path)
        except WasmLoadError as exc:
            log.warning("loom-wasm: skipping plugin: %s", exc)
            continue
        lazy = LazyPlugin(manifest_path, policy)
        records.extend(_record(lazy, manifest, spec, module) for spec in manifest.capabilities)
    return records
