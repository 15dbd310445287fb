"""One live ``EventStream``: what it sends, what it subscribed to, the calls it owes.

Everything it sends is bounded. Deliveries wait in one :class:`~loom.bus.DeliveryQueue`
(``outbound_queue`` long, plus what the writer holds: at most :data:`TAKE_BATCH`, or one
batch for an agent that asked for ``delivery_batch``) that all of the stream's
subscriptions feed with the agent's QoS:
under Batched (the default) a client that stops reading fills it and the publishers wait;
under Realtime the oldest deliveries are dropped and counted by the bus. Pongs, errors
and action calls wait in a second, small queue that is written first.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loom import ActionCall, ActionResult, Event
from loom.actions import CapabilityError, ErrorCode
from loom.bus import DeliveryQueue, EventBus, Item, Subscription, SubscriptionClosed
from loom.v1 import action_pb2, bridge_pb2
from loom_bridge._batch import encode_batch
from loom_bridge._calls import call_to_proto, result_from_proto
from loom_bridge._registration import Registration
from loom_bridge._wire import delivery

if TYPE_CHECKING:
    from loom_bridge._config import BridgeConfig

__all__ = ["TAKE_BATCH", "SessionClosed", "SessionEnd", "StreamSession"]

#: Deliveries the writer moves out of the queue at a time (bounded: see ``_take_batch``).
TAKE_BATCH = 32


class SessionClosed(Exception):
    """The stream is ending: nothing more can be sent on it."""


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """Why a stream ended: a gRPC status name (None: OK) and its details."""

    status: str | None = None
    details: str = ""


class StreamSession:
    """The server side of one agent's stream.

    Args:
        registration: the agent's registration when the stream opened.
        config: the bridge's settings (queue bounds, in-flight bound).
    """

    __slots__ = (
        "_control",
        "_control_room",
        "_dedup",
        "_ending",
        "_get_task",
        "_last",
        "_pending",
        "_ready",
        "_wakeup",
        "config",
        "end_reason",
        "ended",
        "heartbeating",
        "last_seen",
        "queue",
        "registration",
        "sent",
        "subscriptions",
    )

    def __init__(self, registration: Registration, config: BridgeConfig) -> None:
        self.registration = registration
        self.config = config
        self.queue = DeliveryQueue(config.outbound_queue)
        self.subscriptions: dict[str, Subscription] = {}
        self._control: deque[bridge_pb2.ServerEvent] = deque()
        self._ready: deque[Item] = deque()  # deliveries taken from the queue, in order
        self._control_room: deque[asyncio.Future[None]] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._get_task: asyncio.Task[Item] | None = None
        self._pending: dict[str, asyncio.Future[ActionResult]] = {}
        self._ending = False
        # With overlapping patterns one publish reaches several of the stream's
        # subscriptions; the agent gets it once (the same Event object, back to back).
        self._dedup = False
        self._last: tuple[str, object] = ("", None)
        #: Set once :meth:`end` is called; the handler waits on it besides its tasks.
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.end_reason = SessionEnd()
        self.last_seen = time.monotonic()
        self.heartbeating = False
        self.sent = 0

    def __repr__(self) -> str:
        return (
            f"<StreamSession {self.agent_id} peer={self.peer} queued={self.queue.qsize()} "
            f"pending={len(self._pending)}{' ending' if self._ending else ''}>"
        )

    @property
    def agent_id(self) -> str:
        """The agent this stream belongs to."""
        return self.registration.agent_id

    @property
    def peer(self) -> str:
        """The gRPC peer of the stream."""
        return self.registration.peer

    @property
    def ending(self) -> bool:
        """Whether :meth:`end` was called."""
        return self._ending

    def control_size(self) -> int:
        """Control messages (pongs, errors, action calls) waiting to be written."""
        return len(self._control)

    @property
    def inflight(self) -> int:
        """Action calls pushed and not answered yet."""
        return len(self._pending)

    # -- subscriptions ------------------------------------------------------------------

    async def subscribe(self, bus: EventBus, patterns: tuple[str, ...]) -> None:
        """Make the stream's subscriptions exactly ``patterns`` (adding and dropping), with
        the registration's QoS (all of them again when it changed)."""
        qos = self.registration.qos
        stale = [p for p, sub in self.subscriptions.items() if p not in patterns or sub.qos != qos]
        for pattern in stale:
            await bus.unsubscribe(self.subscriptions.pop(pattern).id)
        for pattern in patterns:
            if pattern not in self.subscriptions and not self._ending:
                self.subscriptions[pattern] = await bus.subscribe(
                    pattern, qos=qos, queue=self.queue
                )
        self._dedup = _any_overlap(tuple(self.subscriptions))

    # -- outbound -----------------------------------------------------------------------

    async def send(self, message: bridge_pb2.ServerEvent) -> None:
        """Queue a control message (pong, err, action_call), waiting while the queue is full.

        Raises:
            SessionClosed: the stream is ending.
        """
        while len(self._control) >= self.config.control_queue:
            if self._ending:
                raise SessionClosed(f"the stream of agent {self.agent_id!r} is ending")
            room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._control_room.append(room)
            try:
                await room
            finally:
                if not room.done():
                    room.cancel()
        if self._ending:
            raise SessionClosed(f"the stream of agent {self.agent_id!r} is ending")
        self._control.append(message)
        self._wake()

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def take(self) -> bridge_pb2.ServerEvent | None:
        """The next message to write if one is ready: control messages first, then
        deliveries in order. None when nothing is ready (:meth:`wait` for more) or the
        stream is over (:meth:`wait` then answers False)."""
        control = self._control
        if control:
            message = control.popleft()
            room = self._control_room
            while room:
                waiter = room.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    break
            self.sent += 1
            return message
        if self._ending:
            return None
        item = self._next_item()
        if item is None:
            return None
        limit = self.registration.delivery_batch
        if limit > 1 and (self._ready or (self._get_task is None and self.queue.qsize())):
            return self._batch(item, min(limit, self.config.max_delivery_batch))
        self.sent += 1
        return delivery(*item)

    def _next_item(self) -> Item | None:
        """The next delivery in order (repeats skipped) if one is ready without waiting."""
        ready = self._ready
        while True:
            if ready:
                item = ready.popleft()
            else:
                get_task = self._get_task
                try:
                    if get_task is None:
                        item = self._take_batch()
                    elif get_task.done():
                        # What the wait below read comes before anything still queued.
                        self._get_task = None
                        item = get_task.result()
                    else:
                        return None
                except asyncio.QueueEmpty:
                    return None
                except SubscriptionClosed:  # the bus shut down under the stream
                    self.end(SessionEnd("UNAVAILABLE", "the bus shut down"))
                    return None
            if self._dedup and self._repeats(*item):
                continue
            return item

    def _batch(self, first: Item, limit: int) -> bridge_pb2.ServerEvent:
        """``delivery_batch`` of ``first`` and what else is ready, up to ``limit`` deliveries
        and an eighth of ``max_message_bytes``; a plain ``delivery`` when nothing else is."""
        items = [first]
        ready = self._ready
        get = self.queue.get_nowait
        dedup = self._dedup
        # A pending get reads before anything still queued: take from the queue only without.
        direct = self._get_task is None
        while len(items) < limit:
            if ready:
                item = ready.popleft()
            elif direct:
                try:
                    item = get()
                except (asyncio.QueueEmpty, SubscriptionClosed):  # the next take() sees a close
                    break
            else:
                break
            if dedup and self._repeats(*item):
                continue
            items.append(item)
        if len(items) == 1:
            self.sent += 1
            return delivery(*first)
        message, used = encode_batch(items, self.config.max_message_bytes // 8)
        if used < len(items):  # over the size budget: the rest goes in the next message
            ready.extendleft(reversed(items[used:]))
            self._last = items[used - 1]
        self.sent += used
        return message

    def _take_batch(self) -> Item:
        """The next queued delivery, moving up to :data:`TAKE_BATCH` - 1 more to ``_ready``.

        Taking several at once frees several places in the queue at once, so a publisher
        waiting for room wakes once per batch rather than once per event.

        Raises:
            asyncio.QueueEmpty: nothing is queued.
            SubscriptionClosed: the queue is closed and drained.
        """
        get = self.queue.get_nowait
        first = get()
        ready = self._ready
        for _ in range(min(TAKE_BATCH - 1, self.queue.qsize())):
            ready.append(get())
        return first

    async def wait(self) -> bool:
        """Wait until :meth:`take` has a message; False when the stream is over."""
        if self._control:
            return True
        if self._ending:
            return False
        if self._ready:
            return True
        get_task = self._get_task
        if get_task is None:
            # The pending get stays across calls, so that no delivery is read out of order.
            get_task = self._get_task = asyncio.ensure_future(self.queue.get())
        if not get_task.done():
            wakeup = self._wakeup = asyncio.get_running_loop().create_future()
            await asyncio.wait((get_task, wakeup), return_when=asyncio.FIRST_COMPLETED)
            self._wakeup = None
        return True

    async def next_message(self) -> bridge_pb2.ServerEvent | None:
        """The next message to write, waiting for one; None once the stream is over."""
        while True:
            message = self.take()
            if message is not None:
                return message
            if not await self.wait():
                return None

    def _repeats(self, topic: str, event: Event) -> bool:
        last_topic, last_event = self._last
        if last_event is event and last_topic == topic:
            return True
        self._last = (topic, event)
        return False

    def end(self, reason: SessionEnd, final: bridge_pb2.ServerEvent | None = None) -> None:
        """Start closing: ``final`` (an ``err``) is the last message written, then the stream
        ends with ``reason``. Calls in flight fail with PROVIDER_UNAVAILABLE."""
        if self._ending:
            return
        self.end_reason = reason
        if final is not None:
            self._control.append(final)
        self._ending = True
        self._wake()
        while self._control_room:
            waiter = self._control_room.popleft()
            if not waiter.done():
                waiter.set_result(None)
        self.fail_pending(f"agent {self.agent_id!r} disconnected while the call was in flight")
        if not self.ended.done():
            self.ended.set_result(None)

    async def teardown(self, bus: EventBus) -> None:
        """Drop the subscriptions, close the queue, fail the calls in flight."""
        if not self._ending:
            self.end(SessionEnd())
        for subscription in self.subscriptions.values():
            await bus.unsubscribe(subscription.id)
        self.subscriptions.clear()
        self.queue.close()
        get_task, self._get_task = self._get_task, None
        if get_task is not None:
            get_task.cancel()
            await asyncio.gather(get_task, return_exceptions=True)  # retrieves its outcome

    # -- action calls -------------------------------------------------------------------

    async def call(self, call: ActionCall, timeout_s: float) -> ActionResult:
        """Push ``call`` as ``action_call`` and wait for the ``action_result`` with its id.

        Raises:
            CapabilityError: PROVIDER_UNAVAILABLE when the stream ends first or too many
                calls are in flight; TIMEOUT when no result comes within ``timeout_s``.
        """
        if self._ending:
            raise CapabilityError(
                ErrorCode.PROVIDER_UNAVAILABLE,
                f"agent {self.agent_id!r} is disconnecting",
                retryable=True,
            )
        future = self._pending.get(call.id)
        owner = future is None
        if future is None:
            if len(self._pending) >= self.config.max_inflight_calls:
                raise CapabilityError(
                    ErrorCode.PROVIDER_UNAVAILABLE,
                    f"agent {self.agent_id!r} has {len(self._pending)} calls in flight already",
                    retryable=True,
                )
            future = asyncio.get_running_loop().create_future()
            self._pending[call.id] = future
        try:
            async with asyncio.timeout(timeout_s):
                if owner:
                    try:
                        await self.send(bridge_pb2.ServerEvent(action_call=call_to_proto(call)))
                    except SessionClosed as exc:
                        raise CapabilityError(
                            ErrorCode.PROVIDER_UNAVAILABLE, str(exc), retryable=True
                        ) from None
                return await asyncio.shield(future)
        except TimeoutError:
            raise CapabilityError(
                ErrorCode.TIMEOUT,
                f"agent {self.agent_id!r} did not answer call {call.id!r} "
                f"({call.capability!r}) within {timeout_s:g} s",
            ) from None
        finally:
            if owner and self._pending.get(call.id) is future:
                del self._pending[call.id]
                if not future.done():
                    future.cancel()

    def resolve(self, message: action_pb2.ActionResult) -> bool:
        """Hand an ``action_result`` to the call waiting for it; False for an unknown id."""
        future = self._pending.pop(message.id, None)
        if future is None or future.done():
            return False
        future.set_result(result_from_proto(message))
        return True

    def fail_pending(self, reason: str) -> None:
        """Fail every call in flight with PROVIDER_UNAVAILABLE (retryable)."""
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(
                    CapabilityError(ErrorCode.PROVIDER_UNAVAILABLE, reason, retryable=True)
                )
                future.exception()  # retrieved here: a waiter may have gone (timeout)


def _overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether some concrete topic matches both tokenised patterns."""
    for x, y in zip(a, b, strict=False):
        if x == ">" or y == ">":
            return True  # '>' takes one or more tokens: whatever the other has left
        if x != y and x != "*" and y != "*":
            return False
    return len(a) == len(b)


def _any_overlap(patterns: tuple[str, ...]) -> bool:
    tokens = [tuple(p.split(".")) for p in patterns]
    return any(
        _overlap(tokens[i], tokens[j])
        for i in range(len(tokens))
        for j in range(i + 1, len(tokens))
    )
