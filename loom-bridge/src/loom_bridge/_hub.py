"""The bridge's state behind the gRPC service: registrations, live streams, remote providers.

Transport-free: the servicer adapts gRPC calls to these methods, so the rules (who may
register, which stream is current, what a stream's end removes) live in one place.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict

from loom import ActionError, ActionResult, ActionStatus, CapabilityDescriptor
from loom.actions import ActionBroker, ErrorCode
from loom.bus import EventBus
from loom.directory import AgentDirectory, AgentRecord
from loom.errors import InvalidEventError, InvalidTopicError, ProtocolError
from loom.v1 import action_pb2, bridge_pb2
from loom_bridge._batch import decode_batch
from loom_bridge._calls import call_from_proto, result_to_proto
from loom_bridge._config import BridgeConfig, DuplicatePolicy
from loom_bridge._provider import RemoteCapabilityProvider
from loom_bridge._registration import MAX_MESSAGE_BYTES_KEY, PUBLISH_BATCH_KEY, Registration
from loom_bridge._session import SessionEnd, StreamSession
from loom_bridge._wire import AGENT_ID_HEADER, error, event_from_proto, pong
from loom_bridge._wire import ErrorCode as WireCode

__all__ = ["BROKER_ERROR", "BridgeHub", "HandshakeRefused"]

log = logging.getLogger("loom.bridge")

#: The code ForwardAction answers when the broker cannot take the call (upstream's code).
BROKER_ERROR = "BROKER_ERROR"

#: Directory metadata marking an agent as connected through this bridge.
REMOTE_KEY = "remote"
REMOTE_VALUE = "grpc"


class HandshakeRefused(Exception):
    """A stream's first message does not open it; sent as ``err`` and a gRPC status."""

    def __init__(self, code: str, message: str, status: str = "INVALID_ARGUMENT") -> None:
        self.code = code
        self.message = message
        self.status = status
        super().__init__(message)


HANDSHAKE_RULE = "first stream message must be Ack carrying agent_id"


