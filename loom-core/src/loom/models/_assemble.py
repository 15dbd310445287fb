"""Joining a streamed answer into one :class:`ModelTurn`; reading OpenAI chunk JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loom.models._chat import ModelTurn, StreamDelta, Usage
from loom.tools import ToolCall

__all__ = [
    "TurnAssembler",
    "deltas_from_chunk",
    "openai_tool",
    "turn_from_completion",
    "usage_from",
]

_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


def openai_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """``tool`` in the OpenAI ``{"type": "function", "function": {...}}`` shape; the function
    alone (``{"name", "description", "parameters"}``) is wrapped.

    Raises:
        ValueError: ``tool`` is neither shape.
    """
    if isinstance(tool, Mapping):
        function = tool.get("function") if tool.get("type") == "function" else tool
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            out: dict[str, Any] = {
                "name": function["name"],
                "parameters": dict(function.get("parameters") or _EMPTY_PARAMETERS),
            }
            if function.get("description"):
                out["description"] = str(function["description"])
            return {"type": "function", "function": out}
    raise ValueError("not a function tool in the OpenAI shape (no function name)")


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


class TurnAssembler:
    """Collects :class:`StreamDelta` pieces into a :class:`ModelTurn`.

    Text pieces are joined in order; tool-call pieces are grouped by their index (the id
    and name arrive on a call's first piece, its arguments in fragments after).

    Example:
        >>> a = TurnAssembler()
        >>> a.add(StreamDelta(text="Hel"))
        >>> a.add(StreamDelta(text="lo", finish_reason="stop"))
        >>> a.turn().text
        'Hello'
    """

    def __init__(self, *, model: str = "", provider: str = "") -> None:
        self._text: list[str] = []
        self._calls: dict[int, _PartialCall] = {}
        self._last_index: int | None = None
        self.finish_reason: str | None = None
        self.model = model
        self.provider = provider
        self.usage: Usage | None = None

    @property
    def empty(self) -> bool:
        """Whether nothing has been added yet."""
        return not self._text and not self._calls and self.finish_reason is None

    def add(self, delta: StreamDelta) -> None:
        """Add one piece."""
        if delta.text:
            self._text.append(delta.text)
        if (
            delta.tool_call_index is not None
            or delta.tool_call_id
            or delta.tool_name
            or delta.arguments
        ):
            index = self._index_for(delta)
            call = self._calls.setdefault(index, _PartialCall())
            if delta.tool_call_id:
                call.id = delta.tool_call_id
            if delta.tool_name:
                call.name = delta.tool_name
            call.arguments += delta.arguments
            self._last_index = index
        if delta.finish_reason:
            self.finish_reason = delta.finish_reason
        if delta.usage is not None:
            self.usage = delta.usage

    def _index_for(self, delta: StreamDelta) -> int:
        if delta.tool_call_index is not None:
            return delta.tool_call_index
        # Some servers leave the index out: a new id starts a new call, else continue.
        last = self._last_index
        if last is None:
            return 0
        if delta.tool_call_id and self._calls[last].id not in ("", delta.tool_call_id):
            return max(self._calls) + 1
        return last

    def turn(self) -> ModelTurn:
        """The answer so far, as one turn.

        Raises:
            ValueError: a tool call never received its name.
        """
        calls: list[ToolCall] = []
        for index in sorted(self._calls):
            partial = self._calls[index]
            if not partial.name:
                raise ValueError(f"streamed tool call at index {index} has no function name")
            calls.append(
                ToolCall(
                    id=partial.id or f"call_{index}",
                    name=partial.name,
                    arguments=partial.arguments or "{}",
                )
            )
        return ModelTurn(
            text="".join(self._text) or None,
            tool_calls=tuple(calls),
            finish_reason=self.finish_reason,
            model=self.model,
            provider=self.provider,
            usage=self.usage,
        )


def usage_from(value: object) -> Usage | None:
    """A :class:`Usage` from an OpenAI ``usage`` object, or None when there is none."""
    if not isinstance(value, Mapping):
        return None
    prompt = value.get("prompt_tokens", 0)
    completion = value.get("completion_tokens", 0)
    return Usage(
        prompt_tokens=prompt if isinstance(prompt, int) else 0,
        completion_tokens=completion if isinstance(completion, int) else 0,
    )


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def deltas_from_chunk(chunk: Mapping[str, Any]) -> list[StreamDelta]:
    """The pieces of choice 0 in one ``chat.completion.chunk``.

    Raises:
        ValueError: the chunk is not shaped like a chat completion chunk.
    """
    usage = usage_from(chunk.get("usage"))
    choices = chunk.get("choices", [] if usage is not None else None)
    if not isinstance(choices, list):
        raise ValueError("chunk has no 'choices' list")
    out: list[StreamDelta] = []
    for choice in choices:
        if not isinstance(choice, Mapping):
            raise ValueError("a choice is not an object")
        if choice.get("index", 0) != 0:
            continue  # n > 1 is not requested; ignore other choices if a server sends them
        delta = choice.get("delta") or {}
        if not isinstance(delta, Mapping):
            raise ValueError("'delta' is not an object")
        finish = choice.get("finish_reason")
        finish_reason = finish if isinstance(finish, str) else None
        text = _str(delta.get("content"))
        calls = delta.get("tool_calls") or []
        if not isinstance(calls, list):
            raise ValueError("'delta.tool_calls' is not a list")
        if text or (finish_reason and not calls):  # a role-only chunk carries nothing
            out.append(StreamDelta(text=text, finish_reason=None if calls else finish_reason))
        for n, call in enumerate(calls):
            if not isinstance(call, Mapping):
                raise ValueError("a tool call delta is not an object")
            function = call.get("function") or {}
            if not isinstance(function, Mapping):
                raise ValueError("'function' of a tool call delta is not an object")
            index = call.get("index")
            out.append(
                StreamDelta(
                    tool_call_index=index if isinstance(index, int) else None,
                    tool_call_id=_str(call.get("id")) or None,
                    tool_name=_str(function.get("name")) or None,
                    arguments=_str(function.get("arguments")),
                    finish_reason=finish_reason if n == len(calls) - 1 else None,
                )
            )
    if usage is not None:
        out.append(StreamDelta(usage=usage))
    return out


def turn_from_completion(body: object, *, provider: str) -> ModelTurn:
    """A :class:`ModelTurn` from a non-streamed ``chat.completion`` body.

    Raises:
        ValueError: the body is not shaped like a chat completion.
    """
    if not isinstance(body, Mapping):
        raise ValueError(f"expected a JSON object, got a JSON {type(body).__name__}")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("no 'choices' in the completion")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, Mapping) else None
    if not isinstance(message, Mapping):
        raise ValueError("choices[0] has no 'message' object")
    calls: list[ToolCall] = []
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise ValueError("'message.tool_calls' is not a list")
    for index, raw in enumerate(raw_calls):
        function = raw.get("function") if isinstance(raw, Mapping) else None
        if not isinstance(function, Mapping) or not _str(function.get("name")):
            raise ValueError(f"tool call {index} has no function name")
        arguments = function.get("arguments")
        if isinstance(arguments, Mapping):  # some servers send an object, not its text
            arguments = json.dumps(arguments)
        calls.append(
            ToolCall(
                id=_str(raw.get("id")) or f"call_{index}",
                name=_str(function.get("name")),
                arguments=_str(arguments) or "{}",
            )
        )
    text = _str(message.get("content"))
    finish = choice.get("finish_reason")
    if not text and not calls and finish != "length":
        raise ValueError("the completion has neither content nor tool calls")
    return ModelTurn(
        text=text or None,
        tool_calls=tuple(calls),
        finish_reason=finish if isinstance(finish, str) else None,
        model=_str(body.get("model")),
        provider=provider,
        usage=usage_from(body.get("usage")),
    )
