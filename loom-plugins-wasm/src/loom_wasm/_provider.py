"""``WasmProvider``: one capability of a WASM plugin, as an ActionBroker provider."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from loom._action import ActionCall, CapabilityDescriptor, ProviderKind
from loom.actions import Provider

if TYPE_CHECKING:
    from loom_wasm._manifest import CapabilitySpec
    from loom_wasm._plugin import WasmPlugin

__all__ = ["WasmProvider", "descriptor_metadata"]


def descriptor_metadata(plugin: WasmPlugin, spec: CapabilitySpec) -> dict[str, str]:
    """A capability's descriptor metadata: description, schemas, and where it runs."""
    schema = json.dumps(spec.input_schema, sort_keys=True)
    metadata = {
        "desc": spec.description,
        "description": spec.description,
        "schema": schema,
        "input_schema": schema,
        "wasm.plugin": plugin.name,
        "wasm.plugin_version": plugin.manifest.version,
        "wasm.abi": plugin.manifest.abi,
        "wasm.export": plugin.manifest.export_of(spec),
        "wasm.module": str(plugin.module_path),
        "wasm.sha256": plugin.sha256,
        "wasm.reuse_instance": "true" if plugin.granted.reuse else "false",
        "wasm.timeout_ms": str(plugin.granted.limits.timeout_ms),
    }
    if spec.output_schema is not None:
        metadata["output_schema"] = json.dumps(spec.output_schema, sort_keys=True)
    if plugin.granted.refused:
        metadata["wasm.refused"] = "; ".join(plugin.granted.refused)
    return metadata


class WasmProvider(Provider):
    """Runs one capability of a loaded :class:`~loom_wasm.WasmPlugin` for the ActionBroker.

    Each call runs in a fresh sandbox (or a re-armed reused instance, when the manifest
    declares the plugin stateless and the policy allows it) on a worker thread, or inline
    on the event loop's thread within the policy's ``inline_max_ms`` (see
    :meth:`WasmPlugin.invoke`). Failures
    raise :class:`~loom.actions.CapabilityError`: ``CAPABILITY_ERROR`` with
    ``details["kind"]`` one of fuel, timeout, memory, trap, abi, output or guest;
    ``PROVIDER_UNAVAILABLE`` (retryable) when the plugin is saturated or closed.

    Attributes:
        plugin: the plugin it belongs to.
        spec: the capability in the manifest.
        descriptor: name, version, ``ProviderKind.WASM`` and metadata.
    """

    def __init__(self, plugin: WasmPlugin, spec: CapabilitySpec) -> None:
        self.plugin = plugin
        self.spec = spec
        self.descriptor = CapabilityDescriptor(
            name=spec.name,
            version=spec.version,
            provider=ProviderKind.WASM,
            metadata=descriptor_metadata(plugin, spec),
        )
        # The broker validates payloads against the manifest's input schema, and holds at
        # most as many calls per capability as the plugin runs at once.
        self.validates_input = False
        self.max_concurrency = plugin.granted.limits.max_concurrency
        self._closed = False

    async def invoke(self, call: ActionCall) -> bytes:
        """Run the call; its ``timeout_ms`` (if shorter) tightens the plugin's deadline."""
        return await self.plugin.invoke(
            self.spec.name, call.payload, timeout_ms=call.timeout_ms, version=self.spec.version
        )

    async def close(self) -> None:
        """Let go of the plugin; the last provider closed closes it."""
        if not self._closed:
            self._closed = True
            self.plugin.release()
