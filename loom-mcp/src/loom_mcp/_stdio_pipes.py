"""The two ends of a stdio server's pipes, as the SDK session sees them.

:class:`StdinWriter` writes each request to the child's stdin from the task that sends it
(no writer task, no memory stream between); :class:`StdoutReader` parses stdout in the
event loop's read callback and hands each message to the session's bounded buffer (no
reader task between). Together they save three event-loop iterations per call over the
SDK's ``stdio_client``, whose tasks hand every message on through zero-buffer streams.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING, Self

import anyio
import anyio.abc
import mcp_types
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectSendStream

    from loom_mcp._stdio import StdioTransport

__all__ = ["StdinWriter", "StdoutReader"]

log = logging.getLogger("loom.mcp.stdio")


class StdinWriter:
    """The session's write stream: each message is written to the child's stdin at once.

    No writer task and no memory stream between the two: the request reaches the pipe in
    the step of the task that sends it, two event-loop iterations sooner. A message is
    handed whole to the pipe transport (which buffers what the pipe cannot take yet), so
    concurrent senders never interleave lines.
    """

    def __init__(
        self,
        stdin: anyio.abc.ByteSendStream,
        reads: MemoryObjectSendStream[SessionMessage | Exception],
    ) -> None:
        self._stdin = stdin
        self._reads = reads
        self._closed = False

    async def send(self, item: SessionMessage, /) -> None:
        """Write one message as a line to the child's stdin.

        Raises:
            anyio.ClosedResourceError: the stream was closed.
            anyio.BrokenResourceError: the child stopped reading (its reads end too).
        """
        if self._closed:
            raise anyio.ClosedResourceError
        data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
        try:
            await self._stdin.send(data.encode() + b"\n")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
            # The child stopped reading: end the session's reads too, so no request
            # waits forever for an answer that cannot come.
            self._reads.close()
            raise anyio.BrokenResourceError from exc

    def close(self) -> None:
        """Refuse further messages (the transport closes stdin itself, flushing it)."""
        self._closed = True

    async def aclose(self) -> None:
        """The same as :meth:`close`."""
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self.close()
        return None


class StdoutReader(asyncio.Protocol):
    """Splits the child's stdout into lines and hands each message to the session.

    Runs in the event loop's read callback. A message goes straight into the session's
    bounded buffer (or to its waiting reader); when that is full, reading pauses and
    :meth:`deliver_backlog` (a task) waits for room, so a flooding server is held back by
    its own full pipe. Stdout's end sets ``owner.ended`` once everything is delivered.
    """

    send: MemoryObjectSendStream[SessionMessage | Exception] | None = None

    def __init__(self, owner: StdioTransport, max_line: int) -> None:
        self._owner = owner
        self._max_line = max_line
        self._pipe: asyncio.ReadTransport | None = None
        self._buffer = bytearray()
        self._discarding = False
        self._session_gone = False
        self._backlog: deque[SessionMessage] = deque()
        self._wake = asyncio.Event()
        self._eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        self._pipe = transport

    def data_received(self, data: bytes) -> None:
        """Parse the complete lines in ``data`` (and what was left of the last chunk)."""
        owner = self._owner
        buffer = self._buffer
        limit = self._max_line
        start = 0
        while True:
            newline = data.find(b"\n", start)
            end = len(data) if newline < 0 else newline
            if not self._discarding:
                if len(buffer) + end - start > limit:
                    self._discarding = True
                    buffer.clear()
                    owner.oversized_lines += 1
                    log.warning(
                        "MCP server %r sent a stdout line longer than %d bytes; discarded",
                        owner.name,
                        limit,
                    )
                else:
                    buffer += data[start:end]
            if newline < 0:
                return
            start = newline + 1
            if self._discarding:
                self._discarding = False
                continue
            item = self._parse(bytes(buffer))
            buffer.clear()
            if item is not None and not self._session_gone:
                self._deliver(item)

    def _deliver(self, item: SessionMessage) -> None:
        if self._backlog:
            self._backlog.append(item)
            return
        assert self.send is not None
        try:
            self.send.send_nowait(item)
        except anyio.WouldBlock:
            self._backlog.append(item)
            if self._pipe is not None:
                self._pipe.pause_reading()
            self._wake.set()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            # Keep draining so a child still writing can reach its exit.
            self._session_gone = True

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Stdout ended: end the session's reads once the backlog is delivered."""
        self._eof = True
        self._wake.set()
        if not self._backlog:
            self._finish()

    def _finish(self) -> None:
        if self.send is not None:
            self.send.close()
        self._owner.ended.set()

    async def deliver_backlog(self) -> None:
        """Deliver what did not fit in the session's buffer, then read on (a task)."""
        send = self.send
        assert send is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._backlog:
                item = self._backlog.popleft()
                try:
                    await send.send(item)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    self._session_gone = True
                    self._backlog.clear()
            if self._eof:
                self._finish()
                return
            if self._pipe is not None and not self._pipe.is_closing():
                self._pipe.resume_reading()

    def _parse(self, line: bytes) -> SessionMessage | None:
        if not line.strip():
            return None
        try:
            message = mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        except (ValidationError, ValueError):
            self._owner.garbage_lines += 1
            if self._owner.garbage_lines <= 5 or self._owner.garbage_lines % 1000 == 0:
                log.warning(
                    "MCP server %r wrote a stdout line that is not a JSON-RPC message "
                    "(%d so far): %.200r",
                    self._owner.name,
                    self._owner.garbage_lines,
                    line,
                )
            return None
        return SessionMessage(message)
