"""MemoryBus: the in-process event bus."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING

from loom._action import QoS
from loom._event import Event
from loom.bus._base import EventBus, Handler
from loom.bus._checks import check_handler, refuse_event
from loom.bus._errors import BusClosedError
from loom.bus._handler import run_handler
from loom.bus._index import Route, RouteTable
from loom.bus._policy import Backpressure, DropReason
from loom.bus._queue import DeliveryQueue, Item, _wake
from loom.bus._stats import TopicCounters, TopicStats
from loom.bus._subscription import Subscription
from loom.errors import InvalidTopicError
from loom.telemetry import _switch
from loom.topics import TopicPattern, validate_topic

if TYPE_CHECKING:
    from loom.telemetry._switch import PublishTrace

__all__ = ["DEFAULT_INFLIGHT_THRESHOLD", "MemoryBus"]

#: Per-topic count of in-flight publishes at which Realtime deliveries are dropped early.
DEFAULT_INFLIGHT_THRESHOLD = 10_000

_BACKLOG = DropReason.BACKLOG


#: Topics whose statistics a MemoryBus keeps by default.
DEFAULT_MAX_TOPICS = 65_536
# How many of the oldest topics one eviction looks at before giving up.
_FORGET_SCAN = 64


class MemoryBus(EventBus):
    """The in-process bus: bounded queues, QoS and backpressure, per-topic statistics.

    Publishing costs a dict lookup for the topic's cached route and, per matching
    subscription, an append to its queue; no copy of the event, no hook call.

    Args:
        inflight_threshold: when a topic has this many publishes in flight (publishers
            waiting for room in BLOCK queues), Realtime deliveries on it are dropped at once
            (reason BACKLOG) instead of being queued.
        max_topics: how many topics' statistics are kept. Past it, the oldest topic that no
            subscription receives and that has nothing in flight is forgotten (its ``stats``
            become None; its counts join :meth:`retired_stats`), so publishers using
            ever-new topics (one per request thread, say) cannot grow the bus without bound.

    Example:
        .. code-block:: python

            async with MemoryBus() as bus:
                sub = await bus.subscribe("sensor.>", qos=QoS.BATCHED)
                await bus.publish("sensor.kitchen.temp", Event("reading", b"21.5"))
                topic, event = await sub.get()
    """

    #: How long ``shutdown`` lets handler tasks drain what was queued before cancelling them.
    handler_drain_timeout: float = 5.0

    def __init__(
        self,
        *,
        inflight_threshold: int = DEFAULT_INFLIGHT_THRESHOLD,
        max_topics: int = DEFAULT_MAX_TOPICS,
    ) -> None:
        if inflight_threshold.__class__ is not int or inflight_threshold < 1:
            raise ValueError(f"inflight_threshold must be an int >= 1, got {inflight_threshold!r}")
        if max_topics.__class__ is not int or max_topics < 1:
            raise ValueError(f"max_topics must be an int >= 1, got {max_topics!r}")
        self.inflight_threshold = inflight_threshold
        self.max_topics = max_topics
        self._counters: dict[str, TopicCounters] = {}
        self._retired = TopicCounters()  # the sums of the topics forgotten under max_topics
        self._table = RouteTable(self._counters_for)
        self._routes = self._table.routes
        self._subs: dict[str, Subscription] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def __repr__(self) -> str:
        state = "shut down" if self._closed else "running"
        return f"<MemoryBus {state}, {len(self._subs)} subscriptions, {len(self._counters)} topics>"

    async def start(self) -> None:
        """Nothing to start: a MemoryBus works from construction. Idempotent."""

    async def shutdown(self) -> None:
        """Close every subscription and queue, let handlers drain, refuse new work."""
        if self._closed:
            return
        self._closed = True
        subs = list(self._subs.values())
        self._subs.clear()
        self._table.clear()
        for sub in subs:
            sub._close()
            sub.queue.close()  # shared queues too: the bus that fed them is gone
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.handler_drain_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    # -- publish: the hot path -------------------------------------------------------------

    async def publish(self, topic: str, event: Event) -> int:
        """Deliver ``event`` to every matching subscription; see :meth:`EventBus.publish`.

        With tracing on (:mod:`loom.telemetry`) the publish is a span whose W3C
        ``traceparent`` is written into ``event.metadata`` before delivery.
        """
        if event.__class__ is not Event and not isinstance(event, Event):
            refuse_event(event)
        if event.payload.__class__ is not bytes or not 0 <= event.priority <= 100:
            refuse_event(event)
        try:
            route = self._routes[topic]
        except (KeyError, TypeError):
            route_or_none = self._route_slow(topic)
            if route_or_none is None:
                return 0
            route = route_or_none
        trace: PublishTrace | None = None
        hook = _switch.publish  # None unless tracing is on: then no telemetry code runs
        if hook is not None:
            trace = hook(self, topic, event)
        delivered = 0
        try:
            counters = route.counters
            counters.published += 1
            subs = route.subs
            if not subs:
                return 0
            item = (topic, event)
            overloaded = counters.backlog >= self.inflight_threshold
            blocked: list[Subscription] | None = None
            for sub in subs:
                types = sub._types
                if types is not None and event.type not in types:
                    continue
                if overloaded and sub._realtime:
                    sub.dropped += 1
                    counters.drop(_BACKLOG, False)
                    continue
                if sub._fast:
                    queue = sub._queue
                    items = queue._items
                    if len(items) < queue._limit:
                        items.append(item)
                        if queue._getters:
                            _wake(queue._getters)
                        delivered += 1
                        continue
                result = sub._offer(item)
                if result > 0:
                    delivered += 1
                elif result < 0:
                    if blocked is None:
                        blocked = [sub]
                    else:
                        blocked.append(sub)
            counters.delivered += delivered
            if blocked is not None:
                delivered += await self._publish_waiting(item, counters, blocked)
            return delivered
        finally:
            if trace is not None:
                trace.end(delivered)

    async def _publish_waiting(
        self, item: Item, counters: TopicCounters, blocked: list[Subscription]
    ) -> int:
        """Deliver to the BLOCK subscriptions whose queues were full, awaiting room."""
        counters.backlog += 1
        delivered = 0
        try:
            for sub in blocked:
                if await sub._offer_waiting(item):
                    delivered += 1
                    counters.delivered += 1
        finally:
            counters.backlog -= 1
        return delivered

    def _route_slow(self, topic: str) -> Route | None:
        """The route of a topic not in the cache: validate, build, cache. None after shutdown."""
        if not isinstance(topic, str):
            raise InvalidTopicError(repr(topic), f"a topic is a str, not {type(topic).__name__}")
        validate_topic(topic)
        if self._closed:
            return None
        return self._table.route(topic)

    def _counters_for(self, topic: str) -> TopicCounters:
        counters = self._counters.get(topic)
        if counters is None:
            if len(self._counters) >= self.max_topics:
                self._forget_a_topic()
            counters = self._counters[topic] = TopicCounters()
        return counters

    def _forget_a_topic(self) -> None:
        """Drop the statistics of the oldest topic nothing delivers to any more.

        A topic is kept while a subscription names it exactly, while a cached route holds
        subscribers for it, and while publishes on it are in flight. Only a bounded number
        of the oldest topics are looked at; if all are in use the table grows by one.
        """
        routes, exact = self._routes, self._table.exact_patterns
        for topic, counters in itertools.islice(self._counters.items(), _FORGET_SCAN):
            if counters.backlog or topic in exact:
                continue
            route = routes.get(topic)
            if route is not None and route.subs:
                continue
            del self._counters[topic]
            routes.pop(topic, None)
            self._retired.absorb(counters)
            return

    def _count_drop(self, topic: str, reason: DropReason, was_delivered: bool) -> None:
        counters = self._counters.get(topic)
        if counters is not None:
            counters.drop(reason, was_delivered)

    # -- subscriptions -----------------------------------------------------------------------

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
        """Subscribe to the topics ``pattern`` matches; see :meth:`EventBus.subscribe`."""
        if self._closed:
            raise BusClosedError("the bus is shut down; it takes no new subscriptions")
        compiled = TopicPattern.compile(pattern)
        check_handler(handler, queue)
        seq = next(self._ids)
        sub = Subscription(
            f"sub_{pattern}_{seq:x}",
            pattern,
            qos=qos,
            event_types=event_types,
            backpressure=backpressure,
            queue=queue,
            on_drop=self._count_drop,
            on_close=self._close_subscription,
            seq=seq,
        )
        if not compiled.has_wildcards:
            self._counters_for(pattern)
        self._subs[sub.id] = sub
        self._table.add(sub)
        if handler is not None:
            task = asyncio.create_task(run_handler(sub, handler), name=f"loom.bus {sub.id}")
            sub.task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return sub

    async def unsubscribe(self, subscription_id: str) -> bool:
        """End a subscription; see :meth:`EventBus.unsubscribe`."""
        sub = self._subs.pop(subscription_id, None)
        if sub is None:
            return False
        self._table.remove(sub)
        sub._close()
        return True

    async def _close_subscription(self, sub: Subscription) -> None:
        if not await self.unsubscribe(sub.id):
            sub._close()

    def subscriptions(self) -> list[Subscription]:
        """The live subscriptions, oldest first."""
        return list(self._subs.values())

    # -- statistics ------------------------------------------------------------------------

    def stats(self, topic: str) -> TopicStats | None:
        """A snapshot of a topic's statistics; see :meth:`EventBus.stats`."""
        counters = self._counters.get(topic)
        if counters is None:
            return None
        return counters.snapshot(self._active(topic))

    def all_stats(self) -> dict[str, TopicStats]:
        """Snapshots of every known topic's statistics."""
        return {t: c.snapshot(self._active(t)) for t, c in self._counters.items()}

    def retired_stats(self) -> TopicStats:
        """The statistics of every topic forgotten under ``max_topics``, summed, so that
        totals over :meth:`all_stats` and this stay exact (telemetry reports them)."""
        return self._retired.snapshot(0)

    def _active(self, topic: str) -> int:
        if self._closed:
            return 0
        route = self._routes.get(topic)
        return len(route.subs) if route is not None else len(self._table.match(topic))
