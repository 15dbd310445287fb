"""A remote agent's connection to the bridge: registration, the stream, heartbeats, reconnects.

The link keeps one gRPC channel. Each connection registers, opens the stream with the Ack
first, and then runs three tasks until one fails: the reader (deliveries, action calls,
pongs, errors), the writer (the bounded outbound queue) and the heartbeat. Any failure
ends the connection, and the link connects again after a backoff (0.5 s, doubling up to
10 s by default), re-registering first. Messages queued meanwhile wait, bounded, and go out
on the next connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import grpc
import grpc.aio

from loom import ActionCall, ActionError, ActionResult, ActionStatus, Event
from loom.actions import ErrorCode
from loom.errors import InvalidEventError, ProtocolError
from loom.v1 import bridge_pb2
from loom_bridge._auth import bearer_metadata
from loom_bridge._batch import decode_batch, fill_batch
from loom_bridge._calls import call_from_proto, call_to_proto, result_from_proto, result_to_proto
from loom_bridge._client_config import ClientConfig
from loom_bridge._errors import BridgeError, NotConnectedError, RegistrationError
from loom_bridge._registration import (
    DELIVERY_BATCH_KEY,
    MAX_MESSAGE_BYTES_KEY,
    PUBLISH_BATCH_KEY,
)
from loom_bridge._wire import (
    AGENT_ID_HEADER,
    EOF,
    BridgeStub,
    bridge_stub,
    event_from_proto,
    fill_event,
    now_ms,
)
from loom_bridge._wire import ErrorCode as WireCode

__all__ = ["BridgeLink", "LinkClosed"]

log = logging.getLogger("loom.bridge.client")

#: How many action calls a link runs at once; more wait their turn.
MAX_CONCURRENT_CALLS = 64
#: Messages the writer moves out of the outbound queue at a time.
TAKE_BATCH = 32

# How long stop() waits for the bridge to read what was written and end the stream.
_CLOSE_GRACE_S = 1.0

Stream = grpc.aio.StreamStreamCall[bridge_pb2.ClientEvent, bridge_pb2.ServerEvent]
#: What waits to be sent: a publish as ``(topic, event)``, anything else built.
Outbound = bridge_pb2.ClientEvent | tuple[str, Event]
DeliveryCallback = Callable[[str, Event], Awaitable[None]]
ActionCallback = Callable[[ActionCall], Awaitable[ActionResult]]


class LinkClosed(BridgeError):
    """The link stopped for good: stopped by its owner, replaced by another connection of
    the same agent, or refused its registration."""


class _Replaced(Exception):
    pass


class BridgeLink:
    """One agent's connection to a bridge, kept up until :meth:`stop`.

    Args:
        agent_id: the agent's id, sent in the Ack and the ``x-agent-id`` header.
        config: where the bridge is and how to talk to it.
        registration: builds the ``AgentRegisterRequest`` sent at each (re)connection and
            by :meth:`register_now`.
        on_delivery: awaited for each delivery, in order (the reader waits for it).
        on_action_call: runs a pushed ``action_call`` and returns its result.
    """

    def __init__(
        self,
        agent_id: str,
        config: ClientConfig,
        *,
        registration: Callable[[], bridge_pb2.AgentRegisterRequest],
        on_delivery: DeliveryCallback,
        on_action_call: ActionCallback | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.config = config
        self._registration = registration
        self._on_delivery = on_delivery
        self._on_action_call = on_action_call
        self._metadata = bearer_metadata(config.token)
        self._agent_metadata = (*self._metadata, (AGENT_ID_HEADER, agent_id))
        # Publishes wait as (topic, event), encoded when written: one message each, or a
        # publish_batch of several when the bridge offers it. Other messages wait built.
        self._outbound: asyncio.Queue[Outbound] = asyncio.Queue(config.outbound_queue)
        self._taken: deque[Outbound] = deque()  # out of the queue, not written
        # What this connection's bridge takes in one publish_batch (1: it offers none),
        # and the size budget of one batch.
        self._publish_batch = 1
        self._batch_budget = config.max_message_bytes // 8
        #: Publishes dropped because their event could not be encoded.
        self.unencodable = 0
        self._connected = asyncio.Event()
        self._channel: grpc.aio.Channel | None = None
        self._stub: BridgeStub | None = None
        self._task: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._call_slots = asyncio.Semaphore(MAX_CONCURRENT_CALLS)
        self._stopping = False
        self._call: Stream | None = None
        self._closed_reason: BridgeError | None = None
        #: Successful connections so far (the first one included).
        self.connections = 0
        #: The last reason a connection ended or failed, for diagnosis.
        self.last_error: str | None = None
        #: The latest ``err`` messages from the bridge, as ``(code, message)``.
        self.errors: deque[tuple[str, str]] = deque(maxlen=64)
        #: Server time of the last ``pong``, if any.
        self.last_pong_ms: int | None = None

    def __repr__(self) -> str:
        state = "connected" if self.connected else ("stopped" if self._stopping else "connecting")
        return f"<BridgeLink {self.agent_id} {self.config.address} {state}>"

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a stream is open now."""
        return self._connected.is_set()

    @property
    def closed(self) -> bool:
        """Whether the link stopped for good."""
        return self._task is not None and self._task.done()

    @property
    def closed_reason(self) -> BridgeError | None:
        """Why the link stopped on its own (registration refused, replaced), if it did."""
        return self._closed_reason

    async def start(self, *, wait: bool = True) -> None:
        """Start connecting; with ``wait``, return once the first stream is open.

        Raises:
            RegistrationError: the bridge refused the registration.
            NotConnectedError: no connection within ``config.connect_timeout_s``.
        """
        if self._task is not None:
            return
        self._channel = self.config.channel()
        self._stub = bridge_stub(self._channel)
        self._task = asyncio.create_task(self._run(), name=f"loom.bridge link {self.agent_id}")
        if wait:
            await self.wait_connected(self.config.connect_timeout_s)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until a stream is open.

        Raises:
            RegistrationError: the bridge refused the registration.
            LinkClosed: the link stopped.
            NotConnectedError: ``timeout`` passed first (the link keeps trying).
        """
        if self._task is None:
            raise NotConnectedError(f"agent {self.agent_id!r}: the link is not started")
        waiter = asyncio.ensure_future(self._connected.wait())
        try:
            await asyncio.wait((waiter, self._task), timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            waiter.cancel()
        if self._connected.is_set():
            return
        if self._task.done():
            reason = self._closed_reason
            if isinstance(reason, BridgeError):
                raise reason
            raise LinkClosed(f"agent {self.agent_id!r}: the link is stopped")
        raise NotConnectedError(
            f"agent {self.agent_id!r}: no connection to the bridge at {self.config.address} "
            f"within {timeout or 0:g} s (last error: {self.last_error or 'none'})"
        )

    async def wait_closed(self) -> None:
        """Wait until the link stops (after :meth:`stop`, or on its own)."""
        if self._task is not None:
            await asyncio.gather(asyncio.shield(self._task), return_exceptions=True)

    async def stop(self) -> None:
        """Close the stream and the channel; running action calls are cancelled.

        The stream is half-closed first, so the bridge reads every message already written
        (cancelling the call could drop those still in flight), and the bridge gets a moment
        to end the stream before it is cancelled.
        """
        self._stopping = True
        call, task = self._call, self._task
        if call is not None and task is not None and not task.done() and self.connected:
            with contextlib.suppress(grpc.aio.AioRpcError, RuntimeError, TimeoutError):
                await asyncio.wait_for(call.done_writing(), _CLOSE_GRACE_S)
                await asyncio.wait_for(asyncio.shield(task), _CLOSE_GRACE_S)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for task in list(self._calls):
            task.cancel()
        await asyncio.gather(*self._calls, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close(None)
        self._connected.clear()

    # -- what the agent sends -------------------------------------------------------------

    async def publish(self, topic: str, event: Event) -> None:
        """Queue a ``publish``; waits while the outbound queue is full.

        Raises:
            LinkClosed: the link is stopped.
            InvalidEventError: a field the wire cannot carry (a metadata key or value, a tag,
                the id or source that is not a str).
        """
        if self._stopping or self.closed:
            raise LinkClosed(f"agent {self.agent_id!r}: cannot publish, the link is closed")
        _check_encodable(event)
        item = (topic, event)
        try:
            self._outbound.put_nowait(item)
        except asyncio.QueueFull:
            await self._outbound.put(item)

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every queued message is written, while connected, up to
        ``timeout_s``; whether the queue emptied."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.outbound_size() and self.connected and loop.time() < deadline:
            await asyncio.sleep(0.005)
        return not self.outbound_size()

    def outbound_size(self) -> int:
        """Messages waiting to be sent."""
        return self._outbound.qsize() + len(self._taken)

    async def register_now(self) -> None:
        """Send the current registration now, when connected (else the next connection will).

        Raises:
            RegistrationError: the bridge refused it.
        """
        stub = self._stub
        if stub is None or not self.connected:
            return
        response = await stub.RegisterAgent(
            self._request(), timeout=self.config.call_timeout_s, metadata=self._metadata
        )
        if not response.success:
            raise RegistrationError(self.agent_id, response.error_message)

    def _accept_offer(self, offer: Mapping[str, str]) -> None:
        """Batch publishes as far as this connection's bridge offers (upstream: not at all)."""
        config = self.config
        offered = _positive(offer.get(PUBLISH_BATCH_KEY))
        self._publish_batch = min(config.publish_batch, offered or 1)
        limit = min(config.max_message_bytes, _positive(offer.get(MAX_MESSAGE_BYTES_KEY)) or 0)
        self._batch_budget = (limit or config.max_message_bytes) // 8

    def _request(self) -> bridge_pb2.AgentRegisterRequest:
        """The owner's registration, asking for batched deliveries unless it says otherwise."""
        request = self._registration()
        batch = self.config.delivery_batch
        if batch > 1 and DELIVERY_BATCH_KEY not in request.metadata:
            request.metadata[DELIVERY_BATCH_KEY] = str(batch)
        return request

    async def forward(self, call: ActionCall) -> ActionResult:
        """Run a call through the bridge's broker (ForwardAction).

        Never raises for a failed call: an unreachable bridge answers RETRYABLE with
        PROVIDER_UNAVAILABLE, a missed deadline TIMEOUT. Upstream's ``BROKER_ERROR`` for an
        unknown capability comes back as NOT_FOUND, as the broker says in process.
        """
        stub = self._stub
        if stub is None or self._stopping:
            return _failed(
                call.id, ActionStatus.ERROR, ErrorCode.PROVIDER_UNAVAILABLE, "not connected"
            )
        call.headers.setdefault(AGENT_ID_HEADER, self.agent_id)
        timeout_s = call.timeout_ms / 1000 if call.timeout_ms > 0 else self.config.action_timeout_s
        try:
            message = await stub.ForwardAction(
                call_to_proto(call),
                timeout=timeout_s + 1.0,  # the broker's own timeout answers first
                # The caller travels in the call's headers; gRPC metadata costs ~30 µs a call.
                metadata=self._metadata,
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                return _failed(
                    call.id, ActionStatus.TIMEOUT, ErrorCode.TIMEOUT, exc.details() or ""
                )
            return _failed(
                call.id,
                ActionStatus.RETRYABLE,
                ErrorCode.PROVIDER_UNAVAILABLE,
                f"bridge call failed: {exc.code().name}: {exc.details()}",
            )
        result = result_from_proto(message)
        error = result.error
        if error is not None and error.code == "BROKER_ERROR" and error.details.get("cause"):
            error.code = error.details.pop("cause")
        return result

    async def heartbeat(self) -> bridge_pb2.HeartbeatResponse:
        """One Heartbeat call (with ``x-agent-id``, so the bridge counts it for this stream).

        Raises:
            grpc.aio.AioRpcError: the call failed.
            NotConnectedError: the link is not started.
        """
        if self._stub is None:
            raise NotConnectedError(f"agent {self.agent_id!r}: the link is not started")
        response: bridge_pb2.HeartbeatResponse = await self._stub.Heartbeat(
            bridge_pb2.HeartbeatRequest(timestamp_ms=now_ms()),
            timeout=self.config.heartbeat_timeout_s,
            metadata=self._agent_metadata,
        )
        return response

    # -- the connection loop --------------------------------------------------------------

    async def _run(self) -> None:
        backoff = self.config.backoff
        delay = backoff.initial_s
        while True:
            fatal = await self._attempt()
            worked = self._connected.is_set()
            self._connected.clear()
            if fatal is not None:
                self._closed_reason = fatal
                log.error("%s; not reconnecting", fatal)
                return
            if self._stop_requested():
                return
            if worked:
                delay = backoff.initial_s
            log.warning(
                "agent %s: %s; reconnecting in %.1f s", self.agent_id, self.last_error, delay
            )
            await asyncio.sleep(delay)
            if not worked:
                delay = backoff.next(delay)

    def _stop_requested(self) -> bool:
        # A method, not the attribute: the loop's condition must be read afresh each time.
        return self._stopping

    async def _attempt(self) -> BridgeError | None:
        """One connection, served until it fails; the reason not to try again, if any."""
        try:
            await self._connection()
        except _Replaced as exc:
            return LinkClosed(f"agent {self.agent_id!r}: {exc}")
        except RegistrationError as exc:
            self.last_error = str(exc)
            # A refusal on the first connection will not get better; a later one may be a
            # refuse-policy server that has not yet seen our old connection die.
            return exc if self.connections == 0 else None
        except (grpc.aio.AioRpcError, ConnectionError, TimeoutError, ProtocolError) as exc:
            self.last_error = _describe(exc)
            if (
                self.connections == 0
                and isinstance(exc, grpc.aio.AioRpcError)
                and exc.code() is grpc.StatusCode.UNAUTHENTICATED
            ):
                return NotConnectedError(f"agent {self.agent_id!r}: {self.last_error}")
        return None

    async def _connection(self) -> None:
        """Register, open the stream and serve it until it fails (raises) or ends."""
        stub = self._stub
        assert stub is not None  # set by start()
        response = await stub.RegisterAgent(
            self._request(), timeout=self.config.call_timeout_s, metadata=self._metadata
        )
        if not response.success:
            raise RegistrationError(self.agent_id, response.error_message)
        self._accept_offer(response.metadata)
        call = stub.EventStream(None, metadata=self._agent_metadata)
        self._call = call
        tasks: list[asyncio.Task[None]] = []
        try:
            # The Ack goes out before anything is awaited on the stream (upstream's rule).
            await call.write(bridge_pb2.ClientEvent(ack=bridge_pb2.Ack(message_id=self.agent_id)))
            self.connections += 1
            self._connected.set()
            log.info("agent %s connected to the bridge at %s", self.agent_id, self.config.address)
            tasks = [
                asyncio.create_task(self._read(call)),
                asyncio.create_task(self._write(call)),
                asyncio.create_task(self._beat()),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise ConnectionError("the bridge ended the stream")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._call = None
            call.cancel()

    async def _read(self, call: Stream) -> None:
        on_delivery = self._on_delivery
        while True:
            read = await call.read()
            if read is EOF:
                status, details = await call.code(), await call.details()
                raise ConnectionError(f"the bridge closed the stream ({status.name}: {details})")
            message = cast(bridge_pb2.ServerEvent, read)
            kind = message.WhichOneof("msg")
            if kind == "delivery_batch":
                try:
                    items = decode_batch(message.delivery_batch)
                except ProtocolError as exc:
                    log.warning("agent %s: dropped a delivery batch: %s", self.agent_id, exc)
                    continue
                for topic, event in items:
                    await on_delivery(topic, event)
            elif kind == "delivery":
                inner = message.delivery
                try:
                    event = event_from_proto(inner.event)
                except ProtocolError as exc:
                    log.warning(
                        "agent %s: dropped a delivery on %r: %s", self.agent_id, inner.topic, exc
                    )
                    continue
                await on_delivery(inner.topic, event)
            elif kind == "action_call":
                self._start_call(message.action_call)
            elif kind == "pong":
                self.last_pong_ms = message.pong.timestamp_ms
            elif kind == "err":
                code, text = message.err.code, message.err.message
                self.errors.append((code, text))
                log.warning("agent %s: the bridge says %s: %s", self.agent_id, code, text)
                if code == WireCode.REPLACED:
                    raise _Replaced(text)

    async def _write(self, call: Stream) -> None:
        queue = self._outbound
        taken = self._taken
        write = call.write
        while True:
            if not taken:
                try:
                    taken.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    taken.append(await queue.get())
                # Several at once: a publisher waiting for room wakes once per batch.
                more = max(TAKE_BATCH, self._publish_batch) - 1
                for _ in range(min(more, queue.qsize())):
                    taken.append(queue.get_nowait())
            message, count = self._encode(taken)
            if message is not None:
                await write(message)
            for _ in range(count):  # written; what failed stays for the next connection
                taken.popleft()

    def _encode(self, taken: deque[Outbound]) -> tuple[bridge_pb2.ClientEvent | None, int]:
        """The next message to write from the head of ``taken`` and how many entries it
        covers: a built message as it is, a run of publishes as one ``publish_batch`` (when
        the bridge offers it) or one ``publish``. None: the head could not be encoded (it is
        dropped, with a warning)."""
        head = taken[0]
        if isinstance(head, bridge_pb2.ClientEvent):
            return head, 1
        limit = self._publish_batch
        run: list[tuple[str, Event]] = []
        if limit > 1:
            for entry in taken:
                if isinstance(entry, bridge_pb2.ClientEvent) or len(run) == limit:
                    break
                run.append(entry)
        try:
            message = bridge_pb2.ClientEvent()
            if len(run) > 1:
                return message, fill_batch(message.publish_batch, run, self._batch_budget)
            inner = message.publish
            inner.topic = head[0]
            fill_event(inner.event, head[1])
            return message, 1
        except (TypeError, ValueError) as exc:
            if len(run) > 1:
                self._publish_batch = 1  # find the culprit: one publish at a time
                try:
                    return self._encode(taken)
                finally:
                    self._publish_batch = limit
            self.unencodable += 1
            log.warning(
                "agent %s: dropped a publish to %r that cannot be encoded: %s",
                self.agent_id,
                head[0],
                exc,
            )
            return None, 1

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            await self.heartbeat()

    # -- action calls ---------------------------------------------------------------------

    def _start_call(self, message: Any) -> None:
        task = asyncio.create_task(self._answer(message))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _answer(self, message: Any) -> None:
        async with self._call_slots:
            try:
                call = call_from_proto(message)
            except ValueError as exc:
                result = _failed(message.id, ActionStatus.ERROR, ErrorCode.INVALID_PARAMS, str(exc))
            else:
                if self._on_action_call is None:
                    result = _failed(
                        call.id,
                        ActionStatus.ERROR,
                        ErrorCode.NOT_FOUND,
                        f"agent {self.agent_id!r} serves no capabilities",
                    )
                else:
                    result = await self._on_action_call(call)
            await self._outbound.put(bridge_pb2.ClientEvent(action_result=result_to_proto(result)))


def _check_encodable(event: Event) -> None:
    """Refuse now what encoding would refuse later, in the writer (the fields that
    :class:`~loom.Event` itself does not check)."""
    for key, value in event.metadata.items():
        if key.__class__ is not str or value.__class__ is not str:
            raise InvalidEventError(
                f"event {event.id!r}: metadata {key!r}: {value!r} is not str: str; the wire "
                "carries only strings there"
            )
    for tag in event.tags:
        if tag.__class__ is not str:
            raise InvalidEventError(f"event {event.id!r}: tag {tag!r} is not a str")
    if event.id.__class__ is not str or event.source.__class__ is not str:
        raise InvalidEventError(f"event {event.id!r}: its id and source must be str")


def _positive(text: str | None) -> int | None:
    """A positive integer from an offer's value; None when missing or malformed."""
    if text is None or not text.isdecimal() or len(text) > 12:
        return None
    return int(text) or None


def _failed(call_id: str, status: ActionStatus, code: str, message: str) -> ActionResult:
    return ActionResult(id=call_id, status=status, error=ActionError(str(code), message))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"
