"""An MCP tool as a broker capability: ``McpToolProvider``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mcp_types

from loom._action import ActionCall, CapabilityDescriptor, ProviderKind
from loom.actions._provider import CapabilityError, ErrorCode, Provider
from loom_mcp._content import call_error, result_error, result_output
from loom_mcp._errors import McpUnavailableError

if TYPE_CHECKING:
    from mcp.shared.dispatcher import ProgressFnT

    from loom_mcp._session import McpServerSession

__all__ = ["McpToolProvider", "ProgressReporter", "capability_name", "tool_metadata"]

#: ``report(provider, call, progress, total, message)``: a server's progress during a call.
ProgressReporter = Callable[
    ["McpToolProvider", ActionCall, float, "float | None", "str | None"], None
]


def capability_name(server: str, tool: str) -> str:
    """The capability name of an MCP tool: ``{server}:{tool}``."""
    return f"{server}:{tool}"


def tool_metadata(server: str, tool: mcp_types.Tool) -> dict[str, str]:
    """Descriptor metadata of a tool: description, JSON schemas (as JSON text), origin."""
    description = tool.description or tool.title or ""
    metadata = {
        "description": description,
        "desc": description,
        "input_schema": _compact(tool.input_schema),
        "mcp_server": server,
        "mcp_tool": tool.name,
    }
    if tool.title:
        metadata["title"] = tool.title
    if tool.output_schema is not None:
        metadata["output_schema"] = _compact(tool.output_schema)
    if tool.annotations is not None:
        annotations = tool.annotations.model_dump(by_alias=True, mode="json", exclude_none=True)
        metadata["mcp_annotations"] = _compact(annotations)
    return metadata


class McpToolProvider(Provider):
    """Runs one tool of one MCP server for the broker.

    The capability is ``{server}:{tool}`` (provider kind MCP); its metadata carries the
    tool's description and its input and output schemas as JSON text. A call's payload is
    the tool's arguments as a JSON object (empty for none); its output is the JSON object
    :mod:`loom_mcp._content` describes. The provider follows its server across
    reconnections: while the server is down, calls answer PROVIDER_UNAVAILABLE.

    Args:
        session: the server's supervised session.
        tool: the tool, as the server lists it.
        version: the capability's version.
        on_progress: ``on_progress(call, progress, total, message)`` for the server's
            progress notifications during a call.
    """

    def __init__(
        self,
        session: McpServerSession,
        tool: mcp_types.Tool,
        *,
        version: str = "1.0",
        on_progress: ProgressReporter | None = None,
    ) -> None:
        self.session = session
        self.tool = tool
        self._on_progress = on_progress
        self.descriptor = CapabilityDescriptor(
            name=capability_name(session.name, tool.name),
            version=version,
            provider=ProviderKind.MCP,
            metadata=tool_metadata(session.name, tool),
        )

    def __repr__(self) -> str:
        return f"McpToolProvider({self.descriptor.name!r})"

    async def invoke(self, call: ActionCall) -> bytes:
        """Call the tool with the payload's arguments and return the result as JSON.

        Raises:
            CapabilityError: INVALID_PARAMS (payload not a JSON object, or the server
                refused the arguments), PROVIDER_UNAVAILABLE (server down), TIMEOUT,
                CAPABILITY_ERROR (``isError`` result, server error, or a result that breaks
                the protocol or the tool's output schema; ``details["mcp_error"]`` says
                which).
        """
        arguments = _arguments(call.payload)
        server, tool = self.session.name, self.tool.name
        timeout = call.timeout_ms / 1000 if call.timeout_ms > 0 else None
        try:
            result = await self.session.call_tool(
                tool, arguments, timeout_s=timeout, on_progress=self._progress_for(call)
            )
        except McpUnavailableError as exc:
            raise CapabilityError(
                ErrorCode.PROVIDER_UNAVAILABLE,
                str(exc),
                details={"server": server, "tool": tool},
                retryable=True,
            ) from exc
        except Exception as exc:
            raise call_error(exc, server, tool) from exc
        if result.is_error:
            raise result_error(result, server, tool)
        return result_output(result)

    def _progress_for(self, call: ActionCall) -> ProgressFnT | None:
        report = self._on_progress
        if report is None:
            return None

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            report(self, call, progress, total, message)

        return on_progress


def _arguments(payload: bytes) -> dict[str, Any] | None:
    if not payload.strip():
        return None
    try:
        value = json.loads(payload)
    except ValueError as exc:
        raise CapabilityError(
            ErrorCode.INVALID_PARAMS, f"$: the payload is not JSON: {exc}", details={"field": "$"}
        ) from None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CapabilityError(
            ErrorCode.INVALID_PARAMS,
            f"$: an MCP tool takes a JSON object of arguments, got {type(value).__name__}",
            details={"field": "$"},
        )
    return value


def _compact(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
