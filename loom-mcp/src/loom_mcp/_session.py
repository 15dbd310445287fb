"""One MCP server, supervised: connect, list its tools, watch, reconnect with backoff.

Each server gets one long-lived task, the runner, which enters and exits the SDK client
and its transport: anyio task groups and cancel scopes must be entered and left by the
same task, so no other task ever does. Calls come from any task and go through the client
the runner currently holds; while there is none they fail at once with
:class:`~loom_mcp.McpUnavailableError`.
"""

from __future__ import annotations

import asyncio
import enum
import fnmatch
import logging
import math
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.abc
import mcp_types
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.subscriptions import ListenNotSupportedError, SubscriptionLost
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from loom._version import __version__ as loom_version
from loom_mcp._errors import McpConnectError, McpRequestError, McpUnavailableError
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

#: ``sampling(server, params)`` answers a server's request for an LLM completion.
SamplingHandler = Callable[
    [str, mcp_types.CreateMessageRequestParams], Awaitable[mcp_types.CreateMessageResult]
]


class SamplingRefusedError(Exception):
    """A sampling handler's refusal: the server gets a JSON-RPC error with this message.

    Args:
        message: why, for the server (and its user).
        code: the JSON-RPC error code (INVALID_PARAMS by default).
    """

    def __init__(self, message: str, *, code: int = mcp_types.INVALID_PARAMS) -> None:
        super().__init__(message)
        self.code = code


#: ``listener(session, tools)`` learns the server's current tools (after each listing).
ToolsListener = Callable[["McpServerSession", dict[str, mcp_types.Tool]], Awaitable[None]]
#: ``sink(server, kind, data)`` receives server events; it must not block.
EventSink = Callable[[str, str, dict[str, Any]], None]

_T = TypeVar("_T")
_MAX_PAGES = 100
_STOP_TIMEOUT_S = 15.0
_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}


class ServerState(enum.StrEnum):
    """Where a server's supervision stands."""

    STARTING = "starting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class ServerStatus:
    """A snapshot of one server, for ``loom mcp`` and dashboards.

    Attributes:
        name: the server's configured name.
        state: connected, reconnecting, ...
        endpoint: its command line or URL.
        transport: ``stdio``, ``http`` or ``sse``.
        protocol_version: the version negotiated on the current connection.
        server_info: ``name version`` the server reports.
        pid: the child's pid (stdio, while connected).
        tools: the names of its exposed tools.
        connects: successful connections so far (1 + reconnections).
        last_error: why the last connection ended or attempt failed.
        garbage_lines: stdout lines that were not JSON-RPC, or too long (stdio).
    """

    name: str
    state: ServerState
    endpoint: str
    transport: str
    protocol_version: str | None
    server_info: str | None
    pid: int | None
    tools: tuple[str, ...]
    connects: int
    last_error: str | None
    garbage_lines: int


