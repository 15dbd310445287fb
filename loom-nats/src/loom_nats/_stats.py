"""Statistics of the NATS bus: per-topic counters (the :class:`loom.bus.TopicStats` every
bus reports) and the connection's own figures (:class:`NatsStats`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from loom.bus import DropReason, TopicStats
from loom.errors import ProtocolError

__all__ = ["NatsStats", "Telemetry", "TopicCounters"]

log = logging.getLogger("loom.nats")

#: Subjects tracked one by one in the per-subject counters; beyond, they count under
#: :data:`OTHER_SUBJECTS`, so a flood on ever new subjects cannot grow them without bound.
MAX_TRACKED_SUBJECTS = 1000
#: The key counting the subjects beyond :data:`MAX_TRACKED_SUBJECTS`.
OTHER_SUBJECTS = "(other subjects)"
#: The ``dropped_by_reason`` key of Realtime deliveries missed while disconnected.
OUTAGE = "OUTAGE"


def _bump(counts: dict[str, int], subject: str, n: int = 1) -> int:
    if subject not in counts and len(counts) >= MAX_TRACKED_SUBJECTS:
        subject = OTHER_SUBJECTS
    seen = counts.get(subject, 0) + n
    counts[subject] = seen
    return seen


class TopicCounters:
    """Live counters of one topic as this bus sees it, bumped without locks (one loop).

    ``published`` counts this bus's publishes; ``delivered`` and ``dropped`` count what
    reached this bus's subscriptions, from any publisher on the server; ``backlog`` counts
    events on the topic received from JetStream that wait for room in a full queue;
    ``missed`` counts Realtime deliveries lost while the connection was down (reported
    among the drops, under the reason :data:`OUTAGE`).
    """

    __slots__ = ("backlog", "by_reason", "delivered", "dropped", "missed", "published")

    def __init__(self) -> None:
        self.published = 0
        self.delivered = 0
        self.dropped = 0
        self.backlog = 0
        self.missed = 0
        self.by_reason: dict[DropReason, int] = {}

    def drop(self, reason: DropReason, was_delivered: bool) -> None:
        """Count one dropped delivery (and take it back from ``delivered`` if it was)."""
        self.dropped += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if was_delivered and self.delivered > 0:
            self.delivered -= 1

    def snapshot(self, active_subscriptions: int) -> TopicStats:
        """The counters as a :class:`~loom.bus.TopicStats`."""
        by_reason = {r.name: n for r, n in self.by_reason.items()}
        if self.missed:
            by_reason[OUTAGE] = self.missed
        return TopicStats(
            published=self.published,
            delivered=self.delivered,
            dropped=self.dropped + self.missed,
            dropped_by_reason=by_reason,
            active_subscriptions=active_subscriptions,
            backlog=self.backlog,
        )


@dataclass
class NatsStats:
    """A snapshot of what the NATS bus counts beyond the per-topic statistics.

    Attributes:
        connected: whether the connection is up now.
        server: the URL of the server connected to (or last connected to).
        stream: the JetStream stream the bus publishes into.
        disconnects: connection losses since start.
        reconnects: successful reconnections since start.
        outage_seconds: total time spent disconnected since start.
        undecodable: per subject, messages that were not a valid ``loom.v1.Event``
            (skipped, and acknowledged on JetStream so they are not redelivered); past
            1000 subjects, the rest count under ``"(other subjects)"``.
        realtime_lost: Realtime events the client dropped because its own buffer for a
            subscription overflowed (NATS "slow consumer"), per subject (bounded the same
            way).
        realtime_missed: Realtime events published while this bus was disconnected,
            which its Realtime subscriptions therefore never received, per subject
            (bounded the same way); counted from the stream after each reconnect.
        outages_counted: outages whose Realtime loss has been counted (one per
            reconnect once the count is done; compare with ``reconnects``).
        publish_retries: publishes sent again after a lost or late acknowledgement
            (JetStream stores them once: the event id deduplicates).
        publish_failures: publishes JetStream refused or never acknowledged
            (``"async"`` mode counts them here; ``"ack"`` mode raises), and ``"core"``
            publishes held for a batch that could not be sent (the connection stayed
            down).
        pending_acks: ``"async"`` publishes awaiting their acknowledgement now.
        duplicates_skipped: JetStream redeliveries of an event this bus had already
            queued (its acknowledgement was lost), recognised and skipped.
        consumers_recreated: JetStream consumers re-created after the server lost them.
    """

    connected: bool
    server: str | None
    stream: str
    disconnects: int = 0
    reconnects: int = 0
    outage_seconds: float = 0.0
    undecodable: dict[str, int] = field(default_factory=dict)
    realtime_lost: dict[str, int] = field(default_factory=dict)
    realtime_missed: dict[str, int] = field(default_factory=dict)
    outages_counted: int = 0
    publish_retries: int = 0
    publish_failures: int = 0
    pending_acks: int = 0
    duplicates_skipped: int = 0
    consumers_recreated: int = 0


class Telemetry:
    """What a bus counts, shared with its Realtime taps and JetStream consumers.

    Args:
        prefix: the bus's subject prefix (slow-consumer reports on other subjects, such as
            inboxes, are not Realtime losses).
    """

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix + "."
        self.topics: dict[str, TopicCounters] = {}
        self.undecodable_by_subject: dict[str, int] = {}
        self.realtime_lost: dict[str, int] = {}
        self.realtime_missed: dict[str, int] = {}
        self.outages_counted = 0
        self.duplicates = 0
        self.recreated = 0

    def counters_for(self, topic: str) -> TopicCounters:
        """The counters of a topic, made on first use."""
        counters = self.topics.get(topic)
        if counters is None:
            counters = self.topics[topic] = TopicCounters()
        return counters

    def count_drop(self, topic: str, reason: DropReason, was_delivered: bool) -> None:
        """A subscription's drop callback: count the drop on its topic."""
        self.counters_for(topic).drop(reason, was_delivered)

    def undecodable(self, subject: str, error: ProtocolError) -> None:
        """Count (and log, sparingly) a message that is not a valid ``loom.v1.Event``."""
        seen = _bump(self.undecodable_by_subject, subject)
        if seen == 1 or seen % 1000 == 0:
            log.warning(
                "skipped a message on subject %r that is not a loom.v1.Event (%d so far on it): %s",
                subject,
                seen,
                error,
            )

    def count_missed(self, events: dict[str, int], deliveries: dict[str, int]) -> None:
        """Count what Realtime subscriptions missed during an outage: ``events`` per
        subject, ``deliveries`` per topic."""
        for subject, n in events.items():
            _bump(self.realtime_missed, subject, n)
        for topic, n in deliveries.items():
            self.counters_for(topic).missed += n

    def count_duplicate(self) -> None:
        """Count a JetStream redelivery of an event already queued."""
        self.duplicates += 1

    def count_recreated(self) -> None:
        """Count a consumer re-created after the server lost it."""
        self.recreated += 1

    def client_error(self, exc: Exception) -> None:
        """The client's asynchronous errors: a slow consumer on a Loom subject lost
        Realtime events (counted per subject); the rest is logged at debug level."""
        from nats.errors import SlowConsumerError

        if isinstance(exc, SlowConsumerError):
            subject = exc.subject or "?"
            if subject.startswith(self._prefix):
                lost = _bump(self.realtime_lost, subject)
                if lost == 1 or lost % 1000 == 0:
                    log.warning("Realtime events lost on %r: the client's buffer is full", subject)
            return
        log.debug("NATS client error: %s", exc)
