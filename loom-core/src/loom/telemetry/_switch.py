"""The switches the instrumented hot paths read: None, the default, means "do nothing".

The bus, the agent runtime, the broker and the LLM client read one of these module
attributes per call and run no telemetry code at all while it is None. :func:`configure
<loom.telemetry.configure>` sets them (tracing on, or metrics that need samples) and
:meth:`Telemetry.shutdown <loom.telemetry.Telemetry.shutdown>` puts them back. This module
imports nothing, so reading a switch costs one attribute lookup and never loads
OpenTelemetry.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from loom._action import ActionCall, ActionResult, CapabilityDescriptor
    from loom._event import Event
    from loom.actions._provider import Provider
    from loom.agents._context import Context
    from loom.bus._memory import MemoryBus

__all__ = [
    "CapabilityHook",
    "HandleHook",
    "InvokeHook",
    "LLMHook",
    "PublishHook",
    "PublishTrace",
]


class PublishTrace(Protocol):
    """One traced publish, ended by the bus with the number of deliveries."""

    def end(self, delivered: int) -> None:
        """The publish is over: ``delivered`` deliveries were queued."""
        ...


#: Called by ``MemoryBus.publish`` before delivery: starts the publish span and writes the
#: trace context into the event's metadata.
PublishHook = Callable[["MemoryBus", str, "Event"], PublishTrace]

#: Called by the agent runtime instead of ``on_event(ctx, event)``; returns its awaitable.
HandleHook = Callable[
    ["Context", str, "Event", Callable[["Context", "Event"], Awaitable[None]]], Awaitable[None]
]

#: Called by ``ActionBroker.invoke`` with the call and the broker's own (untraced) invoke,
#: to run inside an invoke span.
InvokeHook = Callable[
    ["ActionCall", Callable[["ActionCall"], Coroutine[Any, Any, "ActionResult"]]],
    Coroutine[Any, Any, "ActionResult"],
]


#: Called by the broker instead of ``provider.invoke(call)``: runs it inside a capability
#: span whose trace context the call's headers carry to the provider.
CapabilityHook = Callable[
    ["Provider", "CapabilityDescriptor", "ActionCall"], Coroutine[Any, Any, bytes]
]


class LLMHook(Protocol):
    """What the LLM client and the model router report to."""

    async def complete(self, model: Any, call: Awaitable[Any], *, stream: bool) -> Any:
        """Await ``call`` (the client's answer to one request) inside an LLM span."""
        ...

    def stream(self, model: Any, deltas: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
        """Wrap a stream of answer pieces in an LLM span that ends with the stream."""
        ...

    def headers(self) -> dict[str, str] | None:
        """HTTP headers carrying the current trace context (``traceparent``), or None."""
        ...

    def retry(self, model: Any, error: BaseException, attempt: int, wait_s: float) -> None:
        """Attempt ``attempt`` failed with ``error``; the next one follows in ``wait_s``."""
        ...

    async def route(self, router: Any, request: Any, run: Awaitable[Any]) -> Any:
        """Await ``run`` (one routed request) inside a routing span."""
        ...


publish: PublishHook | None = None
handle: HandleHook | None = None
invoke: InvokeHook | None = None
capability: CapabilityHook | None = None
llm: LLMHook | None = None
