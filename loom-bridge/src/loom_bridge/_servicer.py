"""The ``loom.v1.Bridge`` service: gRPC calls adapted onto the :class:`BridgeHub`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import grpc
import grpc.aio

from loom.v1 import action_pb2, bridge_pb2
from loom_bridge._decode import Undecodable
from loom_bridge._hub import HANDSHAKE_RULE, BridgeHub, HandshakeRefused
from loom_bridge._session import SessionClosed, SessionEnd, StreamSession
from loom_bridge._wire import AGENT_ID_HEADER, EOF, ErrorCode, error

__all__ = ["BridgeServicer"]

log = logging.getLogger("loom.bridge")

Context = grpc.aio.ServicerContext[Any, Any]

#: How long a stream that is being closed may take to write its final ``err``.
_FLUSH_S = 1.0


def _header(context: Context, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


class BridgeServicer:
    """Implements RegisterAgent, EventStream, ForwardAction and Heartbeat.

    Registered with the generated ``add_BridgeServicer_to_server``, which looks the methods
    up by name.

    Args:
        hub: the bridge state the calls act on.
    """

    def __init__(self, hub: BridgeHub) -> None:
        self._hub = hub

    async def RegisterAgent(  # the generated code calls it by its RPC name
        self, request: bridge_pb2.AgentRegisterRequest, context: Context
    ) -> bridge_pb2.AgentRegisterResponse:
        """Store a registration; refusals are ``success=false``, not gRPC errors."""
        return await self._hub.register(request, context.peer())

    async def ForwardAction(
        self, request: action_pb2.ActionCall | Undecodable, context: Context
    ) -> action_pb2.ActionResult:
        """Run a call through the broker (bytes that are no ActionCall: INVALID_ARGUMENT)."""
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(request))
            raise AssertionError("unreachable: abort raises")
        # The SDK names the caller in the call's headers; reading metadata costs more.
        caller = None if AGENT_ID_HEADER in request.headers else _header(context, AGENT_ID_HEADER)
        return await self._hub.forward(request, caller)

    async def Heartbeat(
        self, request: bridge_pb2.HeartbeatRequest, context: Context
    ) -> bridge_pb2.HeartbeatResponse:
        """Echo the timestamp with status ``ok``; with ``x-agent-id``, keep that stream alive."""
        self._hub.heartbeat(_header(context, AGENT_ID_HEADER))
        return bridge_pb2.HeartbeatResponse(timestamp_ms=request.timestamp_ms, status="ok")

    async def EventStream(self, request_iterator: object, context: Context) -> None:
        """The agent's stream: the Ack first, then deliveries out and messages in."""
        hub = self._hub
        timeout = hub.config.handshake_timeout_s
        try:
            async with asyncio.timeout(timeout):
                first = await context.read()
        except TimeoutError:
            await _refuse(
                context,
                HandshakeRefused(
                    ErrorCode.HANDSHAKE_TIMEOUT,
                    f"{HANDSHAKE_RULE}; none came in {timeout:g} s",
                    "DEADLINE_EXCEEDED",
                ),
            )
            return
        if first.__class__ is Undecodable:
            await _refuse(context, HandshakeRefused(ErrorCode.INVALID_ARGUMENT, str(first)))
            return
        try:
            session = await hub.open(None if first is EOF else first, context.peer())
        except HandshakeRefused as refused:
            await _refuse(context, refused)
            return
        reader = asyncio.create_task(self._read(session, context))
        writer = asyncio.create_task(_write(session, context))
        try:
            await asyncio.wait((reader, writer, session.ended), return_when=asyncio.FIRST_COMPLETED)
            if session.ended.done() and not writer.done():
                await asyncio.wait((writer,), timeout=_FLUSH_S)  # let the final err out
        finally:
            reader.cancel()
            writer.cancel()
            # Shielded: gRPC cancels this handler when the client goes away, and a second
            # cancellation here must not skip the teardown (subscriptions, providers).
            await asyncio.shield(self._close(session, reader, writer))
        reason = session.end_reason
        if reason.status is not None:
            await context.abort(grpc.StatusCode[reason.status], reason.details)

    async def _close(
        self, session: StreamSession, reader: asyncio.Task[None], writer: asyncio.Task[None]
    ) -> None:
        await asyncio.gather(reader, writer, return_exceptions=True)
        await self._hub.close(session)

    async def _read(self, session: StreamSession, context: Context) -> None:
        hub = self._hub
        publish, receive, read = hub.publish, hub.receive, context.read
        while True:
            message = await read()
            if message is EOF:
                return
            if message.__class__ is Undecodable:
                # The stream's framing holds, but its peer does not speak loom.v1: end it.
                text = f"stream message {str(message)[len('the request ') :]}"
                session.end(
                    SessionEnd("INVALID_ARGUMENT", text), error(ErrorCode.INVALID_ARGUMENT, text)
                )
                return
            try:
                # Publishes are most of what a stream sends: straight to the hub's publish.
                if message.HasField("publish"):
                    reply = await publish(session, message.publish)
                else:
                    reply = await receive(session, message)
                if reply is not None:
                    await session.send(reply)
            except SessionClosed:  # the stream is ending: what it sends now goes nowhere
                return


async def _write(session: StreamSession, context: Context) -> None:
    take, wait, write = session.take, session.wait, context.write
    while True:
        message = take()  # no coroutine per message while messages are ready
        if message is not None:
            await write(message)
        elif not await wait():
            return


async def _refuse(context: Context, refused: HandshakeRefused) -> None:
    """Answer a stream that broke the handshake: ``err``, then close it with a status."""
    with contextlib.suppress(Exception):  # the client may be gone already
        await context.write(error(refused.code, refused.message))
    log.info("stream from %s refused: %s", context.peer(), refused.message)
    await context.abort(grpc.StatusCode[refused.status], refused.message)
