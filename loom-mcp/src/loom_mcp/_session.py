"""One MCP server, supervised: connect, list its tools, watch, reconnect with backoff.

Each server gets one long-lived task, the runner, which enters and exits the SDK client
and its transport: anyio task groups and cancel scopes must be entered and left by the
same task, so no other task ever does. Calls come from any task and go through the client
the runner currently holds; while there is none they fail at once with
:class:`~loom_mcp.McpUnavailableError`. The requests live in
:mod:`loom_mcp._session_requests`, the tool listing and change watching in
:mod:`loom_mcp._session_catalog`, the handlers of what the server sends in
:mod:`loom_mcp._session_inbound`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from contextlib import AsyncExitStack, suppress
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import mcp_types
from mcp import Client
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from loom._version import __version__ as loom_version
from loom_mcp._errors import McpConnectError
from loom_mcp._session_catalog import SessionCatalog
from loom_mcp._session_inbound import SessionInbound, root
from loom_mcp._session_requests import SessionRequests
from loom_mcp._session_types import (
    EventSink,
    SamplingHandler,
    SamplingRefusedError,
    ServerState,
    ServerStatus,
    ToolsListener,
    describe_error,
)
from loom_mcp._transports import Connection, open_connection

if TYPE_CHECKING:
    from loom_mcp._config import McpServerConfig

__all__ = [
    "EventSink",
    "McpServerSession",
    "SamplingHandler",
    "SamplingRefusedError",
    "ServerState",
    "ServerStatus",
    "ToolsListener",
]

log = logging.getLogger("loom.mcp")

_STOP_TIMEOUT_S = 15.0


class McpServerSession(SessionRequests, SessionCatalog, SessionInbound):
    """A supervised connection to one MCP server.

    Use it through :class:`~loom_mcp.McpSessionManager`, which turns the server's tools into
    broker capabilities; use it directly for resources and prompts.

    Args:
        config: the server's configuration.
        on_tools: awaited with the current tools after each listing.
        on_event: receives events: ``status`` (``state``, ``error``), ``progress``,
            ``resource_updated`` (``uri``), ``resources_changed``, ``prompts_changed``,
            ``log`` (``level``, ``logger``, ``data``).
        sampling: answers sampling requests when ``config.allow_sampling`` is set.
    """

    def __init__(
        self,
        config: McpServerConfig,
        *,
        on_tools: ToolsListener | None = None,
        on_event: EventSink | None = None,
        sampling: SamplingHandler | None = None,
    ) -> None:
        self.config = config
        self.state = ServerState.STOPPED
        self.tools: dict[str, mcp_types.Tool] = {}
        self.connects = 0
        self.last_error: str | None = None
        self._on_tools = on_tools
        self._on_event = on_event
        self._sampling = sampling if config.allow_sampling else None
        if config.allow_sampling and sampling is None:
            log.warning(
                "MCP server %r has allow_sampling = true, but nothing here answers sampling "
                "(run it in an app, whose model router does): its requests are refused",
                config.name,
            )
        self._client: Client | None = None
        self._connection: Connection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._tools_changed = asyncio.Event()
        self._listen_changed = asyncio.Event()
        self._first_outcome: asyncio.Future[BaseException | None] | None = None
        self._subscriptions: set[str] = set()
        self._garbage = 0
        self._protocol: str | None = None
        self._server_info: str | None = None
        self._roots = [root(entry) for entry in config.roots]
        self._server_log = logging.getLogger(f"loom.mcp.server.{config.name}")

    @property
    def connected(self) -> bool:
        """Whether the server can take calls now."""
        return self._client is not None

    @property
    def protocol_version(self) -> str | None:
        """The protocol version of the current connection."""
        return self._protocol

    @property
    def pid(self) -> int | None:
        """The stdio child's pid while connected."""
        connection = self._connection
        if connection is None or connection.stdio is None or self._client is None:
            return None
        return connection.stdio.pid

    def status(self) -> ServerStatus:
        """A snapshot of this server's state."""
        connection = self._connection
        garbage = self._garbage
        if connection is not None and connection.stdio is not None:
            garbage += connection.stdio.garbage_lines + connection.stdio.oversized_lines
        return ServerStatus(
            name=self.name,
            state=self.state,
            endpoint=self.config.describe(),
            transport=self.config.kind,
            protocol_version=self._protocol,
            server_info=self._server_info,
            pid=self.pid,
            tools=tuple(sorted(self.tools)),
            connects=self.connects,
            last_error=self.last_error,
            garbage_lines=garbage,
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, *, wait: bool = True) -> None:
        """Start supervising the server.

        Args:
            wait: wait for the first connection; if it fails, stop and raise. Without it,
                a failed first attempt is retried with backoff like a dropped connection.

        Raises:
            McpConnectError: with ``wait``, the server could not be started or reached,
                or did not answer the handshake within ``connect_timeout_s``.
        """
        if self._runner is not None:
            raise RuntimeError(f"MCP server {self.name!r} is already started")
        self._stop.clear()
        self.state = ServerState.STARTING
        loop = asyncio.get_running_loop()
        self._first_outcome = loop.create_future() if wait else None
        self._runner = loop.create_task(self._run(), name=f"loom-mcp:{self.name}")
        if self._first_outcome is None:
            return
        try:
            error = await asyncio.shield(self._first_outcome)
        except asyncio.CancelledError:
            await self.stop()  # the caller gave up: leave no runner behind
            raise
        if error is not None:
            await self.stop()
            if isinstance(error, McpConnectError):
                raise error
            raise McpConnectError(self.name, describe_error(error)) from error

    async def stop(self) -> None:
        """Close the connection (ending the child process) and stop supervising."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stop.set()
        first = self._first_outcome
        if first is not None and not first.done():
            first.set_result(McpConnectError(self.name, "stopped before it connected"))
        if self._client is None:
            runner.cancel()  # connecting or waiting to: nothing to close gracefully
        try:
            await asyncio.wait_for(asyncio.shield(runner), _STOP_TIMEOUT_S)
        except asyncio.CancelledError:
            if not runner.cancelled():
                raise
        except TimeoutError:
            log.warning(
                "MCP server %r did not stop within %ss; cancelling", self.name, _STOP_TIMEOUT_S
            )
            runner.cancel()
            with suppress(asyncio.CancelledError):
                await runner
        self.state = ServerState.STOPPED

    async def reconnect(self) -> None:
        """Drop the current connection; the runner reconnects after its backoff delay."""
        connection = self._connection
        if connection is not None:
            connection.ended.set()

    # -- the runner -----------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.config.backoff_initial_s
        while not self._stop.is_set():
            connection = open_connection(self.config)
            self._connection = connection
            started = time.monotonic()
            connects = self.connects
            error: BaseException | None = None
            try:
                await self._serve(connection)
            except Exception as exc:  # noqa: BLE001  # the runner contains every failure
                error = exc
            finally:
                self._client = None
                self._protocol = None
            if self._stop.is_set():
                break
            if error is None:
                reason = connection.describe_end()
            else:
                reason = describe_error(error)
                if connection.stdio is not None and connection.stdio.ended.is_set():
                    reason += f" ({connection.stdio.exit_description()})"
            self.last_error = reason
            if self._first_outcome is not None and not self._first_outcome.done():
                self._first_outcome.set_result(error or McpConnectError(self.name, reason))
                return
            if not self.config.reconnect:
                self.state = ServerState.FAILED
                log.error(
                    "MCP server %r is gone and will not be reconnected: %s", self.name, reason
                )
                self._emit("status", {"state": str(self.state), "error": reason})
                return
            if time.monotonic() - started >= self.config.backoff_max_s:
                delay = self.config.backoff_initial_s
            self.state = ServerState.RECONNECTING
            what = "disconnected" if self.connects > connects else "cannot connect"
            log.warning(
                "MCP server %r %s: %s; trying again in %.1fs", self.name, what, reason, delay
            )
            self._emit("status", {"state": str(self.state), "error": reason})
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, self.config.backoff_max_s)
        self.state = ServerState.STOPPED
        self._emit("status", {"state": str(self.state), "error": None})

    async def _serve(self, connection: Connection) -> None:
        """One connection: handshake, list, publish tools, then watch until it ends."""
        # The deadline scope encloses the client (whose task groups must nest inside it)
        # and is lifted once the handshake and first listing are done.
        timeout = self.config.connect_timeout_s
        with anyio.CancelScope(deadline=anyio.current_time() + timeout) as handshake:
            async with AsyncExitStack() as stack:
                client = self._new_client(connection)
                await stack.enter_async_context(client)
                async with anyio.create_task_group() as tg:
                    if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                        # Listen before listing, so no change slips between the two.
                        await tg.start(self._listen, client)
                    tools = await self._list_tools(client)
                    await self._resubscribe(client)
                    handshake.deadline = math.inf
                    await self._connected(client, tools)
                    tg.start_soon(self._watch, connection, tg.cancel_scope)
                    tg.start_soon(self._relist, client)
        if handshake.cancelled_caught:
            raise McpConnectError(
                self.name,
                f"no answer to the handshake within {timeout}s ({self.config.describe()})",
            )

    async def _connected(self, client: Client, tools: dict[str, mcp_types.Tool]) -> None:
        self._protocol = client.protocol_version
        info = client.server_info
        self._server_info = f"{info.name} {info.version}".strip() if info else None
        self._client = client
        self.connects += 1
        self.state = ServerState.CONNECTED
        self.last_error = None
        log.info(
            "MCP server %r connected (%s, protocol %s, %d tools)",
            self.name,
            self._server_info or "unnamed",
            self._protocol,
            len(tools),
        )
        await self._publish_tools(tools)
        self._emit("status", {"state": str(self.state), "error": None})
        if self._first_outcome is not None and not self._first_outcome.done():
            self._first_outcome.set_result(None)

    def _new_client(self, connection: Connection) -> Client:
        return Client(
            connection,
            mode=self.config.protocol,
            cache=None,
            client_info=mcp_types.Implementation(name="loom", version=loom_version),
            message_handler=self._on_message,
            logging_callback=self._on_log,
            list_roots_callback=self._list_roots if self._roots else None,
            sampling_callback=self._sample if self._sampling is not None else None,
        )

    async def _watch(self, connection: Connection, scope: anyio.CancelScope) -> None:
        stop = asyncio.ensure_future(self._stop.wait())
        ended = asyncio.ensure_future(connection.ended.wait())
        try:
            await asyncio.wait({stop, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            ended.cancel()
        scope.cancel()
