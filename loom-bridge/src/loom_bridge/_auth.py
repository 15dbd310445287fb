"""Bearer-token authentication: the server interceptor and the client's metadata."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc
import grpc.aio

from loom_bridge._wire import AUTHORIZATION_HEADER

__all__ = ["TokenInterceptor", "bearer_metadata"]

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]  # generic only in the stubs

_SCHEME = "bearer"


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata that carries ``token`` (empty without one)."""
    if not token:
        return ()
    return ((AUTHORIZATION_HEADER, f"Bearer {token}"),)


def _supplied_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == AUTHORIZATION_HEADER:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            scheme, _, token = text.partition(" ")
            if scheme.lower() == _SCHEME and token.strip():
                return token.strip()
            return None
    return None


class TokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]  # not generic at run time
    """Answers UNAUTHENTICATED, before any handler runs, to a call whose metadata lacks
    ``authorization: Bearer <token>`` with the configured token.

    The comparison takes constant time. A refused call reaches no servicer, so it changes
    nothing on the server.

    Args:
        token: the token every call must carry.
    """

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        supplied = _supplied_token(handler_call_details.invocation_metadata)
        if supplied is not None and hmac.compare_digest(supplied.encode(), self._token):
            return await continuation(handler_call_details)
        # gRPC answers None (an unknown method) with UNIMPLEMENTED; the stubs omit None.
        handler: Handler | None = await continuation(handler_call_details)
        if handler is None:
            return cast("Handler", None)
        reason = (
            "missing bearer token: send metadata 'authorization: Bearer <token>'"
            if supplied is None
            else "wrong bearer token"
        )
        return _refusal(handler, reason)


def _refusal(handler: Handler, reason: str) -> Handler:
    """A handler of the same shape as ``handler`` that only aborts with UNAUTHENTICATED."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)
