"""The requests a session sends for its callers: tools, resources, prompts, subscriptions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import mcp_types
from mcp import Client
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from loom_mcp._errors import McpRequestError, McpUnavailableError
from loom_mcp._session_types import ServerState

if TYPE_CHECKING:
    from loom_mcp._config import McpServerConfig

__all__ = ["SessionRequests", "subscribe_request"]

log = logging.getLogger("loom.mcp")

_T = TypeVar("_T")
_MAX_PAGES = 100


class SessionRequests:
    """The calling half of :class:`~loom_mcp.McpServerSession` (a mixin).

    Every request goes through the client the runner holds now; without one it fails at
    once with :class:`~loom_mcp.McpUnavailableError`.
    """

    config: McpServerConfig
    state: ServerState
    last_error: str | None
    _client: Client | None
    _subscriptions: set[str]
    _listen_changed: asyncio.Event

    @property
    def name(self) -> str:
        """The server's configured name."""
        return self.config.name

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
        await self._tell_subscriptions(uri, subscribe=True)

    async def unsubscribe(self, uri: str) -> None:
        """Stop the ``resource_updated`` events about ``uri``."""
        self._subscriptions.discard(uri)
        await self._tell_subscriptions(uri, subscribe=False)

    async def _tell_subscriptions(self, uri: str, *, subscribe: bool) -> None:
        """Tell a connected server of a changed subscription: by request on older protocols,
        through the listen stream (re-opened with the new set) on the newest."""
        client = self._client
        if client is None:
            return
        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            self._listen_changed.set()
        else:
            await self._request(lambda c: subscribe_request(c, uri, subscribe=subscribe))

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


async def subscribe_request(client: Client, uri: str, *, subscribe: bool) -> mcp_types.EmptyResult:
    """Send ``resources/subscribe`` (or ``unsubscribe``) about ``uri`` over ``client``."""
    # The request itself: ``ClientSession.subscribe_resource`` warns that 2026-07-28 drops
    # it, but handshake-era servers know no other way (the modern ones get ``listen``).
    request: mcp_types.SubscribeRequest | mcp_types.UnsubscribeRequest
    if subscribe:
        request = mcp_types.SubscribeRequest(params=mcp_types.SubscribeRequestParams(uri=uri))
    else:
        request = mcp_types.UnsubscribeRequest(params=mcp_types.UnsubscribeRequestParams(uri=uri))
    return await client.session.send_request(request, mcp_types.EmptyResult)


def _bind_cursor(
    fetch: Callable[[Client, str | None], Awaitable[Any]], cursor: str | None
) -> Callable[[Client], Awaitable[Any]]:
    return lambda client: fetch(client, cursor)


def _snake(field: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in field)
