"""A model with no model: reproducible answers computed from the prompt.

It lets the tool loop, the router, tests and the demo run where no LLM is configured, and
says so in every answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loom.models._assemble import openai_tool
from loom.models._chat import Location, MessageLike, ModelTurn, StreamDelta, ToolLike, Usage
from loom.tools import ToolCall

__all__ = ["DETERMINISTIC_LABEL", "DeterministicModel"]

#: Every answer starts with this, so nobody mistakes it for a language model's.
DETERMINISTIC_LABEL = "[deterministic model, no LLM configured]"

_NAME_CHARS = r"A-Za-z0-9_\-"
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class _Tool:
    name: str
    parameters: Mapping[str, Any]


def _content(message: MessageLike, index: int) -> tuple[str, str | None, str | None]:
    """(role, content, name or tool_call_id) of a message."""
    if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
        raise ValueError(f"message {index} is not a mapping with a 'role'")
    name = message.get("name") or message.get("tool_call_id")
    content = message.get("content")
    return (
        message["role"],
        content if isinstance(content, str) else None,
        name if isinstance(name, str) else None,
    )


def _tool(tool: ToolLike, index: int) -> _Tool:
    try:
        function = openai_tool(tool)["function"]
    except ValueError as e:
        raise ValueError(f"tool {index}: {e}") from None
    return _Tool(function["name"], function["parameters"])


def _call_names(messages: Sequence[MessageLike]) -> dict[str, str]:
    """Tool call id to tool name, from the assistant messages' ``tool_calls``."""
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            if isinstance(call, Mapping):
                function = call.get("function")
                if isinstance(function, Mapping) and isinstance(call.get("id"), str):
                    names[call["id"]] = str(function.get("name", ""))
    return names


def _pattern(name: str) -> re.Pattern[str]:
    # "text_upper" also matches "text.upper" and "text:upper": tool names are often
    # capability names with the dots and colons replaced.
    parts = [re.escape(p) for p in re.split(r"[_.:]", name)]
    body = r"[_.:]".join(parts)
    return re.compile(rf"(?<![{_NAME_CHARS}.:]){body}(?![{_NAME_CHARS}])")


