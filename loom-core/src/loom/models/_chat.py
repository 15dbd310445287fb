"""Chat data beyond what the tool loop needs: where a model runs, usage, streamed pieces.

Messages and tools are in the OpenAI chat-completions shape (plain dicts), and a turn is
a :class:`loom.tools.ModelTurn`, so every model here is a :class:`loom.tools.ChatModel`
that :class:`~loom.tools.ToolOrchestrator` can drive. The turn the clients return is the
subclass :class:`ModelTurn`, which adds the finish reason, the model, the provider and the
token usage.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

from loom.tools import ChatModel
from loom.tools import ModelTurn as _BaseTurn

__all__ = [
    "ChatModel",
    "Location",
    "MessageLike",
    "ModelTurn",
    "StreamDelta",
    "StreamingChatModel",
    "ToolLike",
    "Usage",
]

#: A message in the OpenAI shape: ``{"role": "user", "content": "..."}``, an assistant
#: message with ``tool_calls``, or ``{"role": "tool", "tool_call_id": ..., "content": ...}``.
MessageLike: TypeAlias = Mapping[str, Any]
#: A tool in the OpenAI shape ``{"type": "function", "function": {...}}``, or the function
#: alone: ``{"name": ..., "description": ..., "parameters": {...}}``.
ToolLike: TypeAlias = Mapping[str, Any]


class Location(enum.StrEnum):
    """Where a provider runs, for the router's privacy guarantee.

    ``LOCAL``: on this machine or a host you run (llama.cpp, vLLM, the deterministic
    model); requests of every privacy level may go there. ``CLOUD``: anything else;
    ``private`` and ``local-only`` requests never go there. A provider is local only when
    its configuration says so: the safe default is ``CLOUD``.
    """

    LOCAL = "local"
    CLOUD = "cloud"


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a call used, as the server counted them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt and completion tokens together."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ModelTurn(_BaseTurn):
    """A :class:`loom.tools.ModelTurn` with what the server said about it.

    Attributes:
        finish_reason: ``stop``, ``tool_calls``, ``length``, ... as the server said.
        model: the model that answered.
        provider: the provider that served it.
        usage: token counts, when the server reported them.
    """

    finish_reason: str | None = None
    model: str = ""
    provider: str = ""
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """One piece of a streamed answer.

    Attributes:
        text: new text ("" when this piece carries none).
        tool_call_index: for a piece of a tool call, its index in the turn.
        tool_call_id: the call's id, on the first piece of a call.
        tool_name: the call's name, on the first piece of a call.
        arguments: more of the call's arguments text.
        finish_reason: set on the last piece of a choice.
        usage: token counts, on the piece that reports them (usually the last).
    """

    text: str = ""
    tool_call_index: int | None = None
    tool_call_id: str | None = None
    tool_name: str | None = None
    arguments: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


@runtime_checkable
class StreamingChatModel(ChatModel, Protocol):
    """A chat model that can also stream its answer piece by piece."""

    def stream(
        self, messages: Sequence[MessageLike], tools: Sequence[ToolLike] = ()
    ) -> AsyncIterator[StreamDelta]:
        """Answer piece by piece; join the pieces with :class:`~loom.models.TurnAssembler`."""
        ...
