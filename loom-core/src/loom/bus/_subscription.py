"""Subscription: one pattern's claim on a delivery queue, with its filter and policy."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from loom._action import QoS
from loom._event import Event
from loom.bus._errors import SubscriptionClosed
from loom.bus._policy import DEFAULT_QUEUE_SIZES, Backpressure, DropReason, Policy
from loom.bus._queue import DeliveryQueue, Item, _Slot, _wake

if TYPE_CHECKING:
    import asyncio

__all__ = ["DropCallback", "Subscription"]

#: Told of every drop a subscription decides: the topic of the dropped event, the reason,
#: and whether that event had been counted as delivered (it was queued, then evicted).
DropCallback = Callable[[str, DropReason, bool], None]

# Results of Subscription._offer.
_TAKEN, _DROPPED, _MUST_WAIT = 1, 0, -1


def _no_drop_callback(topic: str, reason: DropReason, was_delivered: bool) -> None:
    return None


def _event_types(event_types: Iterable[str]) -> frozenset[str] | None:
    if isinstance(event_types, str):
        raise TypeError(
            f"event_types takes an iterable of str, not a str: write ({event_types!r},)"
        )
    types = frozenset(event_types)
    for t in types:
        if not isinstance(t, str):
            raise TypeError(f"event_types must hold str, not {type(t).__name__}: {t!r}")
    return types or None


class Subscription:
    """A subscription to a topic pattern: iterate it (or ``await get()``) for
    ``(topic, event)`` tuples.

    Made by :meth:`EventBus.subscribe`; a bus backend may also build one and feed it with
    :meth:`deliver`. Delivery hands over the published :class:`~loom.Event` object itself,
    no copy, so treat events as read-only.

    With a shared ``queue=``, the subscription delivers into that queue and its reading
    methods read the whole queue (every subscription's events); the queue's owner reads it.

    Attributes:
        id: unique on its bus.
        pattern: the topic pattern, NATS wildcards allowed.
        qos: the subscription's quality of service.
        event_types: the event types it takes; empty means all.
        backpressure: the settings in force (policy and queue size resolved).
        queue: the delivery queue it fills.
        dropped: deliveries to it that were dropped (sampled, superseded, queue full,
            backlog, closed).
        errors: for a handler subscription, how many times the handler raised.

    Example:
        .. code-block:: python

            sub = await bus.subscribe("sensor.*.temp", qos=QoS.BATCHED)
            async for topic, event in sub:
                ...
    """

    __slots__ = (
        "_closed",
        "_every",
        "_fast",
        "_key_of",
        "_last_refill",
        "_on_close",
        "_on_drop",
        "_overflow",
        "_owns_queue",
        "_pending",
        "_queue",
        "_rate",
        "_realtime",
        "_seen",
        "_seq",
        "_tokens",
        "_types",
        "backpressure",
        "dropped",
        "errors",
        "event_types",
        "id",
        "pattern",
        "qos",
        "queue",
        "task",
    )

    def __init__(
        self,
        id: str,
        pattern: str,
        *,
        qos: QoS = QoS.REALTIME,
        event_types: Iterable[str] = (),
        backpressure: Backpressure | None = None,
        queue: DeliveryQueue | None = None,
        on_drop: DropCallback | None = None,
        on_close: Callable[[Subscription], Awaitable[object]] | None = None,
        seq: int = 0,
    ) -> None:
        """Build a subscription (backends do this; users call ``bus.subscribe``).

        Args:
            id: unique id on the bus.
            pattern: the validated topic pattern.
            qos: quality of service; decides the default policy and queue size.
            event_types: event types to take; empty takes every type.
            backpressure: overrides of the QoS defaults.
            queue: a shared queue to deliver into; None makes one of the resolved size.
            on_drop: told of every drop, to count it in the backend's statistics.
            on_close: awaited by :meth:`close` to unsubscribe from the backend.
            seq: creation order, used by backends to keep delivery order stable.

        Raises:
            ValueError: the backpressure settings do not fit the QoS, or ``queue`` and
                ``backpressure.queue_size`` are both given.
            TypeError: ``event_types`` is not an iterable of str, or ``queue`` is not a
                :class:`DeliveryQueue`.
        """
        qos = QoS(qos)
        bp = backpressure if backpressure is not None else Backpressure()
        if not isinstance(bp, Backpressure):
            raise TypeError(f"backpressure must be a loom.bus.Backpressure, not {bp!r}")
        overflow = bp.overflow(qos)
        if queue is None:
            queue = DeliveryQueue(bp.queue_size or DEFAULT_QUEUE_SIZES[qos])
            owns = True
        elif not isinstance(queue, DeliveryQueue):
            raise TypeError(f"queue must be a loom.bus.DeliveryQueue, not {queue!r}")
        elif bp.queue_size is not None:
            raise ValueError("give either queue= (a shared queue) or backpressure.queue_size")
        else:
            owns = False
        self.id = id
        self.pattern = pattern
        self.qos = qos
        self._types = _event_types(event_types)
        self.event_types: frozenset[str] = self._types or frozenset()
        self.backpressure = Backpressure(
            bp.policy or overflow,
            sample_every=bp.sample_every,
            max_rate=bp.max_rate,
            aggregate_key=bp.aggregate_key,
            queue_size=queue.maxsize,
        )
        self.queue = queue
        self.dropped = 0
        self.errors = 0
        self.task: asyncio.Task[None] | None = None
        self._queue = queue
        self._owns_queue = owns
        self._overflow = overflow
        self._realtime = qos is QoS.REALTIME
        self._on_drop: DropCallback = on_drop or _no_drop_callback
        self._on_close = on_close
        self._seq = seq
        self._closed = False
        self._every = bp.sample_every or 0
        self._seen = 0
        self._rate = float(bp.max_rate or 0.0)
        self._tokens = self._rate
        self._last_refill = time.monotonic()
        self._key_of = bp.key_function()
        self._pending: dict[str, _Slot] = {}
        # Plain subscriptions (no sampling, no aggregation) take the bus's inlined fast path.
        self._fast = not self._every and not self._rate and self._key_of is None

    def __repr__(self) -> str:
        return (
            f"<Subscription {self.id} pattern={self.pattern!r} qos={self.qos.name} "
            f"queued={len(self._queue._items)}{' closed' if self._closed else ''}>"
        )

    # -- reading ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the subscription is closed (queued events may still be read)."""
        return self._closed

    def qsize(self) -> int:
        """How many events wait in the subscription's queue."""
        return len(self._queue._items)

    async def get(self) -> Item:
        """The next ``(topic, event)``, waiting for one.

        Raises:
            SubscriptionClosed: the subscription's queue is closed and drained.
        """
        return await self._queue.get()

    def get_nowait(self) -> Item:
        """The next ``(topic, event)`` without waiting.

        Raises:
            asyncio.QueueEmpty: nothing is queued.
            SubscriptionClosed: the queue is closed and drained.
        """
        return self._queue.get_nowait()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Item:
        queue = self._queue
        items = queue._items
        if items:  # inlined DeliveryQueue.get: one coroutine per event instead of two
            item = items.popleft()
            if queue._putters:
                _wake(queue._putters)
            if isinstance(item, _Slot):
                return item.take()
            return item
        try:
            return await queue.get()
        except SubscriptionClosed:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        """Unsubscribe: no more events arrive; queued ones can still be read."""
        if self._on_close is not None:
            await self._on_close(self)
        else:
            self._close()

    # -- delivering (for bus backends) -----------------------------------------------------

    def accepts(self, event: Event) -> bool:
        """Whether the event type passes the subscription's filter."""
        return self._types is None or event.type in self._types

    async def deliver(self, topic: str, event: Event) -> bool:
        """Offer one event, applying the filter, sampling, aggregation and overflow policy;
        waits for room only under BLOCK. For backends; the memory bus inlines this.

        Returns:
            True when the event was queued (or superseded a queued one), False when it was
            filtered out or dropped (drops are reported to ``on_drop``).
        """
        if self._types is not None and event.type not in self._types:
            return False
        item = (topic, event)
        result = self._offer(item)
        if result == _MUST_WAIT:
            return await self._offer_waiting(item)
        return result == _TAKEN

    def offer(self, topic: str, event: Event) -> bool:
        """Offer one event without waiting: :meth:`deliver` for backends that hand over
        many events in a row and must not await each (a Realtime subscription never
        waits, so for it the two are the same).

        Under BLOCK with a full queue the event is not queued: it is dropped as
        ``QUEUE_FULL`` (reported to ``on_drop``). Use :meth:`deliver` to wait for room.

        Returns:
            True when the event was queued (or superseded a queued one), False when it was
            filtered out or dropped.
        """
        if self._types is not None and event.type not in self._types:
            return False
        if self._fast:  # a plain, open subscription with room: the memory bus's fast path
            queue = self._queue
            items = queue._items
            if len(items) < queue._limit:
                items.append((topic, event))
                if queue._getters:
                    _wake(queue._getters)
                return True
        result = self._offer((topic, event))
        if result == _MUST_WAIT:
            self._drop(topic, DropReason.QUEUE_FULL)
            return False
        return result == _TAKEN

    def _drop(self, topic: str, reason: DropReason, was_delivered: bool = False) -> None:
        self.dropped += 1
        self._on_drop(topic, reason, was_delivered)

    def _offer(self, item: Item) -> int:
        """Try to queue ``item`` now: _TAKEN, _DROPPED (reported) or _MUST_WAIT (BLOCK)."""
        if self._closed or self._queue._closed:
            self._drop(item[0], DropReason.CLOSED)
            return _DROPPED
        if (self._every or self._rate) and not self._sample():
            self._drop(item[0], DropReason.SAMPLED)
            return _DROPPED
        return self._enqueue(item)

    def _sample(self) -> bool:
        if self._every:
            seen = self._seen
            self._seen = seen + 1
            if seen % self._every:
                return False
        if self._rate:
            now = time.monotonic()
            tokens = min(self._rate, self._tokens + (now - self._last_refill) * self._rate)
            self._last_refill = now
            if tokens < 1.0:
                self._tokens = tokens
                return False
            self._tokens = tokens - 1.0
        return True

    def _enqueue(self, item: Item) -> int:
        queue = self._queue
        entry: Item | _Slot = item
        slot: _Slot | None = None
        if self._key_of is not None:
            key = self._key_of(item[1])
            if key is not None:
                held = self._pending.get(key)
                if held is not None:  # latest wins, in the place the key already holds
                    old_topic = held.topic
                    held.topic, held.event = item
                    self._drop(old_topic, DropReason.AGGREGATED, True)
                    return _TAKEN
                entry = slot = _Slot(item[0], item[1], key, self._pending)
        if len(queue._items) >= queue.maxsize:
            overflow = self._overflow
            if overflow is Policy.BLOCK:
                return _MUST_WAIT
            if overflow is Policy.DROP_NEWEST:
                self._drop(item[0], DropReason.QUEUE_FULL)
                return _DROPPED
            evicted = queue._evict_oldest()
            self._drop(evicted[0], DropReason.QUEUE_FULL, True)
        queue._append(entry)
        if slot is not None:
            self._pending[slot.key] = slot
        return _TAKEN

    async def _offer_waiting(self, item: Item) -> bool:
        """Queue ``item`` under BLOCK after :meth:`_offer` said to wait."""
        while True:
            if not await self._queue._wait_for_room() or self._closed:
                self._drop(item[0], DropReason.CLOSED)
                return False
            result = self._enqueue(item)
            if result != _MUST_WAIT:
                return result == _TAKEN

    def _close(self) -> None:
        """Stop taking events; close the queue when it is the subscription's own."""
        self._closed = True
        self._fast = False
        if self._owns_queue:
            self._queue.close()
