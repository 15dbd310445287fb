"""What a supervised MCP session reports and takes: states, status, callbacks, refusals."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mcp_types
from mcp.shared.exceptions import MCPError

from loom_mcp._errors import McpConnectError

if TYPE_CHECKING:
    from loom_mcp._session import McpServerSession

__all__ = [
    "EventSink",
    "SamplingHandler",
    "SamplingRefusedError",
    "ServerState",
    "ServerStatus",
    "ToolsListener",
    "describe_error",
]

#: ``sampling(server, params)`` answers a server's request for an LLM completion.
SamplingHandler = Callable[
    [str, mcp_types.CreateMessageRequestParams], Awaitable[mcp_types.CreateMessageResult]
]

#: ``listener(session, tools)`` learns the server's current tools (after each listing).
ToolsListener = Callable[["McpServerSession", dict[str, mcp_types.Tool]], Awaitable[None]]
#: ``sink(server, kind, data)`` receives server events; it must not block.
EventSink = Callable[[str, str, dict[str, Any]], None]


class SamplingRefusedError(Exception):
    """A sampling handler's refusal: the server gets a JSON-RPC error with this message.

    Args:
        message: why, for the server (and its user).
        code: the JSON-RPC error code (INVALID_PARAMS by default).
    """

    def __init__(self, message: str, *, code: int = mcp_types.INVALID_PARAMS) -> None:
        super().__init__(message)
        self.code = code


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


def describe_error(error: BaseException) -> str:
    """A one-line reason, looking inside exception groups (anyio wraps transport failures)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe_error(e) for e in error.exceptions)
    if isinstance(error, McpConnectError):
        return str(error).split(": ", 1)[-1]
    if isinstance(error, MCPError):
        return f"{error.error.message} (code {error.error.code})"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
