"""A session's tool catalogue: list the tools, filter them, keep up with changes."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, cast

import anyio
import anyio.abc
import mcp_types
from mcp import Client
from mcp.client.subscriptions import ListenNotSupportedError, SubscriptionLost
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from loom_mcp._session_requests import subscribe_request
from loom_mcp._session_types import ToolsListener, describe_error

if TYPE_CHECKING:
    from loom_mcp._config import McpServerConfig
    from loom_mcp._session import McpServerSession

__all__ = ["SessionCatalog"]

log = logging.getLogger("loom.mcp")

_MAX_PAGES = 100


class SessionCatalog:
    """The tool catalogue of :class:`~loom_mcp.McpServerSession` (a mixin).

    Lists the tools through the include/exclude filters, lists them again on
    ``list_changed``, keeps the 2026-07-28 listen stream open, and resubscribes to
    resources after a reconnection.
    """

    config: McpServerConfig
    tools: dict[str, mcp_types.Tool]
    _on_tools: ToolsListener | None
    _subscriptions: set[str]
    _tools_changed: asyncio.Event
    _listen_changed: asyncio.Event

    async def _relist(self, client: Client) -> None:
        while True:
            await self._tools_changed.wait()
            self._tools_changed.clear()
            try:
                tools = await self._list_tools(client)
            except Exception as exc:  # noqa: BLE001  # keep the tools; _watch sees a dead link
                log.warning(
                    "MCP server %r: re-listing tools failed: %s",
                    self.config.name,
                    describe_error(exc),
                )
                continue
            if tools.keys() != self.tools.keys():
                log.info("MCP server %r: tools changed, now %d", self.config.name, len(tools))
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
            log.info("MCP server %r: no change events: %s", self.config.name, exc)
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
                await self._on_tools(cast("McpServerSession", self), tools)
            except Exception:
                log.exception("MCP server %r: registering its tools failed", self.config.name)

    async def _resubscribe(self, client: Client) -> None:
        # 2026-07-28 servers get the subscriptions on the listen stream instead.
        if self._subscriptions and client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            for uri in sorted(self._subscriptions):
                try:
                    await subscribe_request(client, uri, subscribe=True)
                except MCPError as exc:
                    log.warning(
                        "MCP server %r: cannot resubscribe to %s: %s", self.config.name, uri, exc
                    )


async def _drain(subscription: AsyncIterable[object]) -> None:
    # The events also reach the message handler, which acts on them; read them all so the
    # stream's buffer never fills.
    async for _ in subscription:
        pass
