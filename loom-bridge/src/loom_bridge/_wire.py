"""The ``loom.v1`` bridge messages the server and the SDK build, the header names, and
typed access to the generated gRPC stubs.

Imports gRPC and protobuf; the plugin module never imports this one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, cast

import grpc.aio

from loom import Event
from loom.errors import ProtocolError
from loom.v1 import action_pb2, bridge_pb2, event_pb2

__all__ = [
    "AGENT_ID_HEADER",
    "AUTHORIZATION_HEADER",
    "EOF",
    "BridgeStub",
    "ErrorCode",
    "add_bridge_servicer",
    "bridge_stub",
    "delivery",
    "error",
    "event_from_proto",
    "fill_event",
    "now_ms",
    "pong",
]

#: What ``read()`` returns at the end of a gRPC stream.
EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]  # missing from grpc-stubs 1.53

#: gRPC metadata carrying the bearer token: ``authorization: Bearer <token>``.
AUTHORIZATION_HEADER = "authorization"
#: gRPC metadata and ``ActionCall`` header naming the calling agent.
AGENT_ID_HEADER = "x-agent-id"


class ErrorCode:
    """The ``Error.code`` values the server sends in ``err`` messages."""

    #: The stream broke the handshake rule, or a message is malformed.
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    #: A ``publish`` named a topic that is not a valid concrete topic.
    INVALID_TOPIC = "INVALID_TOPIC"
    #: A ``publish`` carried an event the bus refuses (priority outside 0..100, ...).
    INVALID_EVENT = "INVALID_EVENT"
    #: An ``action_result`` whose id matches no pending call (late, duplicate or unknown).
    UNKNOWN_ACTION_RESULT = "UNKNOWN_ACTION_RESULT"
    #: A newer stream for the same agent id took over; this one is closed.
    REPLACED = "REPLACED"
    #: Another live connection holds this agent id (policy ``refuse``).
    AGENT_CONNECTED = "AGENT_CONNECTED"
    #: No Ack arrived within the handshake timeout.
    HANDSHAKE_TIMEOUT = "HANDSHAKE_TIMEOUT"
    #: The stream heartbeated, then stayed silent past the heartbeat timeout.
    HEARTBEAT_TIMEOUT = "HEARTBEAT_TIMEOUT"
    #: The server is shutting down.
    SHUTDOWN = "SHUTDOWN"


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def fill_event(message: event_pb2.Event, event: Event) -> None:
    """Write ``event`` into an empty ``loom.v1.Event`` in place (no intermediate copy)."""
    message.id = event.id
    message.type = event.type
    message.timestamp_ms = event.timestamp_ms
    message.source = event.source
    if event.metadata:
        metadata = message.metadata
        for key, value in event.metadata.items():  # faster than the Mapping.update mixin
            metadata[key] = value
    message.payload = event.payload
    message.confidence = event.confidence
    if event.tags:
        message.tags.extend(event.tags)
    message.priority = event.priority


def event_from_proto(message: event_pb2.Event) -> Event:
    """The :class:`~loom.Event` a message carries, as :meth:`loom.Event.from_proto`, without
    checking again the types protobuf already guarantees (the per-event hot path).

    Raises:
        ProtocolError: the message holds a priority outside 0..100.
    """
    priority = message.priority
    if not 0 <= priority <= 100:
        raise ProtocolError("loom.v1.Event", f"field 9 priority={priority} is outside 0..100")
    event = Event.__new__(Event)
    event.id = message.id
    event.type = message.type
    event.timestamp_ms = message.timestamp_ms
    event.source = message.source
    metadata = message.metadata
    event.metadata = {key: metadata[key] for key in metadata}  # faster than dict(map)
    event.payload = message.payload
    event.confidence = message.confidence
    event.tags = tuple(message.tags)
    event.priority = priority
    return event


def delivery(topic: str, event: Event) -> bridge_pb2.ServerEvent:
    """``ServerEvent{delivery{topic, event}}``."""
    message = bridge_pb2.ServerEvent()
    inner = message.delivery
    inner.topic = topic
    fill_event(inner.event, event)
    return message


def pong() -> bridge_pb2.ServerEvent:
    """``ServerEvent{pong{timestamp_ms=now, status="ok"}}`` (the server's clock, as upstream)."""
    return bridge_pb2.ServerEvent(
        pong=bridge_pb2.HeartbeatResponse(timestamp_ms=now_ms(), status="ok")
    )


def error(code: str, message: str) -> bridge_pb2.ServerEvent:
    """``ServerEvent{err{code, message}}``."""
    return bridge_pb2.ServerEvent(err=bridge_pb2.Error(code=code, message=message))


class BridgeStub(Protocol):
    """The typed shape of the generated ``loom.v1.Bridge`` client stub."""

    RegisterAgent: grpc.aio.UnaryUnaryMultiCallable[
        bridge_pb2.AgentRegisterRequest, bridge_pb2.AgentRegisterResponse
    ]
    EventStream: grpc.aio.StreamStreamMultiCallable[bridge_pb2.ClientEvent, bridge_pb2.ServerEvent]
    ForwardAction: grpc.aio.UnaryUnaryMultiCallable[action_pb2.ActionCall, action_pb2.ActionResult]
    Heartbeat: grpc.aio.UnaryUnaryMultiCallable[
        bridge_pb2.HeartbeatRequest, bridge_pb2.HeartbeatResponse
    ]


def bridge_stub(channel: grpc.aio.Channel) -> BridgeStub:
    """The generated ``BridgeStub`` on ``channel``, typed."""
    from loom_bridge._grpc import bridge_pb2_grpc

    make = cast("Callable[[grpc.aio.Channel], BridgeStub]", bridge_pb2_grpc.BridgeStub)
    return make(channel)


def add_bridge_servicer(servicer: Any, server: grpc.aio.Server) -> None:
    """Serve ``loom.v1.Bridge`` with ``servicer``'s RPC methods (found by name, as the
    generated ``add_BridgeServicer_to_server`` does), decoding requests with
    :func:`~loom_bridge._decode.tolerant`: a request that does not parse is refused with
    INVALID_ARGUMENT (the generated code answers UNKNOWN and logs a traceback)."""
    import grpc

    from loom_bridge._decode import tolerant, unary_handler

    handlers = {
        "RegisterAgent": unary_handler(
            servicer.RegisterAgent,
            bridge_pb2.AgentRegisterRequest,
            bridge_pb2.AgentRegisterResponse,
        ),
        "EventStream": grpc.stream_stream_rpc_method_handler(
            servicer.EventStream,
            request_deserializer=tolerant(bridge_pb2.ClientEvent),
            response_serializer=bridge_pb2.ServerEvent.SerializeToString,
        ),
        # Checks for Undecodable itself: no wrapper coroutine on the hot unary call.
        "ForwardAction": grpc.unary_unary_rpc_method_handler(
            servicer.ForwardAction,
            request_deserializer=tolerant(action_pb2.ActionCall),
            response_serializer=action_pb2.ActionResult.SerializeToString,
        ),
        "Heartbeat": unary_handler(
            servicer.Heartbeat, bridge_pb2.HeartbeatRequest, bridge_pb2.HeartbeatResponse
        ),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("loom.v1.Bridge", handlers),)
    )
