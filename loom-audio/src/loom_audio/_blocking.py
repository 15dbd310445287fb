"""Bounded PortAudio calls: each runs on a daemon thread, one at a time, with a time limit.

PortAudio is not thread-safe, and a sound server that dies at the wrong moment can leave an
open or close call waiting forever inside the ALSA or PulseAudio client. Run on a daemon
thread with a deadline, such a call fails with a clear error instead of hanging the event
loop, and the thread cannot keep the process from exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from loom_audio._errors import AudioDeviceError

__all__ = ["PORTAUDIO_LOCK", "call_bounded", "portaudio_lock"]

T = TypeVar("T")

#: Held around every PortAudio call that is not a stream callback (reentrant: an open looks
#: up its device under it).
PORTAUDIO_LOCK = threading.RLock()


@contextlib.contextmanager
def portaudio_lock(what: str, timeout: float = 10.0) -> Iterator[None]:
    """Hold :data:`PORTAUDIO_LOCK` for a quick call from the caller's thread.

    Raises:
        AudioDeviceError: another PortAudio call has held it for ``timeout`` (stuck).
    """
    if not PORTAUDIO_LOCK.acquire(timeout=timeout):
        raise AudioDeviceError(
            f"{what}: PortAudio is busy with a call that has not returned for {timeout:g} s "
            "(the sound server may be stuck)"
        )
    try:
        yield
    finally:
        PORTAUDIO_LOCK.release()


async def call_bounded(
    function: Callable[[], T],
    *,
    timeout: float,
    what: str,
    cleanup: Callable[[T], Any] | None = None,
) -> T:
    """Run ``function`` on a daemon thread under :data:`PORTAUDIO_LOCK`, for ``timeout`` at most.

    Args:
        function: the blocking call.
        timeout: seconds to wait for it (the lock included).
        what: the call, for the error message ("opening 'pulse'").
        cleanup: called (on the thread) with the result when it arrives after the caller
            gave up, e.g. to close a stream nobody will use.

    Raises:
        AudioDeviceError: the call did not return in time.
        Exception: what ``function`` raised.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    abandoned = threading.Event()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def run() -> None:
        try:
            with PORTAUDIO_LOCK:
                result = function()
        except BaseException as exc:  # noqa: BLE001  # handed to the waiting coroutine
            if not abandoned.is_set():
                _call_soon(loop, deliver, future.set_exception, exc)
            return
        if abandoned.is_set():
            if cleanup is not None:
                with PORTAUDIO_LOCK:
                    cleanup(result)
            return
        _call_soon(loop, deliver, future.set_result, result)

    threading.Thread(target=run, name=f"loom-audio: {what}", daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except TimeoutError:
        abandoned.set()
        raise AudioDeviceError(
            f"{what} did not finish within {timeout:g} s (the sound server may be stuck); "
            "giving up on it"
        ) from None
    except asyncio.CancelledError:
        abandoned.set()
        raise


def _call_soon(loop: asyncio.AbstractEventLoop, *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        loop.call_soon_threadsafe(*args)