class BridgeHub:
    """Registrations, live streams and the remote capability providers of one bridge.

    Args:
        bus: the bus remote agents publish to and receive from.
        broker: the ActionBroker remote capabilities join and ForwardAction calls; None
            answers every ForwardAction with BROKER_ERROR and keeps remote capabilities
            to the bridge.
        directory: kept current with the connected remote agents.
        config: the bridge's settings.
    """

    def __init__(
        self,
        bus: EventBus,
        broker: ActionBroker | None,
        directory: AgentDirectory,
        config: BridgeConfig,
    ) -> None:
        self.bus = bus
        self.broker = broker
        self.directory = directory
        self.config = config
        self._registrations: OrderedDict[str, Registration] = OrderedDict()
        self._sessions: dict[str, StreamSession] = {}
        self._providers: dict[tuple[str, str], RemoteCapabilityProvider] = {}
        self._served: dict[str, set[tuple[str, str]]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self.refused_results = 0
        #: ``publish_batch`` messages taken so far.
        self.publish_batches = 0
        # What a RegisterAgent answer offers beyond the upstream wire.
        self._offer = (
            {
                PUBLISH_BATCH_KEY: str(config.max_publish_batch),
                MAX_MESSAGE_BYTES_KEY: str(config.max_message_bytes),
            }
            if config.max_publish_batch > 1
            else {}
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the heartbeat watch (when a heartbeat timeout is set)."""
        if self._reaper is None and self.config.heartbeat_timeout_s > 0:
            self._reaper = asyncio.create_task(self._reap(), name="loom.bridge heartbeat watch")

    async def shutdown(self) -> None:
        """End every stream (``err`` SHUTDOWN) and stop the heartbeat watch."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
            self._reaper = None
        for session in list(self._sessions.values()):
            session.end(
                SessionEnd("UNAVAILABLE", "the bridge is shutting down"),
                error(WireCode.SHUTDOWN, "the bridge is shutting down"),
            )

    # -- lookups ------------------------------------------------------------------------

    def registration(self, agent_id: str) -> Registration | None:
        """The agent's last registration, or None."""
        return self._registrations.get(agent_id)

    def registrations(self) -> list[Registration]:
        """Every registration kept, oldest first."""
        return list(self._registrations.values())

    def session(self, agent_id: str) -> StreamSession | None:
        """The agent's live stream, or None."""
        return self._sessions.get(agent_id)

    def sessions(self) -> list[StreamSession]:
        """Every live stream."""
        return list(self._sessions.values())

    def provider(self, name: str, version: str) -> RemoteCapabilityProvider | None:
        """The provider the bridge registered for a remote capability, or None."""
        return self._providers.get((name, version))

    # -- RegisterAgent ------------------------------------------------------------------

    async def register(
        self, request: bridge_pb2.AgentRegisterRequest, peer: str
    ) -> bridge_pb2.AgentRegisterResponse:
        """Check and store a registration; apply it at once to the agent's live stream."""
        try:
            registration = Registration.from_proto(request, peer)
            self._check_may_register(registration)
        except ValueError as exc:
            return bridge_pb2.AgentRegisterResponse(success=False, error_message=str(exc))
        agent_id = registration.agent_id
        self._registrations[agent_id] = registration
        self._registrations.move_to_end(agent_id)
        self._forget_offline()
        session = self._sessions.get(agent_id)
        if session is not None and not session.ending:
            # A connected agent that registers again (say, to subscribe to one more topic)
            # changes its open stream: upstream ignores it until the next stream.
            session.registration = registration
            await session.subscribe(self.bus, registration.topics)
            await self._serve(agent_id, registration.capabilities)
            self._list(registration)
        return bridge_pb2.AgentRegisterResponse(success=True, metadata=self._offer)

    def _check_may_register(self, registration: Registration) -> None:
        agent_id = registration.agent_id
        record = self.directory.by_id(agent_id)
        if record is not None and record.metadata.get(REMOTE_KEY) != REMOTE_VALUE:
            raise ValueError(f"agent_id {agent_id!r} is taken by an agent running in the host")
        session = self._sessions.get(agent_id)
        if (
            session is not None
            and self.config.duplicate_ids is DuplicatePolicy.REFUSE
            and session.peer != registration.peer
        ):
            raise ValueError(f"agent_id {agent_id!r} is connected on another connection")

    def _forget_offline(self) -> None:
        excess = len(self._registrations) - len(self._sessions) - self.config.max_registrations
        if excess <= 0:
            return
        for agent_id in list(self._registrations):
            if agent_id not in self._sessions:
                del self._registrations[agent_id]
                excess -= 1
                if excess == 0:
                    return

    # -- EventStream --------------------------------------------------------------------

    async def open(self, first: bridge_pb2.ClientEvent | None, peer: str) -> StreamSession:
        """Open a stream from its first message (the Ack), subscribe it, list the agent.

        A live stream of the same agent is replaced (``err`` REPLACED), unless the policy
        is ``refuse`` and it lives on another connection.

        Raises:
            HandshakeRefused: no first message, not an Ack, an unregistered id, or the id is
                connected elsewhere under the ``refuse`` policy.
        """
        if first is None:
            raise HandshakeRefused(WireCode.INVALID_ARGUMENT, "no first message")
        if first.WhichOneof("msg") != "ack" or not first.ack.message_id:
            raise HandshakeRefused(WireCode.INVALID_ARGUMENT, HANDSHAKE_RULE)
        agent_id = first.ack.message_id
        registration = self._registrations.get(agent_id)
        if registration is None:
            raise HandshakeRefused(
                WireCode.INVALID_ARGUMENT,
                f"{HANDSHAKE_RULE}: agent {agent_id!r} is not registered (call RegisterAgent "
                "first)",
            )
        if self._closed:
            raise HandshakeRefused(WireCode.SHUTDOWN, "the bridge is shutting down", "UNAVAILABLE")
        old = self._sessions.get(agent_id)
        if old is not None:
            if self.config.duplicate_ids is DuplicatePolicy.REFUSE and old.peer != peer:
                raise HandshakeRefused(
                    WireCode.AGENT_CONNECTED,
                    f"agent {agent_id!r} is connected on another connection",
                    "ALREADY_EXISTS",
                )
            old.end(
                SessionEnd("ABORTED", f"a newer stream for agent {agent_id!r} replaced this one"),
                error(
                    WireCode.REPLACED, f"a newer stream for agent {agent_id!r} replaced this one"
                ),
            )
        if registration.peer != peer:
            registration = _with_peer(registration, peer)
            self._registrations[agent_id] = registration
        session = StreamSession(registration, self.config)
        self._sessions[agent_id] = session
        try:
            await session.subscribe(self.bus, registration.topics)
            await self._serve(agent_id, registration.capabilities)
            self._list(registration)
        except BaseException:
            await self.close(session)
            raise
        log.info("agent %s connected from %s", agent_id, peer)
        return session

    async def close(self, session: StreamSession) -> None:
        """Tear a stream down. Only the agent's current stream takes the agent's
        capabilities and directory entry with it: a replaced stream leaves them to its
        successor."""
        await session.teardown(self.bus)
        agent_id = session.agent_id
        if self._sessions.get(agent_id) is not session:
            return
        del self._sessions[agent_id]
        await self._serve(agent_id, ())
        record = self.directory.by_id(agent_id)
        if record is not None and record.metadata.get(REMOTE_KEY) == REMOTE_VALUE:
            self.directory.unregister(agent_id)
        log.info("agent %s disconnected (%s)", agent_id, session.end_reason.details or "stream end")
        self._forget_offline()

    async def receive(
        self, session: StreamSession, message: bridge_pb2.ClientEvent
    ) -> bridge_pb2.ServerEvent | None:
        """Act on one inbound message; return the ``err`` to send back, if any."""
        session.last_seen = time.monotonic()
        kind = message.WhichOneof("msg")
        if kind == "publish":
            return await self.publish(session, message.publish)
        if kind == "publish_batch":
            return await self.publish_batch(session, message.publish_batch)
        if kind == "ping":
            session.heartbeating = True
            await session.send(pong())
            return None
        if kind == "action_result":
            if session.resolve(message.action_result):
                return None
            self.refused_results += 1
            return error(
                WireCode.UNKNOWN_ACTION_RESULT,
                f"action_result {message.action_result.id!r} matches no pending action_call "
                "(unknown id, answered twice, or after its timeout)",
            )
        if kind == "ack":
            return None  # later acks are ignored, as upstream
        return error(WireCode.INVALID_ARGUMENT, "ClientEvent holds no message (empty oneof msg)")

    async def publish(
        self, session: StreamSession, publish: bridge_pb2.Publish
    ) -> bridge_pb2.ServerEvent | None:
        """Publish what a stream's ``publish`` carries; return the ``err`` to send back, if
        any. :meth:`receive` of a ``publish`` message, without its dispatch (the hot path)."""
        session.last_seen = time.monotonic()
        topic = publish.topic
        if not publish.HasField("event"):
            return error(WireCode.INVALID_ARGUMENT, f"publish to {topic!r} carries no event")
        try:
            event = event_from_proto(publish.event)
            await self.bus.publish(topic, event)
        except InvalidTopicError as exc:
            return error(WireCode.INVALID_TOPIC, f"publish to {topic!r}: {exc.reason}")
        except (ProtocolError, InvalidEventError) as exc:
            return error(WireCode.INVALID_EVENT, f"publish to {topic!r}: {exc}")
        return None

    async def publish_batch(
        self, session: StreamSession, batch: bridge_pb2.EventBatch
    ) -> bridge_pb2.ServerEvent | None:
        """Publish the pairs of a ``publish_batch`` in order. A batch that does not decode,
        or holds more than ``max_publish_batch``, is refused whole (the ``err`` returned); a
        publish in it that the bus refuses gets its own ``err``, as a ``publish`` would."""
        session.last_seen = time.monotonic()
        limit = self.config.max_publish_batch
        if len(batch.topics) > limit:
            return error(
                WireCode.INVALID_ARGUMENT,
                f"publish_batch of {len(batch.topics)} publishes refused: this bridge takes "
                f"at most {limit}",
            )
        try:
            items = decode_batch(batch)
        except ProtocolError as exc:
            return error(WireCode.INVALID_EVENT, f"publish_batch refused: {exc}")
        self.publish_batches += 1
        publish = self.bus.publish
        for topic, event in items:
            try:
                await publish(topic, event)
            except InvalidTopicError as exc:
                await session.send(
                    error(WireCode.INVALID_TOPIC, f"publish to {topic!r}: {exc.reason}")
                )
            except InvalidEventError as exc:
                await session.send(error(WireCode.INVALID_EVENT, f"publish to {topic!r}: {exc}"))
        return None

    def heartbeat(self, agent_id: str | None) -> None:
        """Note a unary Heartbeat; with the caller's agent id, it keeps that stream alive."""
        if agent_id:
            session = self._sessions.get(agent_id)
            if session is not None:
                session.last_seen = time.monotonic()
                session.heartbeating = True

    async def _reap(self) -> None:
        timeout = self.config.heartbeat_timeout_s
        while True:
            await asyncio.sleep(max(0.02, timeout / 4))
            now = time.monotonic()
            for session in list(self._sessions.values()):
                silent = now - session.last_seen
                if session.heartbeating and silent > timeout and not session.ending:
                    text = f"agent {session.agent_id!r} sent no heartbeat for {silent:.1f} s"
                    session.end(
                        SessionEnd("UNAVAILABLE", text), error(WireCode.HEARTBEAT_TIMEOUT, text)
                    )

    # -- capabilities -------------------------------------------------------------------

    async def _serve(self, agent_id: str, capabilities: tuple[CapabilityDescriptor, ...]) -> None:
        """Make ``agent_id`` serve exactly ``capabilities`` through the broker."""
        wanted = {(c.name, c.version): c for c in capabilities}
        served = self._served.setdefault(agent_id, set())
        for key in served - wanted.keys():
            provider = self._providers.get(key)
            if provider is not None and not provider.remove(agent_id):
                del self._providers[key]
                if self.broker is not None:
                    await self.broker.unregister(*key)
        for key, descriptor in wanted.items():
            provider = self._providers.get(key)
            if provider is None:
                provider = RemoteCapabilityProvider(
                    descriptor, self._sessions.get, self.config.default_action_timeout_s
                )
                self._providers[key] = provider
                if self.broker is not None:
                    replaced = self.broker.register(provider)
                    if replaced is not None:
                        log.warning(
                            "remote capability %s:%s of agent %s replaces %r in the broker",
                            *key,
                            agent_id,
                            replaced,
                        )
            provider.add(agent_id)
        if wanted:
            self._served[agent_id] = set(wanted)
        else:
            self._served.pop(agent_id, None)

    def _list(self, registration: Registration) -> None:
        metadata = dict(registration.metadata)
        metadata[REMOTE_KEY] = REMOTE_VALUE
        metadata["peer"] = registration.peer
        self.directory.register(
            AgentRecord(
                registration.agent_id,
                topics=frozenset(registration.topics),
                capabilities=frozenset(c.name for c in registration.capabilities),
                metadata=metadata,
            )
        )

    # -- ForwardAction ------------------------------------------------------------------

    async def forward(
        self, request: action_pb2.ActionCall, caller: str | None
    ) -> action_pb2.ActionResult:
        """Run a call through the broker, as upstream: a call the broker cannot take (no
        broker, unknown capability, a malformed call) answers ERROR ``BROKER_ERROR``."""
        if self.broker is None:
            return _broker_error(request.id, "this bridge has no action broker", None)
        try:
            call = call_from_proto(request)
        except ValueError as exc:
            return _broker_error(request.id, f"malformed ActionCall: {exc}", None)
        if caller and AGENT_ID_HEADER not in call.headers:
            call.headers[AGENT_ID_HEADER] = caller
        try:
            result = await self.broker.invoke(call)
        except Exception as exc:  # noqa: BLE001  # a broker failure is the caller's answer
            return _broker_error(call.id, f"{type(exc).__name__}: {exc}", None)
        if result.error is not None and result.error.code == ErrorCode.NOT_FOUND:
            # Upstream clients expect BROKER_ERROR here; the cause stays in the details,
            # where the SDK reads it back, so remote code sees NOT_FOUND as embedded code does.
            return _broker_error(result.id, result.error.message, ErrorCode.NOT_FOUND)
        return result_to_proto(result)


def _broker_error(call_id: str, message: str, cause: str | None) -> action_pb2.ActionResult:
    details = {"cause": cause} if cause else {}
    result = ActionResult(
        id=call_id,
        status=ActionStatus.ERROR,
        error=ActionError(BROKER_ERROR, message, details),
    )
    return result_to_proto(result)


def _with_peer(registration: Registration, peer: str) -> Registration:
    return dataclasses.replace(registration, peer=peer)
