"""SIGINT/SIGTERM handlers shared by everything that runs remote agents on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import weakref
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["STOP_SIGNALS", "stop_signals"]

#: The signals that stop running remote agents.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_scopes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Scope] = weakref.WeakKeyDictionary()


class _Previous:
    """What handled one signal before the scope installed its own."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sig: signal.Signals) -> None:
        self.sig = sig
        self.python_handler = signal.getsignal(sig)
        # asyncio keeps a loop's handlers privately: reading them is the only way to put a
        # handler someone else added with add_signal_handler back as it was.
        handle = getattr(loop, "_signal_handlers", {}).get(sig)
        self.loop_callback: tuple[Callable[..., Any], tuple[Any, ...]] | None = None
        if isinstance(handle, asyncio.Handle) and not handle.cancelled():
            self.loop_callback = (handle._callback, tuple(handle._args))  # type: ignore[attr-defined]

    def restore(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_signal_handler(self.sig)
        if self.loop_callback is not None:
            callback, args = self.loop_callback
            loop.add_signal_handler(self.sig, callback, *args)
        elif self.python_handler is not None:
            # asyncio.Runner's own SIGINT handler (it cancels the main task), or the app's.
            signal.signal(self.sig, self.python_handler)


class _Scope:
    """One set of handlers per loop: a signal calls every member's callback; the handlers
    that were there before come back when the last member leaves."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.members: list[Callable[[], None]] = []
        self.previous: list[_Previous] = []
        for sig in STOP_SIGNALS:
            previous = _Previous(loop, sig)
            try:
                loop.add_signal_handler(sig, self._fire)
            except (NotImplementedError, RuntimeError):  # not on this platform or thread
                continue
            self.previous.append(previous)

    def _fire(self) -> None:
        for member in tuple(self.members):
            member()

    def close(self) -> None:
        for previous in reversed(self.previous):
            previous.restore(self.loop)
        self.previous.clear()


@contextlib.contextmanager
def stop_signals(on_signal: Callable[[], None]) -> Iterator[bool]:
    """Call ``on_signal`` on SIGINT or SIGTERM while the block runs.

    Every block open on the running loop shares one set of handlers, so several remote
    agents run side by side (each in its own block, or together in one) all stop on one
    signal and none removes another's handlers. The handlers that were installed before the
    first block opened (the app's, asyncio.Runner's) are put back when the last one closes.

    Yields:
        Whether the handlers are installed (False where the platform or the thread cannot
        install them: off the main thread, on Windows).
    """
    loop = asyncio.get_running_loop()
    scope = _scopes.get(loop)
    if scope is None:
        scope = _scopes[loop] = _Scope(loop)
    scope.members.append(on_signal)
    try:
        yield bool(scope.previous)
    finally:
        scope.members.remove(on_signal)
        if not scope.members:
            del _scopes[loop]
            scope.close()
