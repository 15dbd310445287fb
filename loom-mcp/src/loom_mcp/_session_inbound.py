"""What a server sends a session: notifications, log messages, roots and sampling requests."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mcp_types
from mcp.client.session import ClientRequestContext

from loom_mcp._session_types import EventSink, SamplingHandler, SamplingRefusedError

if TYPE_CHECKING:
    from loom_mcp._config import McpServerConfig

__all__ = ["SessionInbound", "root"]

log = logging.getLogger("loom.mcp")

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


class SessionInbound:
    """The handlers :class:`~loom_mcp.McpServerSession` gives the SDK client (a mixin)."""

    config: McpServerConfig
    _on_event: EventSink | None
    _sampling: SamplingHandler | None
    _garbage: int
    _tools_changed: asyncio.Event
    _roots: list[mcp_types.Root]
    _server_log: logging.Logger

    async def _on_message(self, message: Any) -> None:
        # Runs in a task the SDK spawns per message: no blocking work here.
        if isinstance(message, Exception):
            self._garbage += 1
            log.debug("MCP server %r: transport error: %s", self.config.name, message)
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
            return await self._sampling(self.config.name, params)
        except SamplingRefusedError as exc:
            log.info("MCP server %r: sampling request refused: %s", self.config.name, exc)
            return mcp_types.ErrorData(code=exc.code, message=f"sampling refused: {exc}")
        except Exception as exc:  # noqa: BLE001  # the app's handler fails this request only
            log.warning("MCP server %r: the sampling handler failed: %s", self.config.name, exc)
            return mcp_types.ErrorData(code=mcp_types.INTERNAL_ERROR, message=str(exc))

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        if self._on_event is not None:
            self._on_event(self.config.name, kind, data)


def root(entry: str) -> mcp_types.Root:
    """A configured root (a ``file://`` URI or a path) as an MCP root."""
    if entry.startswith("file://"):
        return mcp_types.Root.model_validate({"uri": entry})
    path = Path(entry).expanduser().resolve()
    return mcp_types.Root.model_validate({"uri": path.as_uri(), "name": path.name})
