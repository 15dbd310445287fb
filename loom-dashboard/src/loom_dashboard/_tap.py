"""The Tap: the dashboard's one subscription on the bus, feeding a bounded ring of events.

It subscribes to ``>`` with Realtime QoS and drop-oldest, so a busy bus can never be
slowed by the dashboard: when the tap falls behind, its own queue loses the oldest events
(counted by the bus as ``QUEUE_FULL`` drops on their topics, and here as ``dropped``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from loom._action import QoS
from loom.bus import Backpressure, Policy, SubscriptionClosed
from loom.topics import TopicPattern
from loom_dashboard._histogram import LatencyHistogram
from loom_dashboard._records import SEQ, TOPIC, TYPE, RawRecord, raw_record, to_json
from loom_dashboard._threads import ThreadBook

if TYPE_CHECKING:
    from loom._event import Event
    from loom.bus import EventBus, Subscription

__all__ = ["ROUTING_EVENT_TYPE", "TAP_PATTERN", "Tap"]

log = logging.getLogger("loom.dashboard")

#: Everything: ``>`` matches every topic of one or more tokens.
TAP_PATTERN = ">"
#: The event type the model router publishes each decision as (``loom.models``).
ROUTING_EVENT_TYPE = "routing.decision"

# Events handled per wake-up before yielding to the loop, so the tap never hogs it.
_BATCH = 256


class Tap:
    """Reads every event on the bus into a ring of records, the thread book and the
    latency histogram.

    Args:
        bus: the bus to watch.
        ring_size: records kept for the tail.
        queue_size: the subscription's queue (Realtime, drop-oldest).
        preview: payload bytes kept per record.
        threads: where records with a thread id are filed.
    """

    def __init__(
        self,
        bus: EventBus,
        *,
        ring_size: int = 2000,
        queue_size: int = 4096,
        preview: int = 160,
        threads: ThreadBook | None = None,
    ) -> None:
        self.bus = bus
        self.ring: deque[RawRecord] = deque(maxlen=ring_size)
        self.queue_size = queue_size
        self.preview = preview
        self.threads = threads if threads is not None else ThreadBook()
        self.latency = LatencyHistogram()
        #: Routing decisions seen on the bus, by route.
        self.routes: Counter[str] = Counter()
        #: Sequence number of the last record (0 before any).
        self.seq = 0
        self.subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def dropped(self) -> int:
        """Events the tap's queue lost because it fell behind."""
        return 0 if self.subscription is None else self.subscription.dropped

    @property
    def subscription_id(self) -> str:
        """The id of the tap's subscription ("" before start)."""
        return "" if self.subscription is None else self.subscription.id

    async def start(self) -> None:
        """Subscribe and start reading. Idempotent."""
        if self._task is not None:
            return
        self.subscription = await self.bus.subscribe(
            TAP_PATTERN,
            qos=QoS.REALTIME,
            backpressure=Backpressure(Policy.DROP_OLDEST, queue_size=self.queue_size),
        )
        self._task = asyncio.create_task(self._run(self.subscription), name="loom-dashboard-tap")

    async def stop(self) -> None:
        """Unsubscribe and stop reading. Idempotent."""
        subscription, self.subscription = self.subscription, None
        task, self._task = self._task, None
        if subscription is not None:
            with contextlib.suppress(Exception):  # a bus already shut down closed it
                await self.bus.unsubscribe(subscription.id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, subscription: Subscription) -> None:
        take = self._take
        while True:
            try:
                topic, event = await subscription.get()
            except SubscriptionClosed:
                return
            take(topic, event)
            for _ in range(_BATCH):
                try:
                    topic, event = subscription.get_nowait()
                except (asyncio.QueueEmpty, SubscriptionClosed):
                    break
                take(topic, event)

    def _take(self, topic: str, event: Event) -> None:
        # Runs for every event on the bus: a tuple and a few lookups, nothing more.
        now = time.time()
        seen_ms = now * 1000.0
        self.seq += 1
        try:
            raw = raw_record(self.seq, topic, event, seen_ms, self.preview)
            self.latency.record(max(0.0, seen_ms - event.timestamp_ms), now)
        except Exception:  # a strange event must not stop the tap
            log.exception("dashboard: cannot read event on %s", topic)
            return
        self.ring.append(raw)
        md = event.metadata
        thread_id = md.get("thread_id") or md.get("loom.thread_id")
        if thread_id:
            self.threads.add(thread_id, raw)
        if event.type == ROUTING_EVENT_TYPE:
            route = md.get("route")
            if route:
                self.routes[route] += 1

    def since(self, after: int) -> list[RawRecord]:
        """The raw records with a sequence number above ``after``, oldest first."""
        out: list[RawRecord] = []
        for raw in reversed(self.ring):
            if raw[SEQ] <= after:
                break
            out.append(raw)
        out.reverse()
        return out

    def events(
        self,
        pattern: TopicPattern | None = None,
        *,
        event_type: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The newest records (oldest first) matching the filters, at most ``limit``, as JSON.

        Args:
            pattern: a topic pattern to match, or None for every topic.
            event_type: an exact event type, or None for every type.
            after: only records with a larger sequence number.
            limit: the most records returned (the newest ones).
        """
        out: list[RawRecord] = []
        for raw in reversed(self.ring):
            if raw[SEQ] <= after:
                break
            if pattern is not None and not pattern.matches(raw[TOPIC]):
                continue
            if event_type is not None and raw[TYPE] != event_type:
                continue
            out.append(raw)
            if len(out) >= limit:
                break
        out.reverse()
        return [to_json(raw) for raw in out]
