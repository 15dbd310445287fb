"""The scripted OpenAI-compatible server: real HTTP/1.1 over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from loom.models._replies import Reply

__all__ = ["ChatCompletionsServer", "RecordedRequest", "Responder"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body, parsed as JSON."""
        return json.loads(self.body)


#: Decides the reply to a request when no scripted reply is left.
Responder = Callable[[RecordedRequest], Reply]


class ChatCompletionsServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 that answers as scripted.

    Replies given to :meth:`script` are used first, one per request, in order; then
    ``responder`` decides (by default: a 500 saying nothing is scripted).

    Attributes:
        requests: every request received, in order.
        disconnects: how many times a client closed a connection while the server was
            streaming or stalling on it.
    """

    def __init__(self, responder: Responder | None = None) -> None:
        self._scripted: deque[Reply] = deque()
        self._responder = responder
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        self._disconnected = asyncio.Event()
        self.port = 0

    @property
    def base_url(self) -> str:
        """The API root to give a client: ``http://127.0.0.1:{port}/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests."""
        self._scripted.extend(replies)

    async def wait_disconnect(self, timeout_s: float = 5.0) -> None:
        """Wait until a client closes a connection the server was streaming or stalling on.

        Raises:
            TimeoutError: no client did within ``timeout_s``.
        """
        async with asyncio.timeout(timeout_s):
            await self._disconnected.wait()

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        # Closing the sockets ends each connection's task by itself (EOF on its reads);
        # cancelling them would make asyncio's stream callback log the cancellation.
        for writer in self._connections.values():
            writer.close()
        if self._connections:
            _, stuck = await asyncio.wait(list(self._connections), timeout=5.0)
            for task in stuck:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- connections -------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed an idle keep-alive connection
        except asyncio.LimitOverrunError:
            return False
        if len(head) > _MAX_HEAD:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(min(length, _MAX_BODY)) if length else b""
        request = RecordedRequest(method, path, headers, body)
        self.requests.append(request)
        reply = self._reply_for(request)
        return await self._send(reply, reader, writer)

    def _reply_for(self, request: RecordedRequest) -> Reply:
        if self._scripted:
            return self._scripted.popleft()
        if self._responder is not None:
            return self._responder(request)
        return Reply.status(500, {"error": {"message": "nothing scripted for this request"}})

    async def _send(
        self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if reply.kind == "drop":
            return False
        if reply.kind == "stall":
            await self._hold(reader)
            return False
        if reply.kind in ("json", "raw"):
            self._head(writer, reply, {"content-length": str(len(reply.body))})
            writer.write(reply.body)
            await writer.drain()
            return True
        self._head(writer, reply, {"transfer-encoding": "chunked", "cache-control": "no-cache"})
        for n, event in enumerate(reply.events):
            if reply.stall_after is not None and n >= reply.stall_after:
                await writer.drain()
                await self._hold(reader)
                return False
            if n and reply.interval_s:
                await asyncio.sleep(reply.interval_s)
            if not await self._chunk(writer, reader, f"{event}\n\n".encode()):
                return False
        if reply.stall_after is not None and reply.stall_after >= len(reply.events):
            await self._hold(reader)
            return False
        if reply.done and not await self._chunk(writer, reader, b"data: [DONE]\n\n"):
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    def _head(self, writer: asyncio.StreamWriter, reply: Reply, extra: dict[str, str]) -> None:
        status = reply.status_code
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        lines += [f"{k}: {v}" for k, v in {**reply.headers, **extra}.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def _chunk(
        self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader, data: bytes
    ) -> bool:
        try:
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
        except ConnectionError:
            self._note_disconnect()
            return False
        if reader.at_eof():
            self._note_disconnect()
            return False
        return True

    async def _hold(self, reader: asyncio.StreamReader) -> None:
        """Wait for the client to close the connection (EOF or reset)."""
        with contextlib.suppress(ConnectionError):
            while await reader.read(4096):
                pass
        self._note_disconnect()

    def _note_disconnect(self) -> None:
        self.disconnects += 1
        self._disconnected.set()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
