"""A chat model that replays a script: for tests and demos without a model server."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from loom.errors import LoomError
from loom.tools._model import Message, ModelTurn, ToolSpec

__all__ = ["ScriptExhaustedError", "ScriptedModel", "ScriptedRequest", "Step"]

#: A script step: a turn, or a function of the request that returns one (or an awaitable).
Step = (
    ModelTurn | Callable[[Sequence[Message], Sequence[ToolSpec]], ModelTurn | Awaitable[ModelTurn]]
)


class ScriptExhaustedError(LoomError, LookupError):
    """The scripted model was asked for more turns than its script has."""


@dataclass(frozen=True, slots=True)
class ScriptedRequest:
    """What the model was asked: the messages and tools of one ``complete`` call."""

    messages: list[Message]
    tools: list[ToolSpec]


class ScriptedModel:
    """A :class:`~loom.tools.ChatModel` that answers each request with the next step of a
    script, and records every request.

    Args:
        script: the turns, in order; a callable step gets the request and returns the
            turn (it may be async, e.g. to wait for something).
        repeat_last: keep answering with the last step once the script is used up;
            otherwise an extra request raises :class:`ScriptExhaustedError`.

    Example:
        >>> model = ScriptedModel([ModelTurn.answer("42")])
    """

    def __init__(self, script: Iterable[Step], *, repeat_last: bool = False) -> None:
        self._script = list(script)
        if not self._script:
            raise ValueError("a script needs at least one step")
        self._repeat_last = repeat_last
        self.requests: list[ScriptedRequest] = []

    async def complete(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> ModelTurn:
        """The next step's turn."""
        index = len(self.requests)
        self.requests.append(ScriptedRequest(list(messages), list(tools)))
        if index >= len(self._script):
            if not self._repeat_last:
                raise ScriptExhaustedError(
                    f"scripted model asked for turn {index + 1}; the script has {len(self._script)}"
                )
            index = len(self._script) - 1
        step = self._script[index]
        if isinstance(step, ModelTurn):
            return step
        turn = step(messages, tools)
        if inspect.isawaitable(turn):
            turn = await turn
        return turn
