"""The state every part of NatsBus shares, and the helpers they use (see _bus.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from loom.bus import (
    EventBus,
    Subscription,
)
from loom.errors import InvalidTopicError
from loom.topics import TopicPattern
from loom_nats._coalesce import Coalescer
from loom_nats._config import (
    PublishMode,
    StreamLimits,
)
from loom_nats._consumer import ConsumerSettings, PullConsumer
from loom_nats._errors import NatsError
from loom_nats._link import Link
from loom_nats._publisher import Publisher
from loom_nats._realtime import RealtimeTap
from loom_nats._stats import Telemetry, TopicCounters

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.client import JetStreamContext

__all__ = ["CONNECTION_TOPIC", "MAX_SUBJECT_BYTES", "BusState"]


#: The topic on which a bus tells its own subscriptions that its connection went down
#: (event type ``bus.disconnected``) or came back (``bus.reconnected``, with metadata
#: ``outage_s``), and, once counted, what its Realtime subscriptions missed meanwhile
#: (``bus.realtime_missed``, metadata ``missed`` events, ``deliveries``, ``outage_s``); all
#: carry the ``server`` in metadata. Delivered locally, not via NATS.
CONNECTION_TOPIC = "bus.nats.connection"

#: A subject must fit NATS's 4096-byte control line together with a reply inbox.
MAX_SUBJECT_BYTES = 2048
#: Most topics whose routes are cached; beyond it the cache starts over.
_ROUTE_CACHE = 8192
#: Messages a Realtime tap may hold before the client drops (counted in realtime_lost).
_TAP_PENDING = 65_536


class _Route:
    """What ``publish`` needs about a topic: its subject, counters and local subscribers."""

    __slots__ = ("counters", "subject", "subs", "typed")

    def __init__(
        self, subject: str, counters: TopicCounters, subs: tuple[Subscription, ...]
    ) -> None:
        self.subject = subject
        self.counters = counters
        self.subs = subs
        self.typed = any(sub.event_types for sub in subs)


class _NeverRaised(Exception):
    """Stands for an exception class that is not loaded yet."""


def _matches(sub: Subscription, topic: str) -> bool:
    return TopicPattern.compile(sub.pattern).matches(topic)


class BusState(EventBus):
    """What the parts of :class:`~loom_nats.NatsBus` share: its state (made in
    ``NatsBus.__init__``) and the small helpers they all use. Not used on its own."""

    # The bus's state, made in NatsBus.__init__ and shared by the parts of the bus.
    prefix: str
    stream: str
    name: str | None
    publish_mode: PublishMode
    realtime_batch: int
    limits: StreamLimits
    link: Link
    _create_stream: bool
    _strip: int
    _servers: list[str]
    _outage_timeout: float
    _ack_timeout: float
    _drain_timeout: float
    _consumer_settings: ConsumerSettings
    _telemetry: Telemetry
    _js: JetStreamContext | None
    _publisher: Publisher | None
    _coalescer: Coalescer | None
    _nc: Client | None
    _max_payload: int
    _connection_closed: type[Exception]
    _started: bool
    _closed: bool
    _ids: Iterator[int]
    _subs: dict[str, Subscription]
    _taps: dict[str, RealtimeTap]
    _consumers: dict[str, PullConsumer]
    _tap_of: dict[str, RealtimeTap]
    _counters: dict[str, TopicCounters]
    _routes: dict[str, _Route]
    _tasks: set[asyncio.Task[None]]

    def _shut_down(self) -> bool:
        """Whether ``shutdown`` began (re-read after an await: it may have run meanwhile)."""
        return self._closed

    def _require_started(self) -> None:
        if not self._started:
            raise NatsError("the NatsBus is not started: await bus.start() (or use async with)")

    async def _round_trip(self, timeout: float) -> None:
        """A PING and its PONG, after everything this bus has sent so far.

        nats-py's ``flush`` writes its PING straight to the socket, ahead of commands still
        in the client's pending buffer (its flusher task writes those on its next turn), so
        the PONG could come back before the server has seen the publishes or subscriptions
        it should confirm: wait for that buffer to be written out first (at most
        ``timeout``).
        """
        nc = self._nc
        assert nc is not None
        deadline = time.monotonic() + timeout
        while nc.pending_data_size and nc.is_connected and time.monotonic() < deadline:
            await asyncio.sleep(0)
        await nc.flush(int(max(1, deadline - time.monotonic())))

    def _subject(self, topic: str) -> str:
        subject = f"{self.prefix}.{topic}"
        if len(subject.encode()) > MAX_SUBJECT_BYTES:
            raise InvalidTopicError(
                topic[:40] + "…", f"longer than {MAX_SUBJECT_BYTES} bytes as a NATS subject"
            )
        return subject