class DeterministicModel:
    """A chat model that needs no model: the same conversation always gets the same answer.

    Rules, in order:

    1. If tool results follow the last user message, answer with a summary of them.
    2. If the last user message names offered tools (``text_upper`` also matches
       ``text.upper``), call each, in the order named. Arguments: a JSON object written
       right after the name (``get_weather {"city": "Oslo"}`` or ``get_weather({...})``);
       else, for a tool with a single string parameter, the text after the name; else
       the schema's defaults.
    3. Otherwise, answer with a label, the start of the message and a digest of the
       whole conversation, so different prompts get visibly different answers.

    Every text answer starts with :data:`DETERMINISTIC_LABEL`.

    Args:
        name: the provider name reported in turns and routing decisions.
    """

    location = Location.LOCAL

    def __init__(self, name: str = "deterministic") -> None:
        self.name = name
        self.model = "deterministic"

    def __repr__(self) -> str:
        return f"DeterministicModel(name={self.name!r})"

    def cost_of(self, turn: ModelTurn) -> float:
        """Always 0: nothing is paid for."""
        return 0.0

    async def aclose(self) -> None:
        """Nothing to release."""

    async def complete(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[ToolLike] = (),
        **_: Any,
    ) -> ModelTurn:
        """Answer by the rules above; extra keyword options (``tool_choice``...) are ignored.

        Raises:
            ValueError: no messages, or a tool of the wrong shape.
        """
        return self._answer(messages, [_tool(t, i) for i, t in enumerate(tools)])

    async def stream(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[ToolLike] = (),
        **_: Any,
    ) -> AsyncGenerator[StreamDelta, None]:
        """The same answer as :meth:`complete`, word by word and call by call."""
        turn = self._answer(messages, [_tool(t, i) for i, t in enumerate(tools)])
        for word in re.findall(r"\S+\s*", turn.text or ""):
            yield StreamDelta(text=word)
        for index, call in enumerate(turn.tool_calls):
            yield StreamDelta(
                tool_call_index=index,
                tool_call_id=call.id,
                tool_name=call.name,
                arguments=call.arguments_text(),
            )
        yield StreamDelta(finish_reason=turn.finish_reason, usage=turn.usage)

    # -- the rules ---------------------------------------------------------------------

    def _answer(self, messages: Sequence[MessageLike], tools: list[_Tool]) -> ModelTurn:
        if not messages:
            raise ValueError(f"{self.name}: a request needs at least one message")
        parsed = [_content(m, i) for i, m in enumerate(messages)]
        last_user = max((i for i, (role, _, _) in enumerate(parsed) if role == "user"), default=-1)
        prompt = (parsed[last_user][1] or "") if last_user >= 0 else ""
        digest = hashlib.sha256(
            json.dumps([list(p) for p in parsed], sort_keys=True).encode()
        ).hexdigest()[:12]
        prompt_words = sum(len((c or "").split()) for _, c, _ in parsed)
        results = [(n, c) for role, c, n in parsed[last_user + 1 :] if role == "tool"]
        if results:
            names = _call_names(messages)
            results = [(names.get(n or "", n), c) for n, c in results]
            lines = "; ".join(f"{n or 'tool'} -> {c}" for n, c in results)
            return self._text(f"{DETERMINISTIC_LABEL} Tool results: {lines}", prompt_words)
        calls = self._calls(prompt, tools, digest) if tools else []
        if calls:
            return ModelTurn(
                tool_calls=tuple(calls),
                finish_reason="tool_calls",
                model=self.model,
                provider=self.name,
                usage=Usage(prompt_words, sum(len(c.arguments_text().split()) for c in calls)),
            )
        snippet = " ".join(prompt.split())[:160] or "(no user message)"
        return self._text(f"{DETERMINISTIC_LABEL} You said: {snippet} [{digest}]", prompt_words)

    def _text(self, text: str, prompt_words: int) -> ModelTurn:
        return ModelTurn(
            text=text,
            finish_reason="stop",
            model=self.model,
            provider=self.name,
            usage=Usage(prompt_words, len(text.split())),
        )

    def _calls(self, prompt: str, tools: list[_Tool], digest: str) -> list[ToolCall]:
        found: list[tuple[int, int, _Tool]] = []
        for tool in tools:
            match = _pattern(tool.name).search(prompt)
            if match is not None:
                found.append((match.start(), match.end(), tool))
        found.sort(key=lambda f: f[0])
        calls: list[ToolCall] = []
        for n, (_, end, tool) in enumerate(found):
            following = found[n + 1][0] if n + 1 < len(found) else len(prompt)
            arguments = self._arguments(prompt[end:following], prompt, tool)
            calls.append(
                ToolCall(
                    id=f"call_{digest}_{n}",
                    name=tool.name,
                    arguments=json.dumps(arguments, sort_keys=True),
                )
            )
        return calls

    def _arguments(self, after: str, prompt: str, tool: _Tool) -> dict[str, Any]:
        text = after.lstrip()
        if text.startswith("("):
            text = text[1:].lstrip()
        if text.startswith("{"):
            try:
                value, _ = _DECODER.raw_decode(text)
            except json.JSONDecodeError:
                value = None
            if isinstance(value, dict):
                return value
        properties = tool.parameters.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        strings = [
            k for k, v in properties.items() if isinstance(v, Mapping) and v.get("type") == "string"
        ]
        if len(properties) == 1 and len(strings) == 1:
            value_text = after.strip().lstrip(":,-").rstrip(" ,;").strip().strip("\"'")
            return {strings[0]: value_text or prompt}
        return {
            k: v["default"]
            for k, v in properties.items()
            if isinstance(v, Mapping) and "default" in v
        }
