"""Bounded concurrency for one plugin: worker threads, and a bounded line of waiting calls.

wasmtime releases the GIL while guest code runs, so calls go to worker threads, as many as
the plugin's ``max_concurrency``. The gate counts calls in flight (running and waiting) and
turns the next one away, retryable, past a bound. It hands work over with a
``SimpleQueue`` and answers the event loop with ``call_soon_threadsafe``, about 15 µs
cheaper per call here than ``ThreadPoolExecutor`` with ``wrap_future`` and ``wait_for``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Busy", "Gate"]

T = TypeVar("T")

#: Calls allowed to wait per running slot.
WAITING_PER_SLOT = 8
#: How long interpreter exit waits for a worker to finish the call it is running.
_EXIT_JOIN_S = 5.0


class Busy(Exception):  # a signal, turned into PROVIDER_UNAVAILABLE
    """The plugin has as many calls in flight as it may hold, or it is closed."""


class _Job(Generic[T]):
    __slots__ = ("cancelled", "fn", "future", "loop")

    def __init__(
        self, fn: Callable[[], T], loop: asyncio.AbstractEventLoop, future: asyncio.Future[T]
    ) -> None:
        self.fn = fn
        self.loop = loop
        self.future = future
        self.cancelled = False


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller gave up (timeout or cancellation)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Gate:
    """Up to ``slots`` worker threads; at most ``slots * 9`` calls in flight."""

    def __init__(self, name: str, slots: int) -> None:
        self.name = name
        self.slots = slots
        self.bound = slots * (1 + WAITING_PER_SLOT)
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._in_flight = 0
        self._closed = False
        _gates.add(self)

    @property
    def in_flight(self) -> int:
        """Calls running or waiting now (a call abandoned by its caller counts until it ends)."""
        return self._in_flight

    async def run(self, fn: Callable[[], T], timeout_s: float) -> T:
        """Run ``fn`` on a worker and await it for at most ``timeout_s``.

        Raises:
            Busy: no room, or the gate is closed.
            TimeoutError: it did not end in time (it keeps its slot until it does).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        job = _Job(fn, loop, future)
        with self._lock:
            if self._closed:
                raise Busy("the plugin is closed")
            if self._in_flight >= self.bound:
                raise Busy(f"{self._in_flight} calls in flight, the bound is {self.bound}")
            self._in_flight += 1
            if len(self._threads) < min(self.slots, self._in_flight):
                self._start_worker()
        self._queue.put(job)
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except BaseException:
            job.cancelled = True  # a worker that has not started it skips it
            raise

    def _start_worker(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"wasm-{self.name}-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        get = self._queue.get
        while (job := get()) is not None:
            if not job.cancelled:
                try:
                    result, error = job.fn(), None
                except BaseException as exc:  # noqa: BLE001  # handed to the caller, never lost
                    result, error = None, exc
            with self._lock:  # free the slot before the caller hears back
                self._in_flight -= 1
            if not job.cancelled:
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                    job.loop.call_soon_threadsafe(_settle, job.future, result, error)

    def close(self, *, join_s: float = 0.0) -> None:
        """Refuse new calls; waiting ones are skipped, running ones end at their deadline.

        Args:
            join_s: how long to wait for the workers to finish.
        """
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        # Calls still waiting never start: each is answered Busy; then each worker stops
        # after the call it is running.
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                continue
            job.cancelled = True
            with self._lock:
                self._in_flight -= 1
            error = Busy("the plugin was closed before the call started")
            with contextlib.suppress(RuntimeError):  # that loop is closed
                job.loop.call_soon_threadsafe(_settle, job.future, None, error)
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join(join_s)


_gates: weakref.WeakSet[Gate] = weakref.WeakSet()


@atexit.register
def _close_gates() -> None:
    # Workers are daemon threads: stop them, and let a call in progress reach its deadline
    # (its Store is closed by the runner) before the interpreter goes away.
    for gate in list(_gates):
        gate.close(join_s=_EXIT_JOIN_S)