class McpServerSession:
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
        self._roots = [_root(entry) for entry in config.roots]
        self._server_log = logging.getLogger(f"loom.mcp.server.{config.name}")

    @property
    def name(self) -> str:
        """The server's configured name."""
        return self.config.name

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
            raise McpConnectError(self.name, _describe(error)) from error

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

    # -- calls ----------------------------------------------------------------------------

    def client(self) -> Client:
        """The SDK client of the current connection.

        Raises:
            McpUnavailableError: the server is not connected now.
        """
        client = self._client
        if client is None:
            raise McpUnavailableError(self.name, self._unavailable_reason())
        return client

    async def call_tool(
        self,
        tool: str,
        arguments: dict[str, Any] | None,
        *,
        timeout_s: float | None = None,
        on_progress: ProgressFnT | None = None,
    ) -> mcp_types.CallToolResult:
        """Call a tool and return the SDK's result (``isError`` results included).

        Raises:
            McpUnavailableError: not connected, or the connection ended during the call.
            mcp.shared.exceptions.MCPError: the server answered with an error.
        """
        client = self.client()
        try:
            return await client.call_tool(
                tool,
                arguments,
                read_timeout_seconds=timeout_s or self.config.call_timeout_s,
                progress_callback=on_progress,
            )
        except MCPError as exc:
            if exc.error.code == mcp_types.CONNECTION_CLOSED:
                raise McpUnavailableError(
                    self.name, "the connection closed during the call"
                ) from exc
            raise
        except RuntimeError as exc:
            if self._client is not client:  # the connection went away under the call
                raise McpUnavailableError(self.name, self._unavailable_reason()) from exc
            raise

    async def list_resources(self) -> list[mcp_types.Resource]:
        """Every resource the server lists (all pages)."""
        return await self._paged("resources", lambda c, cur: c.list_resources(cursor=cur))

    async def list_resource_templates(self) -> list[mcp_types.ResourceTemplate]:
        """Every resource template the server lists (all pages)."""
        return await self._paged(
            "resourceTemplates", lambda c, cur: c.list_resource_templates(cursor=cur)
        )

    async def read_resource(
        self, uri: str
    ) -> list[mcp_types.TextResourceContents | mcp_types.BlobResourceContents]:
        """The contents of one resource."""
        result = await self._request(lambda c: c.read_resource(uri))
        return list(result.contents)

    async def list_prompts(self) -> list[mcp_types.Prompt]:
        """Every prompt the server lists (all pages)."""
        return await self._paged("prompts", lambda c, cur: c.list_prompts(cursor=cur))

    async def get_prompt(
        self, name: str, arguments: Mapping[str, str] | None = None
    ) -> mcp_types.GetPromptResult:
        """A prompt rendered with ``arguments``."""
        args = dict(arguments) if arguments is not None else None
        return await self._request(lambda c: c.get_prompt(name, args))

    async def subscribe(self, uri: str) -> None:
        """Ask for ``resource_updated`` events about ``uri`` (kept across reconnections)."""
        self._subscriptions.add(uri)
        client = self._client
        if client is None:
            return
        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            self._listen_changed.set()
        else:
            await self._request(lambda c: _subscribe(c, uri, subscribe=True))

    async def unsubscribe(self, uri: str) -> None:
        """Stop the ``resource_updated`` events about ``uri``."""
        self._subscriptions.discard(uri)
        client = self._client
        if client is None:
            return
        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            self._listen_changed.set()
        else:
            await self._request(lambda c: _subscribe(c, uri, subscribe=False))

    async def _request(self, send: Callable[[Client], Awaitable[_T]]) -> _T:
        client = self.client()
        try:
            return await send(client)
        except MCPError as exc:
            if exc.error.code == mcp_types.CONNECTION_CLOSED:
                raise McpUnavailableError(self.name, "the connection closed") from exc
            raise McpRequestError(self.name, exc.error.message, code=exc.error.code) from exc
        except RuntimeError as exc:
            if self._client is not client:
                raise McpUnavailableError(self.name, self._unavailable_reason()) from exc
            raise McpRequestError(self.name, str(exc)) from exc

    async def _paged(
        self, field: str, fetch: Callable[[Client, str | None], Awaitable[Any]]
    ) -> list[Any]:
        items: list[Any] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            page = await self._request(_bind_cursor(fetch, cursor))
            items.extend(getattr(page, _snake(field)))
            cursor = page.next_cursor
            if cursor is None:
                return items
        log.warning(
            "MCP server %r: %s listing stopped after %d pages", self.name, field, _MAX_PAGES
        )
        return items

    def _unavailable_reason(self) -> str:
        if self.state in (ServerState.STOPPED, ServerState.FAILED):
            return f"not connected ({self.state})"
        reason = f"; last error: {self.last_error}" if self.last_error else ""
        return f"not connected now ({self.state}){reason}"

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
                reason = _describe(error)
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

    async def _resubscribe(self, client: Client) -> None:
        # 2026-07-28 servers get the subscriptions on the listen stream instead.
        if self._subscriptions and client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            for uri in sorted(self._subscriptions):
                try:
                    await _subscribe(client, uri, subscribe=True)
                except MCPError as exc:
                    log.warning("MCP server %r: cannot resubscribe to %s: %s", self.name, uri, exc)

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

    async def _relist(self, client: Client) -> None:
        while True:
            await self._tools_changed.wait()
            self._tools_changed.clear()
            try:
                tools = await self._list_tools(client)
            except Exception as exc:  # noqa: BLE001  # keep the tools; _watch sees a dead link
                log.warning("MCP server %r: re-listing tools failed: %s", self.name, _describe(exc))
                continue
            if tools.keys() != self.tools.keys():
                log.info("MCP server %r: tools changed, now %d", self.name, len(tools))
            await self._publish_tools(tools)

    async def _listen(
        self, client: Client, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """2026-07-28 servers send change events only on a ``subscriptions/listen`` stream.

        Reports started once the first stream is acknowledged (or refused); reopens the
        stream when the resource subscriptions change.
        """
        started = False
        try:
            while True:
                self._listen_changed.clear()
                async with client.listen(
                    tools_list_changed=True,
                    prompts_list_changed=True,
                    resources_list_changed=True,
                    resource_subscriptions=sorted(self._subscriptions),
                ) as subscription:
                    if not started:
                        started = True
                        task_status.started()
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(_drain, subscription)
                        await self._listen_changed.wait()
                        tg.cancel_scope.cancel()
        except (ListenNotSupportedError, MCPError, SubscriptionLost) as exc:
            log.info("MCP server %r: no change events: %s", self.name, exc)
        finally:
            if not started:
                task_status.started()

    async def _list_tools(self, client: Client) -> dict[str, mcp_types.Tool]:
        tools: dict[str, mcp_types.Tool] = {}
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            for tool in page.tools:
                if self._exposed(tool.name):
                    tools[tool.name] = tool
            cursor = page.next_cursor
            if cursor is None:
                break
        return tools

    def _exposed(self, tool: str) -> bool:
        include = self.config.include_tools
        if include and not any(fnmatch.fnmatchcase(tool, p) for p in include):
            return False
        return not any(fnmatch.fnmatchcase(tool, p) for p in self.config.exclude_tools)

    async def _publish_tools(self, tools: dict[str, mcp_types.Tool]) -> None:
        self.tools = tools
        if self._on_tools is not None:
            try:
                await self._on_tools(self, tools)
            except Exception:
                log.exception("MCP server %r: registering its tools failed", self.name)

    # -- what the server sends us -----------------------------------------------------------

    async def _on_message(self, message: Any) -> None:
        # Runs in a task the SDK spawns per message: no blocking work here.
        if isinstance(message, Exception):
            self._garbage += 1
            log.debug("MCP server %r: transport error: %s", self.name, message)
        elif isinstance(message, mcp_types.ToolListChangedNotification):
            self._tools_changed.set()
        elif isinstance(message, mcp_types.ResourceUpdatedNotification):
            self._emit("resource_updated", {"uri": str(message.params.uri)})
        elif isinstance(message, mcp_types.ResourceListChangedNotification):
            self._emit("resources_changed", {})
        elif isinstance(message, mcp_types.PromptListChangedNotification):
            self._emit("prompts_changed", {})

    async def _on_log(self, params: mcp_types.LoggingMessageNotificationParams) -> None:
        level = _LOG_LEVELS.get(params.level, logging.INFO)
        self._server_log.log(level, "%s", params.data)
        self._emit("log", {"level": params.level, "logger": params.logger, "data": params.data})

    async def _list_roots(self, context: ClientRequestContext) -> mcp_types.ListRootsResult:
        return mcp_types.ListRootsResult(roots=self._roots)

    async def _sample(
        self, context: ClientRequestContext, params: mcp_types.CreateMessageRequestParams
    ) -> mcp_types.CreateMessageResult | mcp_types.ErrorData:
        assert self._sampling is not None
        try:
            return await self._sampling(self.name, params)
        except SamplingRefusedError as exc:
            log.info("MCP server %r: sampling request refused: %s", self.name, exc)
            return mcp_types.ErrorData(code=exc.code, message=f"sampling refused: {exc}")
        except Exception as exc:  # noqa: BLE001  # the app's handler fails this request only
            log.warning("MCP server %r: the sampling handler failed: %s", self.name, exc)
            return mcp_types.ErrorData(code=mcp_types.INTERNAL_ERROR, message=str(exc))

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        if self._on_event is not None:
            self._on_event(self.name, kind, data)


async def _drain(subscription: AsyncIterable[object]) -> None:
    # The events also reach the message handler, which acts on them; read them all so the
    # stream's buffer never fills.
    async for _ in subscription:
        pass


async def _subscribe(client: Client, uri: str, *, subscribe: bool) -> mcp_types.EmptyResult:
    # The request itself: ``ClientSession.subscribe_resource`` warns that 2026-07-28 drops
    # it, but handshake-era servers know no other way (the modern ones get ``listen``).
    request: mcp_types.SubscribeRequest | mcp_types.UnsubscribeRequest
    if subscribe:
        request = mcp_types.SubscribeRequest(params=mcp_types.SubscribeRequestParams(uri=uri))
    else:
        request = mcp_types.UnsubscribeRequest(params=mcp_types.UnsubscribeRequestParams(uri=uri))
    return await client.session.send_request(request, mcp_types.EmptyResult)


def _root(entry: str) -> mcp_types.Root:
    if entry.startswith("file://"):
        return mcp_types.Root.model_validate({"uri": entry})
    path = Path(entry).expanduser().resolve()
    return mcp_types.Root.model_validate({"uri": path.as_uri(), "name": path.name})


def _bind_cursor(
    fetch: Callable[[Client, str | None], Awaitable[Any]], cursor: str | None
) -> Callable[[Client], Awaitable[Any]]:
    return lambda client: fetch(client, cursor)


def _snake(field: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in field)


def _describe(error: BaseException) -> str:
    """A one-line reason, looking inside exception groups (anyio wraps transport failures)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in error.exceptions)
    if isinstance(error, McpConnectError):
        return str(error).split(": ", 1)[-1]
    if isinstance(error, MCPError):
        return f"{error.error.message} (code {error.error.code})"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
