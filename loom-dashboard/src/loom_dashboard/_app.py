"""The dashboard's ASGI application: the page, the JSON API and the event stream."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loom_dashboard._api import (
    ApiError,
    EventsQuery,
    MetricsQuery,
    ThreadsQuery,
    parse_query,
    thread_key,
)
from loom_dashboard._guard import ApiGuard, error_body
from loom_dashboard._stream import StreamEndpoint
from loom_dashboard._topology import build_topology

if TYPE_CHECKING:
    from loom_dashboard._metrics import MetricsView
    from loom_dashboard._observed import ObservedHost
    from loom_dashboard._settings import DashboardSettings
    from loom_dashboard._tap import Tap
    from loom_dashboard._viewers import ViewerHub

__all__ = ["build_app", "page_bytes"]

_PAGE_HEADERS = {
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # Everything the page needs is inline or same-origin: it works offline.
    "content-security-policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'"
    ),
}


def page_bytes() -> bytes:
    """The bundled page (one HTML file with its CSS and JS inline)."""
    return resources.files("loom_dashboard").joinpath("_static/index.html").read_bytes()


class _Json(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(error_body(status, message), status, headers, media_type="application/json")


def build_app(
    host: ObservedHost,
    settings: DashboardSettings,
    tap: Tap,
    metrics: MetricsView,
    hub: ViewerHub,
) -> Starlette:
    """The Starlette application for one dashboard.

    Routes: ``GET /`` (the page), ``/api/topology``, ``/api/metrics``, ``/api/threads``,
    ``/api/threads/{id}``, ``/api/events``, ``/api/stream`` (SSE), ``/api/health``.
    """
    page = page_bytes()

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    async def health(request: Request) -> Response:
        parse_query(request.url.query, "/api/health", ())
        return _Json({"ok": True, "seq": tap.seq, "viewers": hub.counts()})

    async def topology(request: Request) -> Response:
        parse_query(request.url.query, "/api/topology", ())
        return _Json(build_topology(host))

    async def metrics_route(request: Request) -> Response:
        query = MetricsQuery.parse(request.url.query)
        return _Json(metrics.build(limit=query.limit, viewers=hub.counts()))

    async def threads(request: Request) -> Response:
        query = ThreadsQuery.parse(request.url.query)
        return _Json({"threads": tap.threads.summaries(query.limit, collab_only=query.collab_only)})

    async def thread(request: Request) -> Response:
        parse_query(request.url.query, "/api/threads/{id}", ())
        key = thread_key(request.path_params["thread_id"])
        detail = tap.threads.detail(key)
        if detail is None:
            raise ApiError(
                404,
                f"no thread {key!r} among the {len(tap.threads)} the dashboard remembers "
                "(by thread id or trace id)",
            )
        return _Json(detail)

    async def events(request: Request) -> Response:
        ring_size = tap.ring.maxlen or settings.ring_size
        query = EventsQuery.parse(request.url.query, max_limit=ring_size)
        found = tap.events(
            query.pattern, event_type=query.event_type, after=query.after, limit=query.limit
        )
        return _Json({"events": found, "seq": tap.seq, "topic": query.topic, "ring": len(tap.ring)})

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error(exc.status, exc.message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            message = f"no such path: {request.url.path} (the API is under /api/; see /)"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}; use GET"
        else:
            message = str(exc.detail)
        return _error(exc.status_code, message, exc.headers)

    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after this answer, and the server logs the traceback.
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    routes = [
        Route("/", index),
        Route("/index.html", index),
        Route("/api/health", health),
        Route("/api/topology", topology),
        Route("/api/metrics", metrics_route),
        Route("/api/threads", threads),
        Route("/api/threads/{thread_id:path}", thread),
        Route("/api/events", events),
        Route("/api/stream", StreamEndpoint(hub), methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(ApiGuard, token=settings.token)],
        exception_handlers={
            ApiError: api_error,
            HTTPException: http_error,
            Exception: server_error,
        },
    )
