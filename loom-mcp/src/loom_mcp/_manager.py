"""Many MCP servers at once: their tools registered as broker capabilities, their events on
the bus, their resources and prompts one call away."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Iterable, Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Protocol

import mcp_types

from loom._event import Event
from loom_mcp._config import McpServerConfig
from loom_mcp._errors import UnknownServerError
from loom_mcp._provider import McpToolProvider
from loom_mcp._session import McpServerSession, SamplingHandler, ServerStatus

if TYPE_CHECKING:
    from loom._action import ActionCall, CapabilityDescriptor
    from loom.actions._provider import Provider

__all__ = ["CapabilityRegistry", "EventPublisher", "McpSessionManager"]

log = logging.getLogger("loom.mcp")

_EVENT_BUFFER = 256
_DRAIN_S = 1.0


class CapabilityRegistry(Protocol):
    """Where providers are registered: the :class:`~loom.actions.ActionBroker`.

    ``register`` replaces a provider of the same name and version; either method may
    return an awaitable, which is awaited.
    """

    def register(self, provider: Provider) -> object:
        """Make the provider's capability callable."""

    def unregister(self, name: str, version: str) -> object:
        """Remove a capability."""


class EventPublisher(Protocol):
    """Where server events go: the event bus (``publish(topic, event)``)."""

    async def publish(self, topic: str, event: Event) -> int:
        """Publish one event."""


