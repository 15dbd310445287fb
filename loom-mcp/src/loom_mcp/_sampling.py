"""Answering a server's ``sampling/createMessage`` through the app's model router.

A server configured with ``allow_sampling = true`` may ask us for an LLM completion. The
request becomes a chat (its ``systemPrompt`` a system message, its text messages user and
assistant messages), routed by the :class:`~loom.models.ModelRouter` like any other
request (privacy rules, fallback, the decision logged and published), with event type
``mcp.sampling``. Only text is accepted: image and audio content, and tool use, are refused
with INVALID_PARAMS. Each server may have a few requests running at once
(``max_pending``); beyond that they are refused, so a server cannot queue up unbounded
spending.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mcp_types

from loom_mcp._session import SamplingHandler, SamplingRefusedError

__all__ = ["SAMPLING_EVENT_TYPE", "router_sampling"]

#: The ``event_type`` of the routing requests made for sampling.
SAMPLING_EVENT_TYPE = "mcp.sampling"
_STOP_REASONS = {"stop": "endTurn", "length": "maxTokens", "tool_calls": "toolUse"}


def router_sampling(
    router: Any,
    *,
    privacy_of: Callable[[str], str | None] | None = None,
    max_pending: int = 4,
) -> SamplingHandler:
    """A sampling handler that asks ``router``.

    Args:
        router: a :class:`~loom.models.ModelRouter` (its ``run`` is called).
        privacy_of: the privacy level of a server's requests (None: the router's
            default), by server name.
        max_pending: requests a server may have running at once; more are refused.

    Returns:
        The handler to give :class:`~loom_mcp.McpSessionManager` as ``sampling``.
    """
    from loom.models import DEFAULT_PRIVACY, Privacy, RoutingError, RoutingRequest

    pending: dict[str, int] = {}

    async def sample(
        server: str, params: mcp_types.CreateMessageRequestParams
    ) -> mcp_types.CreateMessageResult:
        if pending.get(server, 0) >= max_pending:
            raise SamplingRefusedError(
                f"MCP server {server!r} already has {max_pending} sampling requests running",
                code=mcp_types.INVALID_REQUEST,
            )
        messages = _messages(server, params)
        level = privacy_of(server) if privacy_of is not None else None
        privacy = Privacy.parse(level) if level is not None else DEFAULT_PRIVACY
        request = RoutingRequest(privacy=privacy, event_type=SAMPLING_EVENT_TYPE)
        pending[server] = pending.get(server, 0) + 1
        try:
            routed = await router.run(request, messages)
        except RoutingError as exc:
            raise SamplingRefusedError(f"the model router did not run it: {exc}") from exc
        finally:
            pending[server] -= 1
        turn = routed.turn
        finish = getattr(turn, "finish_reason", None) or "stop"
        model = getattr(turn, "model", "") or routed.provider
        return mcp_types.CreateMessageResult(
            role="assistant",
            content=mcp_types.TextContent(type="text", text=turn.text or ""),
            model=f"{routed.provider}/{model}" if model != routed.provider else model,
            stop_reason=_STOP_REASONS.get(finish, finish),
        )

    return sample


def _messages(server: str, params: mcp_types.CreateMessageRequestParams) -> list[dict[str, str]]:
    if params.tools:
        raise SamplingRefusedError(
            f"MCP server {server!r} asked for sampling with tools, which Loom does not offer"
        )
    messages: list[dict[str, str]] = []
    if params.system_prompt:
        messages.append({"role": "system", "content": params.system_prompt})
    for index, message in enumerate(params.messages):
        blocks = message.content if isinstance(message.content, list) else [message.content]
        texts: list[str] = []
        for block in blocks:
            if not isinstance(block, mcp_types.TextContent):
                raise SamplingRefusedError(
                    f"MCP server {server!r}: messages[{index}] holds {block.type!r} content; "
                    "only text is accepted for sampling"
                )
            texts.append(block.text)
        messages.append({"role": message.role, "content": "\n".join(texts)})
    if not messages:
        raise SamplingRefusedError(f"MCP server {server!r} asked for sampling with no messages")
    return messages
