"""Realtime subscriptions on core NATS: one NATS subscription per pattern, shared by every
local Realtime subscription with that pattern (the event is decoded once for all of them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loom.bus import Subscription
from loom.errors import ProtocolError
from loom_nats._codec import decode_event, decode_message

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription as NatsSubscription

    from loom_nats._stats import Telemetry, TopicCounters

__all__ = ["MAX_WITNESSED", "RealtimeTap"]

#: Event ids a tap remembers from a disconnection until its loss is counted (bounded: a
#: flood past it makes the count an upper bound, said in the log).
MAX_WITNESSED = 100_000
#: Subjects whose topic and counters a tap caches; beyond it the cache starts over.
_MAX_TOPICS = 4096


class RealtimeTap:
    """A core NATS subscription on one subject pattern, feeding local subscriptions.

    Args:
        telemetry: the bus's counters.
        subject: the NATS subject pattern (prefix included).
        strip: length of the prefix and its dot, removed from subjects to get topics.
    """

    __slots__ = ("_strip", "_telemetry", "_topics", "nats_sub", "subject", "subs", "witnessed")

    def __init__(self, telemetry: Telemetry, subject: str, strip: int) -> None:
        self._telemetry = telemetry
        self._strip = strip
        self._topics: dict[str, tuple[str, TopicCounters]] = {}
        self.subject = subject
        self.subs: list[Subscription] = []
        self.nats_sub: NatsSubscription | None = None
        #: From a disconnection until the outage's loss is counted: the ids of the events
        #: this tap received meanwhile (see :mod:`loom_nats._outage`); None otherwise.
        self.witnessed: set[str] | None = None

    async def on_message(self, msg: Msg) -> None:
        """Decode one message (an event, or a batch of them) and offer each event to each
        local subscription, synchronously (Realtime policies drop instead of waiting)."""
        headers = msg.headers
        subject = msg.subject
        if headers is None:
            try:
                events = [decode_event(msg.data)]
            except ProtocolError as exc:
                self._telemetry.undecodable(subject, exc)
                return
        else:
            events, error = decode_message(msg.data, headers)
            if error is not None:  # a batch whose count lies still delivers its events
                self._telemetry.undecodable(subject, error)
        known = self._topics.get(subject)
        if known is None:
            known = self._learn(subject)
        topic, counters = known
        witnessed = self.witnessed
        subs = self.subs
        for event in events:
            if witnessed is not None and len(witnessed) < MAX_WITNESSED:
                witnessed.add(event.id)
            for sub in subs:
                if sub.offer(topic, event):
                    # Counted at once: a drop right after (an eviction) takes it back.
                    counters.delivered += 1

    def _learn(self, subject: str) -> tuple[str, TopicCounters]:
        """The topic of a subject and its counters, cached (bounded: a pattern may match
        ever new subjects)."""
        if len(self._topics) >= _MAX_TOPICS:
            self._topics.clear()
        topic = subject[self._strip :]
        known = self._topics[subject] = (topic, self._telemetry.counters_for(topic))
        return known

    def pending(self) -> int:
        """Messages the client received for this tap that are not handled yet."""
        sub = self.nats_sub
        return sub.pending_msgs if sub is not None else 0
