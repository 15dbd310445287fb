"""The ActionBroker a remote agent sees: its own capabilities, and calls through the bridge."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from loom import ActionCall, ActionResult, CapabilityDescriptor
from loom.actions import ActionBroker, CapabilityFunction, NativeProvider, Provider
from loom.telemetry import inject

if TYPE_CHECKING:
    from loom_bridge._link import BridgeLink

__all__ = ["RemoteBroker", "as_provider"]

log = logging.getLogger("loom.bridge.client")


def as_provider(
    capability: Provider | CapabilityFunction[..., Any] | Callable[..., Any],
) -> Provider:
    """A provider for a :func:`~loom.actions.capability` function, a plain function, or a
    provider as it is.

    Raises:
        TypeError: ``capability`` is none of these, or its signature cannot be a schema.
    """
    if isinstance(capability, Provider):
        return capability
    if callable(capability):
        return NativeProvider(capability)
    raise TypeError(
        f"a capability is a Provider, a @capability function or a function, not {capability!r}"
    )


class RemoteBroker(ActionBroker):
    """An :class:`~loom.actions.ActionBroker` for code running in a remote agent.

    Capabilities registered here are the agent's own: the bridge learns them with the
    agent's registration (updated when one comes or goes) and pushes their calls to the
    agent, where this broker runs them with the usual validation, timeouts and error codes
    (:meth:`serve`). :meth:`invoke`, what ``ctx.invoke`` uses, sends every call to the
    bridge's broker (ForwardAction), which knows every capability, these included.

    Args:
        on_capabilities_changed: awaited after a register or unregister (the agent
            re-registers).
        **options: as for :class:`~loom.actions.ActionBroker`.
    """

    def __init__(
        self,
        on_capabilities_changed: Callable[[], Awaitable[None]] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._link: BridgeLink | None = None
        self._on_changed = on_capabilities_changed
        self._syncs: set[asyncio.Future[None]] = set()

    def attach(self, link: BridgeLink) -> None:
        """Send calls through ``link`` from now on."""
        self._link = link

    def register(self, provider: Provider) -> Provider | None:
        """Serve ``provider``'s capability from this agent (see
        :meth:`ActionBroker.register`). A connected agent re-registers in the background;
        ``await broker.sync()`` to know the bridge has it."""
        replaced = super().register(provider)
        link = self._link
        if link is not None and link.connected:
            task = asyncio.ensure_future(self._sync_quietly())
            self._syncs.add(task)
            task.add_done_callback(self._syncs.discard)
        return replaced

    async def _sync_quietly(self) -> None:
        try:
            await self.sync()
        except Exception as exc:  # noqa: BLE001  # the next connection registers again anyway
            log.warning("could not send the new capabilities to the bridge: %s", exc)

    async def unregister(self, name: str, version: str | None = None) -> list[CapabilityDescriptor]:
        """Stop serving a capability, and tell the bridge."""
        removed = await super().unregister(name, version)
        if removed:
            await self.sync()
        return removed

    async def sync(self) -> None:
        """Send the agent's registration now, so the bridge knows the current capabilities."""
        if self._on_changed is not None:
            await self._on_changed()

    async def serve(self, call: ActionCall) -> ActionResult:
        """Run a call the bridge pushed, on this agent's own capabilities."""
        return await super().invoke(call)

    async def invoke(self, call: ActionCall) -> ActionResult:
        """Run ``call`` through the bridge's broker (ForwardAction); never raises for a
        problem with the call (see :meth:`loom_bridge.BridgeLink.forward`)."""
        link = self._link
        if link is None:
            return await super().invoke(call)
        inject(call.headers)  # the host's broker continues this trace (no-op with tracing off)
        return await link.forward(call)
