"""DashboardServer: the tap, the viewers and the HTTP server, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from loom_dashboard._errors import DashboardError
from loom_dashboard._metrics import MetricsView
from loom_dashboard._settings import DashboardSettings
from loom_dashboard._tap import Tap
from loom_dashboard._threads import ThreadBook
from loom_dashboard._topology import build_topology
from loom_dashboard._viewers import ViewerHub

if TYPE_CHECKING:
    from loom_dashboard._observed import ObservedHost

__all__ = ["DashboardServer"]

log = logging.getLogger("loom.dashboard")

# uvicorn logs this when a response is left unfinished, which is how a viewer too slow to
# read its stream is dropped (see loom_dashboard._stream): expected, not an error.
_UNFINISHED = "ASGI callable returned without completing response"


class _DropUnfinished(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _UNFINISHED not in record.getMessage()


_DROP_UNFINISHED = _DropUnfinished()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it each keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class DashboardServer:
    """Serves the dashboard of one running host.

    Starting it subscribes the tap to the host's bus and starts an HTTP server (uvicorn,
    in the running event loop) on ``settings.host:settings.port``. Everything it reads
    from the host, it reads on that loop: no locks, no threads.

    Args:
        host: what to watch (see :class:`~loom_dashboard.ObservedHost`).
        settings: where to listen, the token and the bounds; ``enabled`` is not looked at.

    Attributes:
        url: the page's address once started (``http://127.0.0.1:3030/``).
        tap: the dashboard's subscription and what it recorded.
        hub: the connected viewers.

    Example:
        .. code-block:: python

            parts = HostParts(bus, runtime=runtime, broker=broker)
            async with DashboardServer(parts, DashboardSettings(port=0)) as dashboard:
                print("dashboard at", dashboard.url)
                await asyncio.Event().wait()
    """

    def __init__(self, host: ObservedHost, settings: DashboardSettings | None = None) -> None:
        self.host = host
        self.settings = settings if settings is not None else DashboardSettings()
        s = self.settings
        self.tap = Tap(
            host.bus,
            ring_size=s.ring_size,
            queue_size=s.tap_queue,
            preview=s.payload_preview,
            threads=ThreadBook(s.max_threads, s.thread_events),
        )
        self.metrics = MetricsView(host, self.tap)
        self.hub = ViewerHub(
            self.tap,
            self.metrics,
            lambda: build_topology(host),
            viewer_queue=s.viewer_queue,
            max_viewers=s.max_viewers,
            tick_s=s.tick_s,
            tail_batch=s.tail_batch,
        )
        self.url = ""
        self.port = 0
        self._server: Any = None
        self._serving: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    def __repr__(self) -> str:
        return f"<DashboardServer {self.url or 'not started'}>"

    @property
    def started(self) -> bool:
        """Whether the server is serving."""
        return self._serving is not None

    async def start(self) -> None:
        """Subscribe the tap and serve; returns once the server accepts connections.

        Raises:
            DashboardError: the address cannot be bound (the port is taken, say) or the
                server failed to start.
        """
        if self._serving is not None:
            return
        import uvicorn

        from loom_dashboard._app import build_app

        s = self.settings
        try:
            sock = _bind(s.host, s.port)
        except OSError as exc:
            raise DashboardError(
                f"the dashboard cannot listen on {s.host}:{s.port}: {exc.strerror or exc} "
                "(set dashboard.port to a free port, or 0 for any)"
            ) from None
        try:
            await self.tap.start()
        except BaseException:
            sock.close()
            raise
        self.hub.open()
        app = build_app(self.host, s, self.tap, self.metrics, self.hub)

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield  # the host owns the signals; stop() ends the server

        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        uvicorn_log = logging.getLogger("uvicorn.error")
        if _DROP_UNFINISHED not in uvicorn_log.filters:
            uvicorn_log.addFilter(_DROP_UNFINISHED)
        server = _Server(config)
        self._server, self._socket = server, sock
        self._serving = asyncio.create_task(
            server.serve(sockets=[sock]), name="loom-dashboard-http"
        )
        while not server.started:
            if self._serving.done():
                error = self._serving.exception() if not self._serving.cancelled() else None
                await self._cleanup()
                raise DashboardError(f"the dashboard's HTTP server did not start: {error}")
            await asyncio.sleep(0.01)
        self.port = sock.getsockname()[1]
        name = s.host if ":" not in s.host else f"[{s.host.strip('[]')}]"
        self.url = f"http://{name}:{self.port}/"
        log.info("dashboard: serving %s", self.url)

    async def stop(self) -> None:
        """Close every viewer, stop the server and unsubscribe the tap. Idempotent."""
        if self._serving is None:
            return
        await self.hub.close()
        await self._cleanup()

    async def _cleanup(self) -> None:
        server, serving = self._server, self._serving
        self._serving = None
        if server is not None:
            server.should_exit = True
        if serving is not None:
            try:
                await serving
            except Exception:
                log.exception("dashboard: the HTTP server stopped with an error")
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        await self.tap.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
