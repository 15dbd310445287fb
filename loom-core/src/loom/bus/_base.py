"""EventBus: the interface every bus backend implements (memory here, NATS in loom-nats)."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Self

from loom._action import QoS
from loom._event import Event
from loom.bus._policy import Backpressure
from loom.bus._queue import DeliveryQueue
from loom.bus._stats import TopicStats
from loom.bus._subscription import Subscription

__all__ = ["EventBus", "Handler"]

#: A subscription callback: called with ``(topic, event)``, sync or async.
Handler = Callable[[str, Event], Awaitable[None] | None]


class EventBus(abc.ABC):
    """Publish/subscribe of :class:`~loom.Event` objects on dot-separated topics.

    Topics follow NATS rules: subscriptions may use ``*`` (one token) and ``>`` (one or
    more trailing tokens); publish topics are concrete. Every subscription has a QoS and a
    bounded queue; see :class:`~loom.bus.Backpressure` for what happens when it fills.
    Use the bus from one event loop. ``async with bus:`` starts and shuts it down.

    Backends subclass this and pass :class:`~loom.testing.BusConformance`.
    """

    @abc.abstractmethod
    async def start(self) -> None:
        """Make the bus ready (connect, start tasks). Idempotent."""

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """Close every subscription and stop: iterators end once drained, ``get()`` raises
        :class:`~loom.bus.SubscriptionClosed`, later publishes return 0. Idempotent."""

    @abc.abstractmethod
    async def publish(self, topic: str, event: Event) -> int:
        """Deliver ``event`` to every subscription whose pattern matches ``topic``.

        Awaits only when a BLOCK subscription's queue is full; Realtime deliveries never
        wait. The same event object reaches every subscriber (no copy).

        Args:
            topic: a concrete topic (no wildcards).
            event: the event.

        Returns:
            How many deliveries were queued; 0 after shutdown.

        Raises:
            InvalidTopicError: the topic is invalid or holds a wildcard.
            InvalidEventError: ``event`` is not a :class:`~loom.Event`, or a field of it was
                changed to a value outside its contract.
        """

    @abc.abstractmethod
    async def subscribe(
        self,
        pattern: str,
        *,
        event_types: Iterable[str] = (),
        qos: QoS = QoS.REALTIME,
        backpressure: Backpressure | None = None,
        queue: DeliveryQueue | None = None,
        handler: Handler | None = None,
    ) -> Subscription:
        """Subscribe to the topics ``pattern`` matches.

        Args:
            pattern: a topic or a pattern with ``*`` / ``>`` wildcards.
            event_types: take only these event types; empty takes all.
            qos: REALTIME (queue 64, never blocks the publisher, drops the oldest), BATCHED
                (1024, the publisher awaits room) or BACKGROUND (4096, awaits).
            backpressure: policy and queue size overrides.
            queue: deliver into this shared queue (an agent's mailbox) instead of a new one.
            handler: call this for each event, in order, on a task the bus runs; a handler
                that raises is logged and counted in ``Subscription.errors`` and goes on.

        Returns:
            The subscription.

        Raises:
            InvalidTopicError: the pattern is invalid.
            ValueError: the backpressure settings do not fit the QoS, or ``queue`` is given
                with ``queue_size`` or with ``handler``.
            BusClosedError: the bus is shut down.
        """

    @abc.abstractmethod
    async def unsubscribe(self, subscription_id: str) -> bool:
        """End a subscription: nothing more is delivered to it, its own queue closes.

        Returns:
            Whether the id named a live subscription.
        """

    @abc.abstractmethod
    def stats(self, topic: str) -> TopicStats | None:
        """A snapshot of a topic's statistics; None for a topic never published to nor
        subscribed to exactly."""

    @abc.abstractmethod
    def all_stats(self) -> dict[str, TopicStats]:
        """Snapshots of every known topic's statistics."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()
