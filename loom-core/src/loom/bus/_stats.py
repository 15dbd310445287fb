"""Per-topic statistics: live counters on the hot path, snapshots for readers."""

from __future__ import annotations

from dataclasses import dataclass, field

from loom.bus._policy import DropReason

__all__ = ["TopicCounters", "TopicStats"]


@dataclass
class TopicStats:
    """A snapshot of one topic's statistics.

    Attributes:
        published: events published on the topic.
        delivered: deliveries that are (or were) in a subscriber's queue; a queued event
            that is later evicted (DROP_OLDEST) or superseded (AGGREGATE) moves from here
            to ``dropped``. Events filtered out by type count in neither.
        dropped: deliveries dropped, for any reason.
        dropped_by_reason: drops per :class:`DropReason` name (``"QUEUE_FULL"``, ...).
        active_subscriptions: live subscriptions whose pattern matches the topic,
            wildcards included.
        backlog: publishes on the topic in flight now (waiting for room in a queue).
    """

    published: int = 0
    delivered: int = 0
    dropped: int = 0
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    active_subscriptions: int = 0
    backlog: int = 0


class TopicCounters:
    """The live counters of one topic, bumped by the bus without locks (one event loop)."""

    __slots__ = ("backlog", "by_reason", "delivered", "dropped", "published")

    def __init__(self) -> None:
        self.published = 0
        self.delivered = 0
        self.dropped = 0
        self.backlog = 0
        self.by_reason: dict[DropReason, int] = {}

    def drop(self, reason: DropReason, was_delivered: bool) -> None:
        """Count one dropped delivery (and take it back from ``delivered`` if it was)."""
        self.dropped += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if was_delivered and self.delivered > 0:
            self.delivered -= 1

    def absorb(self, other: TopicCounters) -> None:
        """Add ``other``'s counts to these (its backlog is over: it is not carried)."""
        self.published += other.published
        self.delivered += other.delivered
        self.dropped += other.dropped
        by_reason = self.by_reason
        for reason, n in other.by_reason.items():
            by_reason[reason] = by_reason.get(reason, 0) + n

    def snapshot(self, active_subscriptions: int) -> TopicStats:
        """The counters as a :class:`TopicStats`."""
        return TopicStats(
            published=self.published,
            delivered=self.delivered,
            dropped=self.dropped,
            dropped_by_reason={r.name: n for r, n in self.by_reason.items()},
            active_subscriptions=active_subscriptions,
            backlog=self.backlog,
        )
