"""``GET /api/stream``: server-sent events for one viewer, as a plain ASGI endpoint.

Three things race: the writer (the viewer's queue to the socket), the client going away,
and the hub closing the viewer. A client that goes closes the viewer as ``disconnected``;
a viewer closed as ``slow`` may have its writer stuck in a send the client never reads, so
the writer is cancelled, the response is left unfinished and the server closes the
connection. Any other close lets the writer end the response properly.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from loom_dashboard._api import ApiError, StreamQuery
from loom_dashboard._guard import send_error
from loom_dashboard._viewers import TooManyViewersError, Viewer

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from loom_dashboard._viewers import ViewerHub

__all__ = ["StreamEndpoint"]

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]
# How long a closed viewer's writer gets to end the response before it is cancelled.
_FINISH_S = 1.0


class StreamEndpoint:
    """The ASGI app behind ``/api/stream``.

    Args:
        hub: the viewers' hub.
    """

    def __init__(self, hub: ViewerHub) -> None:
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            query = StreamQuery.parse(scope.get("query_string", b""))
        except ApiError as exc:
            await send_error(send, exc.status, exc.message)
            return
        if scope["method"] == "HEAD":  # the headers a stream would start with, no stream
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            viewer = self.hub.join(query.pattern, query.topic)
        except TooManyViewersError as exc:
            await send_error(send, 503, str(exc), [(b"retry-after", b"5")])
            return
        writer = asyncio.create_task(_write(viewer, send))
        watcher = asyncio.create_task(_until_disconnect(receive))
        closed = asyncio.create_task(viewer.wait_closed())
        try:
            done, _ = await asyncio.wait(
                {writer, watcher, closed}, return_when=asyncio.FIRST_COMPLETED
            )
            if watcher in done:
                viewer.close("disconnected")
            if not writer.done() and viewer.reason != "slow":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(writer), _FINISH_S)
        finally:
            for task in (writer, watcher, closed):
                task.cancel()
            await asyncio.gather(writer, watcher, closed, return_exceptions=True)
            self.hub.leave(viewer, viewer.reason or "left")


async def _write(viewer: Viewer, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    while True:
        chunk = await viewer.next()
        if chunk is None:
            break
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    if viewer.reason != "slow":
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
