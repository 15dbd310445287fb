"""Errors raised by loom-mcp. Tool calls through the broker fail with error codes instead."""

from __future__ import annotations

from loom.errors import LoomError

__all__ = [
    "McpConfigError",
    "McpConnectError",
    "McpError",
    "McpRequestError",
    "McpUnavailableError",
    "UnknownServerError",
]


class McpError(LoomError):
    """Root of the errors loom-mcp raises.

    Attributes:
        server: the MCP server concerned ("" when none is).
    """

    def __init__(self, server: str, message: str) -> None:
        self.server = server
        super().__init__(f"MCP server {server!r}: {message}" if server else message)


class McpConfigError(McpError, ValueError):
    """A server configuration is invalid.

    Attributes:
        source: the file (or ``<config>``) it came from.
        key: the entry and key at fault, e.g. ``mcp.servers[1] ('time')``.
    """

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        where = f"{source}: {key}: " if key else f"{source}: "
        McpError.__init__(self, "", where + message)


class McpConnectError(McpError, ConnectionError):
    """A server could not be started, reached, or did not complete the handshake in time."""


class McpUnavailableError(McpError, ConnectionError):
    """A server is not connected now (it crashed or dropped, and is being reconnected)."""


class McpRequestError(McpError):
    """A server answered a request with an error, or with a result that breaks the protocol.

    Attributes:
        code: the JSON-RPC error code (0 when the server sent no error object).
    """

    def __init__(self, server: str, message: str, *, code: int = 0) -> None:
        self.code = code
        super().__init__(server, message)


class UnknownServerError(McpError, KeyError):
    """No server of that name is configured."""

    def __init__(self, server: str) -> None:
        super().__init__(server, "no such server")

    def __str__(self) -> str:  # KeyError would quote the message again
        return str(self.args[0])
