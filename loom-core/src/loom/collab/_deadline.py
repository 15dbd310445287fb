"""Deadlines: one timer for all of a party's waiting requests.

A request that completes in microseconds should not pay for a timer of its own (creating
it, pushing it on the loop's heap, cancelling it, and the heap clean-ups that follow). The
party keeps its waiting requests in insertion order with their deadlines and one loop timer,
set for the earliest deadline it knows; a request that ends just leaves the table. When the
timer fires, it expires what is due and sets itself for the next deadline still waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Deadlines"]


class Deadlines:
    """Calls ``expire()`` for each key whose deadline (loop time) passes before removal."""

    __slots__ = ("_handle", "_loop", "_waiting", "_when")

    def __init__(self) -> None:
        self._waiting: dict[object, tuple[float, Callable[[], None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._when = float("inf")

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, key: object, when: float, expire: Callable[[], None]) -> None:
        """Call ``expire()`` at loop time ``when`` unless ``key`` is removed first."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or the party moved to a new loop
            self._cancel()
            self._loop = loop
        self._waiting[key] = (when, expire)
        if when < self._when:
            self._schedule(loop, when)

    def remove(self, key: object) -> None:
        """Forget ``key``; its timer stays set until it fires or an earlier one replaces it."""
        self._waiting.pop(key, None)

    def _schedule(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._when = when
        self._handle = loop.call_at(when, self._fire)

    def _cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._when = float("inf")

    def _fire(self) -> None:
        self._handle = None
        self._when = float("inf")
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        due = [key for key, (when, _) in self._waiting.items() if when <= now]
        for key in due:
            _, expire = self._waiting.pop(key)
            expire()
        if self._waiting:
            self._schedule(loop, min(when for when, _ in self._waiting.values()))
