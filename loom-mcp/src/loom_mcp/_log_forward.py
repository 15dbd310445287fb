"""Server mode: Loom's log records to the MCP clients that asked for them.

A client's ``logging/setLevel`` registers it as a sink: from then on each record of the
``loom`` loggers at or above its level is sent to it as ``notifications/message``
(``data`` the formatted message, ``logger`` the record's logger). Each client has a
bounded buffer: when it is full the new record is dropped and counted, and once the
client has caught up it is told how many were dropped, in one warning.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from typing import Any

import mcp_types

__all__ = ["LogForwarder", "mcp_level", "python_level"]

_PYTHON_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO + 5,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL + 5,
    "emergency": logging.CRITICAL + 10,
}
DROPPED_LOGGER = "loom.mcp.server"


def python_level(level: str) -> int:
    """The ``logging`` level of an MCP level name (``info`` for an unknown one)."""
    return _PYTHON_LEVELS.get(level, logging.INFO)


def mcp_level(levelno: int) -> mcp_types.LoggingLevel:
    """The MCP level of a ``logging`` level."""
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


class _Sink:
    """One client: its level, its bounded buffer, and the task that sends."""

    def __init__(self, session: Any, levelno: int, capacity: int) -> None:
        self.session = session
        self.levelno = levelno
        self.capacity = capacity
        self.buffer: collections.deque[tuple[int, str, str]] = collections.deque()
        self.dropped = 0
        self.reported = 0
        self.lock = threading.Lock()
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def offer(self, levelno: int, logger: str, message: str) -> None:
        with self.lock:
            if len(self.buffer) >= self.capacity:
                self.dropped += 1
                return
            was_empty = not self.buffer
            self.buffer.append((levelno, logger, message))
        if was_empty:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                self.loop.call_soon_threadsafe(self.wake.set)

    def take(self) -> tuple[list[tuple[int, str, str]], int]:
        with self.lock:
            records = list(self.buffer)
            self.buffer.clear()
            newly_dropped = self.dropped - self.reported
            self.reported = self.dropped
        return records, newly_dropped


class LogForwarder(logging.Handler):
    """A handler on the ``loom`` logger that forwards records to subscribed MCP clients.

    Args:
        logger: the logger whose records are forwarded (``loom``, with its children).
        capacity: records buffered per client; more are dropped and counted.
    """

    def __init__(self, logger: str = "loom", *, capacity: int = 256) -> None:
        super().__init__(logging.NOTSET)
        self.logger = logging.getLogger(logger)
        self.capacity = capacity
        self._sinks: dict[int, _Sink] = {}
        self._original_level = self.logger.level
        self._original_effective = self.logger.getEffectiveLevel()
        self._attached = False

    @property
    def dropped(self) -> int:
        """Records dropped so far for every client together."""
        return sum(sink.dropped for sink in list(self._sinks.values()))

    def set_level(self, key: object, session: Any, level: str) -> bool:
        """Send records at ``level`` and above to ``session`` (replacing its old level).

        Args:
            key: identifies the client's connection (one sink per connection).
            session: has ``send_notification`` (the SDK's ``ServerSession``).
            level: an MCP level name.

        Returns:
            Whether this connection is new (call :meth:`remove` when it ends).
        """
        levelno = python_level(level)
        sink = self._sinks.get(id(key))
        is_new = sink is None
        if sink is None:
            sink = _Sink(session, levelno, self.capacity)
            self._sinks[id(key)] = sink
            sink.task = sink.loop.create_task(self._forward(id(key), sink), name="loom-mcp:logs")
        else:
            sink.session = session
            sink.levelno = levelno
        self._adjust()
        return is_new

    def remove(self, key: object) -> None:
        """Stop sending to the connection ``key`` (it ended)."""
        self._remove(id(key))

    def close(self) -> None:
        """Stop forwarding to every client and detach from the logger."""
        for key in list(self._sinks):
            self._remove(key)
        super().close()

    def emit(self, record: logging.LogRecord) -> None:
        sinks = [s for s in list(self._sinks.values()) if record.levelno >= s.levelno]
        if not sinks:
            return
        try:
            message = self.format(record)
        except Exception:  # noqa: BLE001  # a bad record must not break the caller
            self.handleError(record)
            return
        for sink in sinks:
            sink.offer(record.levelno, record.name, message)

    async def _forward(self, key: int, sink: _Sink) -> None:
        try:
            while True:
                await sink.wake.wait()
                sink.wake.clear()
                records, dropped = sink.take()
                for levelno, logger, message in records:
                    await _send(sink.session, mcp_level(levelno), logger, message)
                if dropped:
                    note = f"{dropped} log records dropped: the client did not keep up"
                    await _send(sink.session, "warning", DROPPED_LOGGER, note)
        except Exception:  # noqa: BLE001  # the client is gone: stop sending to it
            self._sinks.pop(key, None)
            self._adjust()

    def _remove(self, key: int) -> None:
        sink = self._sinks.pop(key, None)
        if sink is not None and sink.task is not None:
            sink.task.cancel()
        self._adjust()

    def _adjust(self) -> None:
        """Attach while there are clients, and let the logger produce what they asked for."""
        if not self._sinks:
            if self._attached:
                self.logger.removeHandler(self)
                self.logger.setLevel(self._original_level)
                self._attached = False
            return
        if not self._attached:
            self._original_level = self.logger.level
            self._original_effective = self.logger.getEffectiveLevel()
            self.logger.addHandler(self)
            self._attached = True
        wanted = min(sink.levelno for sink in self._sinks.values())
        # Lower the level for a client that wants more; never raise it above what the
        # operator configured (their stderr keeps what it had).
        self.logger.setLevel(min(wanted, self._original_effective))


async def _send(session: Any, level: mcp_types.LoggingLevel, logger: str, message: str) -> None:
    notification = mcp_types.LoggingMessageNotification(
        params=mcp_types.LoggingMessageNotificationParams(level=level, logger=logger, data=message)
    )
    await session.send_notification(notification)
