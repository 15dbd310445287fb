"""MCP tools as Loom capabilities, and Loom as an MCP server.

The client side connects to MCP servers (stdio, streamable HTTP, legacy SSE) with the
official ``mcp`` SDK and registers each server's tools with the ActionBroker as
capabilities named ``{server}:{tool}``; :class:`McpSessionManager` supervises the servers
(reconnecting with backoff) and reads their resources and prompts. The server side,
:class:`LoomMcpServer` (``loom mcp serve``), exposes the broker's capabilities as MCP tools.

The names below load on first use, so ``import loom_mcp`` (and the ``loom`` plugin module,
``loom_mcp.plugin``) does not import the SDK. See ``docs/mcp.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loom_mcp._config import McpServerConfig, load_server_configs, parse_server_configs
    from loom_mcp._errors import (
        McpConfigError,
        McpConnectError,
        McpError,
        McpRequestError,
        McpUnavailableError,
        UnknownServerError,
    )
    from loom_mcp._manager import CapabilityRegistry, EventPublisher, McpSessionManager
    from loom_mcp._names import mcp_tool_name, tool_name_table
    from loom_mcp._provider import McpToolProvider, capability_name, tool_metadata
    from loom_mcp._sampling import router_sampling
    from loom_mcp._server import LoomMcpServer, ServedBroker
    from loom_mcp._session import (
        McpServerSession,
        SamplingHandler,
        SamplingRefusedError,
        ServerState,
        ServerStatus,
    )

__all__ = [
    "CapabilityRegistry",
    "EventPublisher",
    "LoomMcpServer",
    "McpConfigError",
    "McpConnectError",
    "McpError",
    "McpRequestError",
    "McpServerConfig",
    "McpServerSession",
    "McpSessionManager",
    "McpToolProvider",
    "McpUnavailableError",
    "SamplingHandler",
    "SamplingRefusedError",
    "ServedBroker",
    "ServerState",
    "ServerStatus",
    "UnknownServerError",
    "capability_name",
    "load_server_configs",
    "mcp_tool_name",
    "parse_server_configs",
    "router_sampling",
    "tool_metadata",
    "tool_name_table",
]

_HOMES = {
    "loom_mcp._config": ("McpServerConfig", "load_server_configs", "parse_server_configs"),
    "loom_mcp._errors": (
        "McpConfigError",
        "McpConnectError",
        "McpError",
        "McpRequestError",
        "McpUnavailableError",
        "UnknownServerError",
    ),
    "loom_mcp._manager": ("CapabilityRegistry", "EventPublisher", "McpSessionManager"),
    "loom_mcp._names": ("mcp_tool_name", "tool_name_table"),
    "loom_mcp._provider": ("McpToolProvider", "capability_name", "tool_metadata"),
    "loom_mcp._server": ("LoomMcpServer", "ServedBroker"),
    "loom_mcp._sampling": ("router_sampling",),
    "loom_mcp._session": (
        "McpServerSession",
        "SamplingHandler",
        "SamplingRefusedError",
        "ServerState",
        "ServerStatus",
    ),
}
_LAZY = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loom_mcp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
