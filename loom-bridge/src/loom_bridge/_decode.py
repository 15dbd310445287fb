"""Requests that are not the protobuf they claim to be: refused with INVALID_ARGUMENT.

gRPC decodes a request before the handler runs; with the generated code, bytes that do not
parse raise ``DecodeError`` inside gRPC, which logs a traceback and answers ``UNKNOWN``.
The bridge's handlers decode with :func:`tolerant` instead, which hands the handler an
:class:`Undecodable` to refuse with a clear status (and, on a stream, an ``err``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

__all__ = ["Undecodable", "tolerant", "unary_handler"]


class Undecodable:
    """What :func:`tolerant` yields for bytes that do not parse as the expected message."""

    __slots__ = ("message_type", "reason")

    def __init__(self, message_type: str, reason: str) -> None:
        self.message_type = message_type
        self.reason = reason

    def __str__(self) -> str:
        return f"the request is not a valid {self.message_type}: {self.reason}"


def tolerant(message_class: Any) -> Callable[[bytes], Any]:
    """A request deserializer for ``message_class`` that returns an :class:`Undecodable`
    instead of raising."""
    parse = message_class.FromString
    name = message_class.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return Undecodable(name, str(exc))

    return deserialize


def unary_handler(
    behaviour: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]],
    request: Any,
    response: Any,
) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary-unary method handler that refuses an undecodable request with
    INVALID_ARGUMENT before ``behaviour`` sees it."""

    async def handle(message: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if message.__class__ is Undecodable:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(message))
        return await behaviour(message, context)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=tolerant(request),
        response_serializer=response.SerializeToString,
    )
