"""What the voice agent says: the responder protocol and the deterministic local responder."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from typing import Protocol

__all__ = ["LocalResponder", "Responder"]

_WORDS = re.compile(r"[a-z0-9']+")
_ECHO = re.compile(
    r"^\W*(?:please\W+)?(?:echo|say|repeat(?:\W+after\W+me)?)\b\W*(.*)$", re.IGNORECASE | re.DOTALL
)
_CAPABILITY_PHRASES = (
    "what can you do",
    "what do you do",
    "capabilities",
    "capability",
    "skills",
    "help",
    "what are you able",
)


class Responder(Protocol):
    """Decides the voice agent's answer to a query.

    Attributes:
        name: shown in ``voice.reply`` events (``local``, a model's name).
    """

    name: str

    async def respond(self, text: str) -> str:
        """The answer to ``text`` ("" to say nothing)."""
        ...


class LocalResponder:
    """A deterministic responder for when no model is configured: it answers the time,
    echoes, and lists what it can do (and the capabilities it is given).

    Args:
        capabilities: capability names to list (or a function giving them).
        clock: gives "now" (for tests); the local time by default.

    Example:
        >>> import asyncio
        >>> asyncio.run(LocalResponder().respond("echo hello world"))
        'hello world'
    """

    name = "local"

    def __init__(
        self,
        capabilities: Sequence[str] | Callable[[], Sequence[str]] = (),
        *,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self._capabilities = capabilities
        self._clock = clock or datetime.datetime.now

    def capabilities(self) -> list[str]:
        """The capability names it lists."""
        found = self._capabilities() if callable(self._capabilities) else self._capabilities
        return sorted(found)

    async def respond(self, text: str) -> str:
        return self.answer(text)

    def answer(self, text: str) -> str:
        """The answer, computed at once (:meth:`respond` without the coroutine)."""
        echo = _ECHO.match(text.strip())
        if echo:
            said = echo.group(1).strip().strip(".!?,;: ")
            return f"{said}." if said else "Echo what? Say echo, then the words."
        words = _WORDS.findall(text.lower())
        joined = " ".join(words)
        if "time" in words and (
            "what" in words or "what's" in words or "tell" in words or len(words) <= 3
        ):
            now = self._clock()
            return f"It is {now.strftime('%I:%M %p').lstrip('0')}."
        if ("date" in words or "day" in words) and (
            "what" in words or "what's" in words or "today" in words
        ):
            now = self._clock()
            return f"Today is {now.strftime('%A, %B')} {now.day}."
        if any(phrase in joined for phrase in _CAPABILITY_PHRASES):
            skills = "I can tell you the time and the date, and echo what you say."
            names = self.capabilities()
            if names:
                return f"{skills} My capabilities are: {', '.join(names)}."
            return skills
        if not words:
            return ""
        return "Sorry, I can only tell the time, echo words, or list what I can do."
