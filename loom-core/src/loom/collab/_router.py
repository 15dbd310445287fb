"""ReplyRouter: hands replies on one topic to the calls waiting for them, by correlation id.

A call registers the correlation ids its replies will carry (:meth:`ReplyRouter.expect`),
publishes, and waits on its sink; the router's own bus subscription delivers each matching
reply to that sink, whatever the party's other code is doing. An agent's router listens on
its private topic ``agent.{id}.replies`` beside the agent's mailbox (a ``mirror``), so a
handler that awaits a request gets the reply while the agent's mailbox loop is still busy
with that handler. Each reply is claimed once: the router takes the copy the mailbox got
out of it (or, when the mailbox could not take it yet, remembers it), and the mailbox loop
asks :meth:`ReplyRouter.claim` before handing an event to the agent.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Protocol

from loom._action import QoS
from loom._event import Event
from loom.bus import Backpressure, EventBus, Subscription
from loom.collab._errors import CollabError
from loom.collab._results import CollabStats

__all__ = ["FutureSink", "Inbox", "Ledger", "ReplyRouter", "Sink"]

#: Correlation ids of ended calls remembered (to count late replies), and reply ids
#: remembered between the router's and the mailbox's sightings of one reply.
DEFAULT_MEMORY = 4096

#: Replies one multi-reply call may hold unread; more are dropped and counted.
DEFAULT_INBOX_SIZE = 1024


class Ledger:
    """What one party's calls share: counters, recently ended correlations, and replies
    already claimed by one of a mirrored router's two paths.

    Args:
        stats: the counters to bump (new ones when None).
        memory: how many ended correlations and claimed reply ids are remembered; the
            oldest are forgotten first, so memory stays bounded.
    """

    __slots__ = ("_ended", "_seen", "memory", "stats")

    def __init__(self, stats: CollabStats | None = None, memory: int = DEFAULT_MEMORY) -> None:
        self.stats = stats if stats is not None else CollabStats()
        self.memory = memory
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._seen: OrderedDict[str, None] = OrderedDict()

    def end(self, correlation_id: str) -> None:
        """Remember that the call waiting for ``correlation_id`` has ended."""
        ended = self._ended
        ended[correlation_id] = None
        if len(ended) > self.memory:
            ended.popitem(last=False)

    def ended(self, correlation_id: str) -> bool:
        """Whether a call waiting for ``correlation_id`` ended recently."""
        return correlation_id in self._ended

    def remember(self, event_id: str) -> None:
        """Remember a reply one path claimed, so the other path skips it."""
        seen = self._seen
        seen[event_id] = None
        if len(seen) > self.memory:
            seen.popitem(last=False)

    def forget(self, event_id: str) -> bool:
        """Forget a remembered reply; whether it was remembered."""
        seen = self._seen
        if seen and event_id in seen:
            del seen[event_id]
            return True
        return False


class Sink(Protocol):
    """Where a router puts the replies of one call."""

    def offer(self, event: Event) -> None:
        """Take one reply (or count it as a duplicate or an overflow)."""

    def fail(self, error: BaseException) -> None:
        """Wake the waiting call with ``error``: the channel closed."""


class FutureSink:
    """The sink of a call that takes one reply: the first one resolves the future.

    The call's deadline resolves the future with None; a reply after that is late.
    """

    __slots__ = ("future", "stats")

    def __init__(self, future: asyncio.Future[Event | None], stats: CollabStats) -> None:
        self.future = future
        self.stats = stats

    def offer(self, event: Event) -> None:
        """Resolve the future with the first reply; count a later one as a duplicate (or
        late, after the deadline)."""
        future = self.future
        if not future.done():
            future.set_result(event)
        elif future.cancelled() or future.exception() is not None or future.result() is None:
            self.stats.late += 1
        else:
            self.stats.duplicates += 1

    def fail(self, error: BaseException) -> None:
        """Fail the future unless it is resolved."""
        if not self.future.done():
            self.future.set_exception(error)


class Inbox:
    """The bounded sink of a call that takes many replies, read with :meth:`get`."""

    __slots__ = ("_error", "_items", "_waiter", "maxsize", "stats")

    def __init__(self, stats: CollabStats, maxsize: int = DEFAULT_INBOX_SIZE) -> None:
        self.stats = stats
        self.maxsize = maxsize
        self._items: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None

    def offer(self, event: Event) -> None:
        """Queue a reply; when full, drop it and count it in ``stats.overflow``."""
        if len(self._items) >= self.maxsize:
            self.stats.overflow += 1
            return
        self._items.append(event)
        self._wake()

    def fail(self, error: BaseException) -> None:
        """Make :meth:`get` raise ``error`` once the queued replies are read."""
        self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Event:
        """The next reply, waiting without bound (callers put a deadline around it).

        Raises:
            CollabError: the channel closed (see :meth:`fail`).
        """
        items = self._items
        while not items:
            if self._error is not None:
                raise self._error
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        return items.popleft()


class ReplyRouter:
    """Routes the replies arriving on ``topic`` to the calls waiting for them.

    A reply is an event whose ``correlation_id`` a call registered with :meth:`expect`; it
    goes to that call's sink. An event carrying the correlation id of a call that has
    ended is a late reply: dropped and counted in ``ledger.stats.late``. Anything else is
    not the router's: :meth:`claim` returns False for it.

    Args:
        bus: the bus to subscribe on.
        topic: the topic replies arrive on (the ``reply_to`` the calls write).
        ledger: counters and memory shared by the party's calls.
        mirror: set when another reader (an agent's mailbox) gets the same events and
            calls ``claim(event, mirrored=True)`` for each: a function that takes an event
            the router claimed out of that reader's queue and says whether it was there.
            When it was not (yet), the router remembers the event, and the other reader's
            ``claim`` skips it.
        queue_size: the bound of the router's subscription queue (QoS Batched: a full
            queue makes the publisher wait; the router never blocks, so it drains fast).
    """

    __slots__ = (
        "_closed",
        "_lock",
        "_pending",
        "_queue_size",
        "_sub",
        "bus",
        "ledger",
        "mirror",
        "topic",
    )

    def __init__(
        self,
        bus: EventBus,
        topic: str,
        ledger: Ledger,
        *,
        mirror: Callable[[Event], bool] | None = None,
        queue_size: int = DEFAULT_INBOX_SIZE,
    ) -> None:
        self.bus = bus
        self.topic = topic
        self.ledger = ledger
        self.mirror = mirror
        self._queue_size = queue_size
        self._pending: dict[str, Sink] = {}
        self._sub: Subscription | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"<ReplyRouter {self.topic} pending={len(self._pending)}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (a closed router takes no more calls)."""
        return self._closed

    @property
    def pending(self) -> int:
        """How many correlation ids calls are waiting for."""
        return len(self._pending)

    async def start(self) -> None:
        """Subscribe to the topic; call before publishing anything that expects replies.

        Idempotent, and safe to call from several tasks at once (one subscription).
        """
        if self._sub is not None:
            return
        if self._closed:
            raise CollabError(f"the reply router on {self.topic!r} is closed")
        async with self._lock:
            if self._sub is None and not self._closed:
                self._sub = await self.bus.subscribe(
                    self.topic,
                    qos=QoS.BATCHED,
                    backpressure=Backpressure(queue_size=self._queue_size),
                    handler=self._deliver,
                )

    def expect(self, correlation_id: str, sink: Sink) -> None:
        """Send the replies carrying ``correlation_id`` to ``sink`` until :meth:`finish`."""
        self._pending[correlation_id] = sink

    def finish(self, correlation_ids: Iterable[str]) -> None:
        """Stop waiting for these ids; replies that still come are counted late."""
        pending = self._pending
        ledger = self.ledger
        for correlation_id in correlation_ids:
            if pending.pop(correlation_id, None) is not None:
                ledger.end(correlation_id)

    def claim(self, event: Event, *, mirrored: bool = False) -> bool:
        """Take ``event`` if it is a reply (current or late); whether it was taken.

        ``mirrored`` says the call comes from the other reader (see ``mirror``).
        """
        ledger = self.ledger
        mirror = self.mirror
        if mirror is not None and ledger.forget(event.id):
            return True  # claimed already, by the router or the other reader
        metadata = event.metadata
        correlation_id = metadata.get("correlation_id") or metadata.get("loom.correlation_id")
        if correlation_id is None:
            return False
        sink = self._pending.get(correlation_id)
        if sink is not None:
            sink.offer(event)
        elif ledger.ended(correlation_id):
            ledger.stats.late += 1
        else:
            return False
        if mirror is not None and (mirrored or not mirror(event)):
            ledger.remember(event.id)  # so the other reader skips it
        return True

    def _deliver(self, topic: str, event: Event) -> None:
        self.claim(event)

    async def close(self, error: BaseException | None = None) -> None:
        """Unsubscribe and wake every waiting call with ``error`` (a :class:`CollabError`)."""
        self._closed = True
        sub, self._sub = self._sub, None
        if sub is not None:
            await self.bus.unsubscribe(sub.id)
        if self._pending:
            failure = error or CollabError(f"the reply channel on {self.topic!r} closed")
            pending = list(self._pending.items())
            self._pending.clear()
            for correlation_id, sink in pending:
                self.ledger.end(correlation_id)
                sink.fail(failure)
