"""SIGINT and SIGTERM for a running app: the first asks it to stop, the next ones hurry it."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

__all__ = ["install_signal_handlers"]


def install_signal_handlers(
    on_signal: Callable[[signal.Signals], None],
) -> Callable[[], None]:
    """Call ``on_signal`` on SIGINT and SIGTERM in the running loop.

    Returns:
        A function that removes the handlers. Where signals cannot be handled (not the
        main thread, or Windows) nothing is installed and it does nothing.
    """
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(signum)

    def remove() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)

    return remove
