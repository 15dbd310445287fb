"""The gate in front of ``/api``: bearer token, and a loopback Host check without one."""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl

from loom_dashboard._api import TOKEN_PARAM
from loom_dashboard._settings import is_loopback

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["ApiGuard", "error_body"]

_API_PREFIX: Final = "/api/"


def error_body(status: int, message: str) -> bytes:
    """The JSON body of every error the dashboard answers."""
    reason = {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        503: "unavailable",
    }.get(status, "error")
    return json.dumps({"error": reason, "status": status, "message": message}).encode()


async def send_error(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer a whole error response."""
    body = error_body(status, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _host_name(host_header: str) -> str:
    """The name part of a Host header (``[::1]:80`` -> ``::1``, ``a:1`` -> ``a``)."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class ApiGuard:
    """ASGI middleware: checks every ``/api/`` request before it reaches a route.

    With a token, a request must carry it (``Authorization: Bearer <token>``, or the
    ``access_token`` query parameter, which EventSource needs), else 401. Without one (the
    dashboard is on loopback), a request must name a loopback Host, else 403: a web page
    elsewhere cannot read the dashboard through DNS rebinding.

    Args:
        app: the application behind the gate.
        token: the bearer token, or None.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(_API_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.token is None:
            host = headers.get(b"host", b"").decode("latin-1")
            if host and not is_loopback(_host_name(host)):
                await send_error(
                    send,
                    403,
                    f"Host {host!r} is not a loopback name; the dashboard serves "
                    "its API without a token to 127.0.0.1, localhost and ::1 only",
                )
                return
            await self.app(scope, receive, send)
            return
        offered = self._offered(scope, headers)
        if offered is None:
            await send_error(
                send,
                401,
                "a bearer token is required: send 'Authorization: Bearer <token>' (or "
                f"'?{TOKEN_PARAM}=<token>' on /api/stream)",
                [(b"www-authenticate", b'Bearer realm="loom-dashboard"')],
            )
            return
        if not hmac.compare_digest(offered, self.token):
            await send_error(
                send,
                401,
                "wrong bearer token",
                [(b"www-authenticate", b'Bearer realm="loom-dashboard", error="invalid_token"')],
            )
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _offered(scope: Scope, headers: dict[bytes, bytes]) -> bytes | None:
        authorization = headers.get(b"authorization")
        if authorization is not None:
            scheme, _, value = authorization.partition(b" ")
            # A malformed header counts as a wrong token, not as none.
            return value.strip() if scheme.lower() == b"bearer" else b"\x00malformed"
        query: bytes = scope.get("query_string", b"")
        for key, text in parse_qsl(query.decode("latin-1")):
            if key == TOKEN_PARAM:
                return text.encode()
        return None
