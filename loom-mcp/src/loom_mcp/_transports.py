"""Builds the transport for a server config, and notices when its connection ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
from mcp.shared.message import SessionMessage

from loom_mcp._stdio import StdioTransport

if TYPE_CHECKING:
    from mcp.client._transport import ReadStream, TransportStreams

    from loom_mcp._config import McpServerConfig

__all__ = ["Connection", "open_connection"]

_SSE_READ_TIMEOUT_S = 300.0


class _WatchedReadStream:
    """Forwards a transport's read stream and sets ``ended`` when it ends."""

    def __init__(self, inner: ReadStream[SessionMessage | Exception], ended: anyio.Event) -> None:
        self._inner = inner
        self._ended = ended

    @property
    def last_context(self) -> Any:
        # The dispatcher reads the sender's context from streams that carry one.
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._ended.set()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None


class Connection:
    """One attempt to reach a server: its transport, and an event for its end.

    Attributes:
        ended: set when the server's message stream ends (the process died, the HTTP
            stream closed); the session runner then reconnects.
        stdio: the stdio transport, for the child's pid and exit status (None over HTTP).
    """

    def __init__(self, config: McpServerConfig) -> None:
        self.config = config
        self.ended = anyio.Event()
        self.stdio: StdioTransport | None = None
        self._inner: AbstractAsyncContextManager[TransportStreams]
        if config.kind == "stdio":
            self.stdio = StdioTransport(config)
            self._inner = self.stdio
        elif config.kind == "http":
            self._inner = _http(config)
        else:
            self._inner = _sse(config)

    def describe_end(self) -> str:
        """Why the connection ended, in words."""
        if self.stdio is not None:
            return self.stdio.exit_description()
        return f"the connection to {self.config.url} closed"

    async def __aenter__(self) -> TransportStreams:
        read_stream, write_stream = await self._inner.__aenter__()
        return _WatchedReadStream(read_stream, self.ended), write_stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self.ended.set()
        return await self._inner.__aexit__(exc_type, exc, tb)


def open_connection(config: McpServerConfig) -> Connection:
    """A fresh connection attempt for ``config`` (a transport is entered only once)."""
    return Connection(config)


@asynccontextmanager
async def _http(config: McpServerConfig) -> AsyncIterator[TransportStreams]:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    assert config.url is not None
    timeout = httpx2.Timeout(config.connect_timeout_s, read=_SSE_READ_TIMEOUT_S)
    async with (
        httpx2.AsyncClient(headers=dict(config.headers), timeout=timeout) as client,
        streamable_http_client(config.url, http_client=client) as streams,
    ):
        yield streams


@asynccontextmanager
async def _sse(config: McpServerConfig) -> AsyncIterator[TransportStreams]:
    from mcp.client.sse import sse_client

    assert config.url is not None
    async with sse_client(
        config.url,
        headers=dict(config.headers),
        timeout=config.connect_timeout_s,
        sse_read_timeout=_SSE_READ_TIMEOUT_S,
    ) as streams:
        yield streams
