"""The JSON body of a chat completions request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loom.models._assemble import openai_tool
from loom.models._chat import MessageLike, ToolLike
from loom.models._config import OpenAIConfig
from loom.models._errors import LLMConfigError

__all__ = ["request_body"]

_FIXED_CHOICES = frozenset({"auto", "none", "required"})


def request_body(
    config: OpenAIConfig,
    messages: Sequence[MessageLike],
    tools: Sequence[ToolLike] = (),
    *,
    tool_choice: str | Mapping[str, Any] | None = None,
    stream: bool = False,
    temperature: float | None = None,
    max_tokens: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of ``POST {base_url}/chat/completions``.

    Args:
        config: the endpoint's configuration (model, defaults).
        messages: the conversation, in the OpenAI shape.
        tools: tools in the OpenAI shape, or bare functions (wrapped).
        tool_choice: ``"auto"``, ``"none"``, ``"required"``, an offered tool's name (sent
            in the object form), or the object form itself.
        stream: ask for server-sent events.
        temperature: overrides the config's.
        max_tokens: overrides the config's.
        extra: more fields, sent as they are.

    Raises:
        LLMConfigError: no messages, a message or tool of the wrong shape, or a
            ``tool_choice`` naming a tool not offered.
    """

    def refuse(message: str) -> LLMConfigError:
        return LLMConfigError(message, provider=config.provider, endpoint=config.endpoint)

    if not messages:
        raise refuse("a request needs at least one message")
    body: dict[str, Any] = {}
    if config.model:
        body["model"] = config.model
    body["messages"] = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise refuse(f"message {index} is not a mapping with a 'role'")
        body["messages"].append(dict(message))
    offered: list[dict[str, Any]] = []
    for index, tool in enumerate(tools):
        try:
            offered.append(openai_tool(tool))
        except ValueError as e:
            raise refuse(f"tool {index}: {e}") from None
    if offered:
        body["tools"] = offered
    if tool_choice is not None:
        if isinstance(tool_choice, Mapping):
            body["tool_choice"] = dict(tool_choice)
        elif tool_choice in _FIXED_CHOICES:
            body["tool_choice"] = tool_choice
        else:
            names = [t["function"]["name"] for t in offered]
            if tool_choice not in names:
                raise refuse(
                    f"tool_choice {tool_choice!r} is not 'auto', 'none', 'required' or an "
                    f"offered tool ({', '.join(names) or 'no tools offered'})"
                )
            body["tool_choice"] = {"type": "function", "function": {"name": tool_choice}}
    temperature = config.temperature if temperature is None else temperature
    if temperature is not None:
        body["temperature"] = temperature
    max_tokens = config.max_tokens if max_tokens is None else max_tokens
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    body["stream"] = stream
    if stream and config.stream_usage:
        body["stream_options"] = {"include_usage": True}
    if extra:
        body.update(extra)
    return body
