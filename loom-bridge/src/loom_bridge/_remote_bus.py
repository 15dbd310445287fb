"""The event bus a remote agent runs on: local subscriptions, publishing through the bridge.

A remote agent runs in an ordinary :class:`~loom.agents.AgentRuntime`, so its code meets
the same runtime as embedded code (mailbox, ordering, supervision, envelopes). Only the
bus differs: :class:`RemoteBus` keeps the subscriptions in a local
:class:`~loom.bus.MemoryBus`, tells the bridge which patterns they cover (the agent's
registration), publishes through the bridge, and feeds what the bridge delivers to the
local subscriptions. An event the agent publishes to a topic it subscribes to comes back
from the bridge, as it would from an in-process bus.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from loom import Event, QoS
from loom.bus import (
    Backpressure,
    DeliveryQueue,
    EventBus,
    Handler,
    MemoryBus,
    Subscription,
    TopicStats,
    refuse_event,
)
from loom.topics import validate_topic

if TYPE_CHECKING:
    from loom_bridge._link import BridgeLink

__all__ = ["RemoteBus"]

log = logging.getLogger("loom.bridge.client")


class RemoteBus(EventBus):
    """An :class:`~loom.bus.EventBus` whose publishes go through a bridge.

    Subscriptions are local (every QoS and backpressure option works as on a
    :class:`~loom.bus.MemoryBus`); their patterns are what the agent registers with the
    bridge, updated whenever a subscription comes or goes.

    Args:
        on_patterns_changed: awaited after a subscribe or unsubscribe changed the set of
            patterns (the agent re-registers).
    """

    def __init__(self, on_patterns_changed: Callable[[], Awaitable[None]] | None = None) -> None:
        self._local = MemoryBus()
        self._link: BridgeLink | None = None
        self._on_patterns_changed = on_patterns_changed
        self._patterns: tuple[str, ...] = ()
        #: Deliveries from the bridge fed to the local subscriptions.
        self.received = 0

    def attach(self, link: BridgeLink) -> None:
        """Publish through ``link`` from now on."""
        self._link = link

    @property
    def local(self) -> MemoryBus:
        """The local bus that holds the subscriptions."""
        return self._local

    def patterns(self) -> tuple[str, ...]:
        """The distinct patterns of the live subscriptions, in subscription order."""
        seen: dict[str, None] = {}
        for subscription in self._local.subscriptions():
            seen.setdefault(subscription.pattern, None)
        return tuple(seen)

    async def start(self) -> None:
        """Start the local bus."""
        await self._local.start()

    async def shutdown(self) -> None:
        """Close every local subscription; later publishes return 0."""
        await self._local.shutdown()

    async def publish(self, topic: str, event: Event) -> int:
        """Send ``event`` to the bridge, which publishes it on its bus.

        Waits while the link's outbound queue is full (it holds what waits during a
        reconnection, bounded). The bridge's delivery count is not known here.

        Returns:
            1 once the event is queued for the bridge; 0 when the agent is stopped.

        Raises:
            InvalidTopicError: the topic is invalid or holds a wildcard.
            InvalidEventError: ``event`` is not an :class:`~loom.Event`.
        """
        validate_topic(topic)
        if not isinstance(event, Event):
            refuse_event(event)
        link = self._link
        if link is None or link.closed:
            return 0
        await link.publish(topic, event)
        return 1

    async def deliver(self, topic: str, event: Event) -> None:
        """Hand an event the bridge delivered to the local subscriptions (waits for room)."""
        self.received += 1
        await self._local.publish(topic, event)

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
        """Subscribe locally and make sure the bridge delivers ``pattern`` (see
        :meth:`loom.bus.EventBus.subscribe` for the arguments)."""
        subscription = await self._local.subscribe(
            pattern,
            event_types=event_types,
            qos=qos,
            backpressure=backpressure,
            queue=queue,
            handler=handler,
        )
        await self._sync()
        return subscription

    async def unsubscribe(self, subscription_id: str) -> bool:
        """End a local subscription; the bridge stops delivering a pattern no one holds."""
        found = await self._local.unsubscribe(subscription_id)
        await self._sync()
        return found

    async def _sync(self) -> None:
        patterns = self.patterns()
        if patterns == self._patterns:
            return
        self._patterns = patterns
        if self._on_patterns_changed is not None:
            await self._on_patterns_changed()

    def stats(self, topic: str) -> TopicStats | None:
        """Statistics of the local deliveries on ``topic``."""
        return self._local.stats(topic)

    def all_stats(self) -> dict[str, TopicStats]:
        """Statistics of the local deliveries on every topic."""
        return self._local.all_stats()
