"""Run a coroutine's first step at once, and arm a timer only if it has to wait.

Most capability calls never suspend (a native function that computes, a sandbox call
that runs inline), yet ``asyncio.timeout`` schedules and cancels a timer handle for each
of them: a third of the broker's own cost per call. A coroutine that finishes in its
first step cannot be interrupted by a timeout anyway (asyncio timeouts act only where a
coroutine suspends), so the broker steps it once and enters the timeout only when the
step suspended, then resumes it as ``await`` would have.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["Resume"]


class Resume:
    """The rest of a coroutine that suspended in its first step, as an awaitable.

    Awaiting it passes what the coroutine yields to the task driving the awaiter, and
    what the task sends or throws back to the coroutine: the same as ``yield from``,
    which is what ``await coro`` does, but starting after the first step.

    Args:
        coro: the coroutine, after ``coro.send(None)`` returned ``pending``.
        pending: what that first step yielded (a future, or None for a bare yield).
    """

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self._coro
        pending = self._pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 -- forwarded to the coroutine, as yield from does
                try:
                    pending = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as done:
                    return done.value
