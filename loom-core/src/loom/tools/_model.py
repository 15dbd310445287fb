"""What the orchestrator needs of a chat model, in the OpenAI chat-completions shape."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

__all__ = ["ChatModel", "Message", "ModelTurn", "ToolCall", "ToolSpec"]

#: One chat message as OpenAI's chat completions take it: ``{"role": "user", "content":
#: "..."}``, an assistant message with ``tool_calls``, or ``{"role": "tool",
#: "tool_call_id": ..., "content": ...}``.
Message: TypeAlias = dict[str, Any]

#: One tool as OpenAI's chat completions take it:
#: ``{"type": "function", "function": {"name", "description", "parameters"}}``.
ToolSpec: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model asked for.

    Attributes:
        id: the model's id for the call; results are sent back under it.
        name: the tool name, as offered (see :class:`~loom.tools.ToolNameMap`).
        arguments: the arguments as the model wrote them: a JSON text (OpenAI), or an
            already-parsed object (some servers).
    """

    id: str
    name: str
    arguments: str | Mapping[str, Any] = "{}"

    def arguments_text(self) -> str:
        """The arguments as a JSON text (as OpenAI messages carry them)."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)

    def to_openai(self) -> dict[str, Any]:
        """As an item of an assistant message's ``tool_calls``."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments_text()},
        }


@dataclass(frozen=True, slots=True)
class ModelTurn:
    """What the model answered: text, tool calls, or both.

    Attributes:
        text: the message content, if any.
        tool_calls: the calls it asks for; none means it has answered.
    """

    text: str | None = None
    tool_calls: Sequence[ToolCall] = ()

    @classmethod
    def answer(cls, text: str) -> ModelTurn:
        """A final answer."""
        return cls(text=text)

    @classmethod
    def calls(cls, *tool_calls: ToolCall, text: str | None = None) -> ModelTurn:
        """A turn that asks for ``tool_calls``."""
        return cls(text=text, tool_calls=tuple(tool_calls))

    def to_message(self) -> Message:
        """As the assistant message that goes into the transcript."""
        message: Message = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        return message


@runtime_checkable
class ChatModel(Protocol):
    """A chat model that can call tools: the OpenAI-compatible client implements it.

    :meth:`complete` gets the transcript so far and the tools on offer, both in the
    OpenAI chat-completions shape, and returns the model's next turn. It raises on a
    failure of the model itself (network, server); the orchestrator lets that through.
    """

    async def complete(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> ModelTurn:
        """The model's next turn for ``messages`` with ``tools`` on offer."""
        ...