class McpSessionManager:
    """Connects to MCP servers and keeps their tools registered as capabilities.

    Each server runs under its own supervisor (:class:`McpServerSession`): one server
    failing, flooding or hanging does not touch the others. A server's tools become
    capabilities ``{server}:{tool}`` on connect, follow its ``tools/list_changed``
    notifications (tools it drops are unregistered), and stay registered while it
    reconnects, answering PROVIDER_UNAVAILABLE meanwhile.

    Server events go to the bus, when one is given, as events of type ``mcp.{kind}`` on
    topic ``mcp.{server}.{kind}`` with a JSON payload: ``status`` (``state``, ``error``),
    ``progress`` (``call_id``, ``capability``, ``progress``, ``total``, ``message``),
    ``resource_updated`` (``uri``), ``resources_changed``, ``prompts_changed`` and ``log``.
    They pass through one bounded buffer; when it is full the oldest is dropped and counted
    (:attr:`dropped_events`).

    Args:
        broker: where the providers are registered; None keeps them here only
            (:meth:`providers`).
        bus: where server events are published; None drops them.
        sampling: answers sampling requests of servers configured with
            ``allow_sampling``; without it those requests are refused.
        event_buffer: size of the event buffer.

    Example:
        .. code-block:: python

            async with McpSessionManager(broker) as mcp:
                await mcp.add_server({"name": "time", "command": "mcp-server-time"})
                result = await broker.invoke(
                    ActionCall("time:get_current_time", b'{"timezone": "Etc/UTC"}')
                )
    """

    def __init__(
        self,
        broker: CapabilityRegistry | None = None,
        *,
        bus: EventPublisher | None = None,
        sampling: SamplingHandler | None = None,
        event_buffer: int = _EVENT_BUFFER,
    ) -> None:
        self.broker = broker
        self.bus = bus
        self.sampling = sampling
        #: Server events dropped because the buffer was full.
        self.dropped_events = 0
        self._sessions: dict[str, McpServerSession] = {}
        self._providers: dict[str, dict[str, McpToolProvider]] = {}
        self._connects: dict[str, int] = {}
        self._events: asyncio.Queue[tuple[str, Event]] | None = None
        self._event_buffer = event_buffer
        self._forwarder: asyncio.Task[None] | None = None
        self._sync_lock = asyncio.Lock()
        self._closed = False

    async def __aenter__(self) -> McpSessionManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- servers --------------------------------------------------------------------------

    async def add_server(
        self, config: McpServerConfig | Mapping[str, Any], *, wait: bool = True
    ) -> McpServerSession:
        """Connect to a server and register its tools.

        Args:
            config: the server's configuration (a mapping is validated).
            wait: wait for the first connection and raise if it fails (the server is then
                not kept); without it, a failed first attempt is retried with backoff.

        Raises:
            McpConfigError: the configuration is invalid.
            McpConnectError: with ``wait``, the server could not be reached.
            ValueError: a server of that name is already added.
        """
        if self._closed:
            raise RuntimeError("the MCP session manager is closed")
        if not isinstance(config, McpServerConfig):
            from loom_mcp._config import parse_server_configs

            [config] = parse_server_configs([config])
        if config.name in self._sessions:
            raise ValueError(f"MCP server {config.name!r} is already added")
        session = McpServerSession(
            config,
            on_tools=self._sync_tools,
            on_event=self._on_event,
            sampling=self.sampling,
        )
        self._sessions[config.name] = session
        try:
            await session.start(wait=wait)
        except BaseException:
            self._sessions.pop(config.name, None)
            await self._drop_providers(config.name)
            raise
        return session

    async def add_servers(
        self, configs: Iterable[McpServerConfig | Mapping[str, Any]], *, wait: bool = True
    ) -> dict[str, BaseException | None]:
        """Add several servers at once; one failing does not stop the others.

        Returns:
            Each server's name with None, or the error that kept it out.
        """
        configs = list(configs)
        results = await asyncio.gather(
            *(self.add_server(c, wait=wait) for c in configs), return_exceptions=True
        )
        outcome: dict[str, BaseException | None] = {}
        for config, result in zip(configs, results, strict=True):
            name = config.name if isinstance(config, McpServerConfig) else str(config.get("name"))
            if isinstance(result, asyncio.CancelledError):
                raise result
            outcome[name] = result if isinstance(result, BaseException) else None
        return outcome

    async def remove_server(self, name: str) -> None:
        """Stop a server (ending its process) and unregister its capabilities.

        Removing a server that is not there does nothing.
        """
        session = self._sessions.pop(name, None)
        if session is None:
            return
        await self._drop_providers(name)
        await session.stop()

    def session(self, name: str) -> McpServerSession:
        """The session of the named server.

        Raises:
            UnknownServerError: no server has that name.
        """
        try:
            return self._sessions[name]
        except KeyError:
            raise UnknownServerError(name) from None

    def servers(self) -> list[ServerStatus]:
        """A snapshot of every server, by name."""
        return [self._sessions[name].status() for name in sorted(self._sessions)]

    def providers(self, server: str | None = None) -> list[McpToolProvider]:
        """The providers registered for one server's tools, or for every server's."""
        names = [server] if server is not None else sorted(self._providers)
        found: list[McpToolProvider] = []
        for name in names:
            tools = self._providers.get(name, {})
            found.extend(tools[tool] for tool in sorted(tools))
        return found

    def capabilities(self, server: str | None = None) -> list[CapabilityDescriptor]:
        """The descriptors of the registered capabilities."""
        return [provider.descriptor for provider in self.providers(server)]

    async def aclose(self) -> None:
        """Stop every server and unregister its capabilities; idempotent."""
        if self._closed:
            return
        self._closed = True
        names = list(self._sessions)
        await asyncio.gather(*(self.remove_server(name) for name in names))
        await self._stop_forwarder()

    # -- resources and prompts ------------------------------------------------------------

    async def list_resources(self, server: str) -> list[mcp_types.Resource]:
        """Every resource the server lists."""
        return await self.session(server).list_resources()

    async def list_resource_templates(self, server: str) -> list[mcp_types.ResourceTemplate]:
        """Every resource template the server lists."""
        return await self.session(server).list_resource_templates()

    async def read_resource(
        self, server: str, uri: str
    ) -> list[mcp_types.TextResourceContents | mcp_types.BlobResourceContents]:
        """The contents of one resource of the server."""
        return await self.session(server).read_resource(uri)

    async def subscribe(self, server: str, uri: str) -> None:
        """Publish ``mcp.{server}.resource_updated`` events when the resource changes."""
        await self.session(server).subscribe(uri)

    async def unsubscribe(self, server: str, uri: str) -> None:
        """Stop the updates about one resource."""
        await self.session(server).unsubscribe(uri)

    async def list_prompts(self, server: str) -> list[mcp_types.Prompt]:
        """Every prompt the server lists."""
        return await self.session(server).list_prompts()

    async def get_prompt(
        self, server: str, name: str, arguments: Mapping[str, str] | None = None
    ) -> mcp_types.GetPromptResult:
        """One prompt of the server, rendered with ``arguments``."""
        return await self.session(server).get_prompt(name, arguments)

    # -- keeping the broker in step -------------------------------------------------------

    async def _sync_tools(
        self, session: McpServerSession, tools: dict[str, mcp_types.Tool]
    ) -> None:
        async with self._sync_lock:
            if self._sessions.get(session.name) is not session:
                return  # removed while it was listing
            current = self._providers.setdefault(session.name, {})
            # A new connection registers every tool afresh: the broker then replaces each
            # entry, so the circuit opened by the calls that failed while the server was
            # down starts closed again (and no call meets NOT_FOUND in between).
            fresh = self._connects.get(session.name) != session.connects
            self._connects[session.name] = session.connects
            for name in sorted(set(current) - set(tools)):
                await self._unregister(current.pop(name))
            for name, tool in sorted(tools.items()):
                old = current.get(name)
                if old is not None and not fresh and _same_tool(old.tool, tool):
                    continue
                provider = McpToolProvider(
                    session,
                    tool,
                    version=session.config.capability_version,
                    on_progress=self._on_progress if self.bus is not None else None,
                )
                try:
                    if self.broker is not None:
                        await _maybe(self.broker.register(provider))
                except Exception as exc:  # noqa: BLE001  # one bad tool must not keep out the rest
                    log.error(
                        "MCP server %r: cannot register capability %r: %s",
                        session.name,
                        provider.descriptor.name,
                        exc,
                    )
                    continue
                current[name] = provider

    async def _drop_providers(self, server: str) -> None:
        async with self._sync_lock:
            self._connects.pop(server, None)
            for provider in self._providers.pop(server, {}).values():
                await self._unregister(provider)

    async def _unregister(self, provider: McpToolProvider) -> None:
        if self.broker is None:
            return
        descriptor = provider.descriptor
        try:
            await _maybe(self.broker.unregister(descriptor.name, descriptor.version))
        except Exception as exc:  # noqa: BLE001  # removal goes on for the other tools
            log.warning("cannot unregister capability %r: %s", descriptor.name, exc)

    # -- events ---------------------------------------------------------------------------

    def _on_progress(
        self,
        provider: McpToolProvider,
        call: ActionCall,
        progress: float,
        total: float | None,
        message: str | None,
    ) -> None:
        data = {
            "call_id": call.id,
            "capability": provider.descriptor.name,
            "progress": progress,
            "total": total,
            "message": message,
        }
        self._on_event(provider.session.name, "progress", data)

    def _on_event(self, server: str, kind: str, data: dict[str, Any]) -> None:
        if self.bus is None or (self._closed and kind != "status"):
            return
        if self._events is None:
            self._events = asyncio.Queue(self._event_buffer)
            self._forwarder = asyncio.get_running_loop().create_task(
                self._forward(self._events), name="loom-mcp:events"
            )
        payload = json.dumps(data, default=str, separators=(",", ":")).encode()
        event = Event(f"mcp.{kind}", payload, source=f"mcp:{server}", metadata={"server": server})
        topic = f"mcp.{server}.{kind}"
        if self._events.full():
            self._events.get_nowait()
            self._events.task_done()
            self.dropped_events += 1
        self._events.put_nowait((topic, event))

    async def _forward(self, queue: asyncio.Queue[tuple[str, Event]]) -> None:
        assert self.bus is not None
        while True:
            topic, event = await queue.get()
            try:
                await self.bus.publish(topic, event)
            except Exception as exc:  # noqa: BLE001  # a bus failure must not end forwarding
                log.warning("cannot publish MCP event on %r: %s", topic, exc)
            finally:
                queue.task_done()

    async def _stop_forwarder(self) -> None:
        forwarder, queue = self._forwarder, self._events
        if forwarder is None or queue is None:
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(queue.join(), _DRAIN_S)
        forwarder.cancel()
        with suppress(asyncio.CancelledError):
            await forwarder


def _same_tool(a: mcp_types.Tool, b: mcp_types.Tool) -> bool:
    keep = {"name", "title", "description", "input_schema", "output_schema", "annotations"}
    return a.model_dump(include=keep) == b.model_dump(include=keep)


async def _maybe(result: object) -> object:
    if inspect.isawaitable(result):
        return await result
    return result
