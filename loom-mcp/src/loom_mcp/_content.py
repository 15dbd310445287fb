"""MCP tool results as Loom action output, and MCP failures as Loom error codes.

The output of a successful call is one JSON object:

- ``content``: the result's content blocks as MCP writes them (``{"type": "text", "text":
  ...}``, ``{"type": "image", "data": <base64>, "mimeType": ...}``, ``{"type": "audio",
  ...}``, ``{"type": "resource", "resource": {"uri", "mimeType", "text" | "blob"}}``,
  ``{"type": "resource_link", "uri", "name", ...}``);
- ``text``: the text blocks joined with newlines ("" when there are none);
- ``structured``: the result's ``structuredContent``, present only when the server sent it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import mcp_types
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from loom.actions._provider import CapabilityError, ErrorCode

__all__ = ["blocks_to_json", "call_error", "result_error", "result_output", "text_of"]

#: ``details["mcp_error"]`` of each failure kind (upstream Loom's names where it has them).
TOOL_ERROR = "TOOL_ERROR"
SERVER_ERROR = "SERVER_ERROR"
PROTOCOL_ERROR = "PROTOCOL_ERROR"
OUTPUT_SCHEMA = "OUTPUT_SCHEMA_VIOLATION"
TRANSPORT = "TRANSPORT"

_MAX_MESSAGE = 4000


def blocks_to_json(blocks: Sequence[Any]) -> list[dict[str, Any]]:
    """Content blocks (pydantic models) as plain JSON objects, in MCP's wire shape."""
    return [block.model_dump(by_alias=True, mode="json", exclude_none=True) for block in blocks]


def text_of(blocks: Sequence[Any]) -> str:
    """The text blocks joined with newlines."""
    return "\n".join(b.text for b in blocks if isinstance(b, mcp_types.TextContent))


def result_output(result: mcp_types.CallToolResult) -> bytes:
    """The action output of a successful tool call (see the module docstring)."""
    document: dict[str, Any] = {
        "content": blocks_to_json(result.content),
        "text": text_of(result.content),
    }
    if result.structured_content is not None:
        document["structured"] = result.structured_content
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def result_error(result: mcp_types.CallToolResult, server: str, tool: str) -> CapabilityError:
    """The error for a result with ``isError`` set: CAPABILITY_ERROR with the tool's text."""
    text = text_of(result.content) or "the tool reported an error without text"
    return CapabilityError(
        ErrorCode.CAPABILITY_ERROR,
        _clip(text),
        details={"mcp_error": TOOL_ERROR, "server": server, "tool": tool},
    )


def call_error(exc: BaseException, server: str, tool: str) -> CapabilityError:
    """The error for a tool call that raised.

    JSON-RPC errors keep their code in ``details["jsonrpc_code"]``: -32602 (invalid params)
    becomes INVALID_PARAMS, a closed connection PROVIDER_UNAVAILABLE (retryable), a request
    timeout TIMEOUT; anything else CAPABILITY_ERROR. A result that breaks the protocol or
    its tool's output schema is CAPABILITY_ERROR too, with ``mcp_error`` saying which.
    """
    details = {"server": server, "tool": tool}
    if isinstance(exc, MCPError):
        code = exc.error.code
        details |= {"mcp_error": SERVER_ERROR, "jsonrpc_code": str(code)}
        message = _clip(f"{exc.error.message} (code {code})")
        if code == mcp_types.CONNECTION_CLOSED:
            details["mcp_error"] = TRANSPORT
            return CapabilityError(
                ErrorCode.PROVIDER_UNAVAILABLE,
                f"MCP server {server!r} closed the connection during the call",
                details=details,
                retryable=True,
            )
        if code == mcp_types.REQUEST_TIMEOUT:
            return CapabilityError(ErrorCode.TIMEOUT, message, details=details, retryable=True)
        if code == mcp_types.INVALID_PARAMS:
            return CapabilityError(ErrorCode.INVALID_PARAMS, message, details=details)
        return CapabilityError(ErrorCode.CAPABILITY_ERROR, message, details=details)
    if isinstance(exc, ValidationError):
        details["mcp_error"] = PROTOCOL_ERROR
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return CapabilityError(
            ErrorCode.CAPABILITY_ERROR,
            _clip(f"the server's result is not a valid MCP result: {where}: {first['msg']}"),
            details=details,
        )
    if isinstance(exc, RuntimeError) and "structured content" in str(exc):
        # The SDK checks results against the tool's declared outputSchema.
        details["mcp_error"] = OUTPUT_SCHEMA
        return CapabilityError(ErrorCode.CAPABILITY_ERROR, _clip(str(exc)), details=details)
    details["mcp_error"] = PROTOCOL_ERROR
    return CapabilityError(
        ErrorCode.CAPABILITY_ERROR, _clip(f"{type(exc).__name__}: {exc}"), details=details
    )


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
