"""DeliveryQueue: the bounded queue of ``(topic, event)`` that subscribers read from."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TypeAlias

from loom._event import Event
from loom.bus._errors import SubscriptionClosed

__all__ = ["DeliveryQueue", "Item"]

#: What a queue delivers: the concrete topic an event was published on, and the event.
Item: TypeAlias = tuple[str, Event]


class _Slot:
    """A queued place held by an aggregating subscription: a newer event with the same key
    overwrites ``topic``/``event`` in place, so the place keeps its turn in the queue."""

    __slots__ = ("event", "key", "pending", "topic")

    def __init__(self, topic: str, event: Event, key: str, pending: dict[str, _Slot]) -> None:
        self.topic = topic
        self.event = event
        self.key = key
        self.pending = pending

    def take(self) -> Item:
        """Leave the queue: forget the key, so the next event with it is queued anew."""
        if self.pending.get(self.key) is self:
            del self.pending[self.key]
        return (self.topic, self.event)


def _wake(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return


class DeliveryQueue:
    """A bounded FIFO of ``(topic, event)`` tuples, shared by one reader and any number of
    subscriptions that deliver into it.

    A subscription made without ``queue=`` gets its own; pass one ``queue=`` to several
    subscriptions to merge them into one mailbox (as an agent does). Leaner than
    ``asyncio.Queue``: a deque plus waiter futures, with no per-put coroutine when there is
    room. Not thread-safe: use it from the event loop that runs the bus.

    Args:
        maxsize: the bound, at least 1.

    Raises:
        ValueError: ``maxsize`` is not an int >= 1.

    Example:
        >>> q = DeliveryQueue(2)
        >>> q.put_nowait(("a.b", Event("t")))
        >>> q.get_nowait()[0]
        'a.b'
    """

    __slots__ = ("_closed", "_getters", "_items", "_limit", "_putters", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize.__class__ is not int or maxsize < 1:
            raise ValueError(f"a DeliveryQueue needs maxsize >= 1 (an int), got {maxsize!r}")
        self.maxsize: int = maxsize
        self._items: deque[Item | _Slot] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        # The bound the bus's fast path compares against: maxsize while open, 0 once closed,
        # so a closed queue always takes the slow path (one comparison instead of two).
        self._limit = maxsize

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<DeliveryQueue {len(self._items)}/{self.maxsize} {state}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (events queued before may still be read)."""
        return self._closed

    def qsize(self) -> int:
        """How many events are queued."""
        return len(self._items)

    def empty(self) -> bool:
        """Whether no event is queued."""
        return not self._items

    def full(self) -> bool:
        """Whether the queue holds ``maxsize`` events."""
        return len(self._items) >= self.maxsize

    def get_nowait(self) -> Item:
        """Take the oldest event without waiting.

        Raises:
            asyncio.QueueEmpty: nothing is queued (and the queue is open).
            SubscriptionClosed: nothing is queued and the queue is closed.
        """
        items = self._items
        if items:
            item = items.popleft()
            if self._putters:
                _wake(self._putters)
            if isinstance(item, _Slot):
                return item.take()
            return item
        if self._closed:
            raise SubscriptionClosed("the delivery queue is closed")
        raise asyncio.QueueEmpty

    async def get(self) -> Item:
        """Take the oldest event, waiting for one.

        Raises:
            SubscriptionClosed: the queue is closed and everything queued was read.
        """
        items = self._items
        while not items:
            if self._closed:
                raise SubscriptionClosed("the delivery queue is closed")
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                with contextlib.suppress(ValueError):
                    self._getters.remove(getter)
                if items and not getter.cancelled():
                    _wake(self._getters)  # pass on the wake-up this getter consumed
                raise
        item = items.popleft()
        if self._putters:
            _wake(self._putters)
        if isinstance(item, _Slot):
            return item.take()
        return item

    def put_nowait(self, item: Item) -> None:
        """Queue ``item`` directly, bypassing any bus (no statistics are counted).

        Raises:
            asyncio.QueueFull: the queue is full.
            SubscriptionClosed: the queue is closed.
        """
        if self._closed:
            raise SubscriptionClosed("the delivery queue is closed")
        if len(self._items) >= self.maxsize:
            raise asyncio.QueueFull
        self._items.append(item)
        if self._getters:
            _wake(self._getters)

    async def put(self, item: Item) -> None:
        """Queue ``item`` directly, waiting for room (no statistics are counted).

        Raises:
            SubscriptionClosed: the queue is (or becomes, while waiting) closed.
        """
        if not await self._wait_for_room():
            raise SubscriptionClosed("the delivery queue is closed")
        self._items.append(item)
        if self._getters:
            _wake(self._getters)

    def close(self) -> None:
        """Close the queue: nothing more gets in; what is queued can still be read, then
        ``get()`` raises :class:`SubscriptionClosed`. Waiting readers and writers wake up."""
        if self._closed:
            return
        self._closed = True
        self._limit = 0
        for waiters in (self._getters, self._putters):
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)

    # -- for subscriptions ---------------------------------------------------------------

    def _append(self, item: Item | _Slot) -> None:
        """Queue an item the caller has checked there is room for."""
        self._items.append(item)
        if self._getters:
            _wake(self._getters)

    def _evict_oldest(self) -> Item:
        """Drop the oldest queued item to make room, and return it."""
        item = self._items.popleft()
        if isinstance(item, _Slot):
            return item.take()
        return item

    async def _wait_for_room(self) -> bool:
        """Wait until there is room; False when the queue is closed instead."""
        items = self._items
        while len(items) >= self.maxsize:
            if self._closed:
                return False
            putter = asyncio.get_running_loop().create_future()
            self._putters.append(putter)
            try:
                await putter
            except BaseException:
                putter.cancel()
                with contextlib.suppress(ValueError):
                    self._putters.remove(putter)
                if len(items) < self.maxsize and not putter.cancelled():
                    _wake(self._putters)  # pass on the wake-up this putter consumed
                raise
        return not self._closed
