"""Backpressure: what a subscription does when events come faster than they are read."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from loom._action import QoS
from loom._event import Event

__all__ = ["DEFAULT_QUEUE_SIZES", "Backpressure", "DropReason", "Policy", "default_policy"]

#: Queue bound of a subscription that has no ``queue=`` and no ``queue_size``, per QoS.
DEFAULT_QUEUE_SIZES: Final[dict[QoS, int]] = {
    QoS.REALTIME: 64,
    QoS.BATCHED: 1024,
    QoS.BACKGROUND: 4096,
}


class Policy(enum.Enum):
    """How a subscription treats events it cannot take at once.

    Attributes:
        BLOCK: the publisher awaits room in the queue (Batched and Background only).
        DROP_NEWEST: a full queue drops the event being published.
        DROP_OLDEST: a full queue drops its oldest event to take the new one (freshest wins).
        SAMPLE: keep one event in ``sample_every`` and/or at most ``max_rate`` per second.
        AGGREGATE: an event whose ``aggregate_key`` matches one still queued replaces it in
            place (latest wins).

    SAMPLE and AGGREGATE decide which events enter the queue; when the queue is full they
    fall back to the QoS default (Realtime drops the oldest, the others block).
    """

    BLOCK = "block"
    DROP_NEWEST = "drop_newest"
    DROP_OLDEST = "drop_oldest"
    SAMPLE = "sample"
    AGGREGATE = "aggregate"


class DropReason(enum.Enum):
    """Why a delivery was dropped; ``TopicStats.dropped_by_reason`` is keyed by the name.

    Attributes:
        QUEUE_FULL: the queue was full (the new event, or under DROP_OLDEST the oldest one).
        BACKLOG: the topic's in-flight publishes reached the bus's threshold (Realtime only).
        SAMPLED: the sampling policy skipped the event.
        AGGREGATED: a newer event with the same aggregate key superseded it in the queue.
        CLOSED: the subscription or its queue was closed before the event got in.
    """

    QUEUE_FULL = "queue_full"
    BACKLOG = "backlog"
    SAMPLED = "sampled"
    AGGREGATED = "aggregated"
    CLOSED = "closed"


def default_policy(qos: QoS) -> Policy:
    """The overflow policy a subscription gets when it names none.

    Realtime never blocks its publisher and keeps the freshest data (DROP_OLDEST); Batched
    and Background make the publisher await room (BLOCK).
    """
    return Policy.DROP_OLDEST if qos is QoS.REALTIME else Policy.BLOCK


@dataclass(frozen=True, slots=True)
class Backpressure:
    """A subscription's backpressure settings; omitted fields take the QoS defaults.

    Args:
        policy: the :class:`Policy`; None keeps the QoS default (Realtime DROP_OLDEST,
            Batched and Background BLOCK).
        sample_every: with SAMPLE, keep the first event and then one in every N.
        max_rate: with SAMPLE, keep at most this many events per second (a token bucket
            that holds up to one second's worth, so a short burst up to ``max_rate`` passes).
        aggregate_key: with AGGREGATE, a metadata key, or a function of the event, giving
            the key to coalesce on; an event without a key (None) is queued as is.
        queue_size: the subscription's queue bound, instead of the QoS default (64, 1024,
            4096). Not allowed together with a shared ``queue=``.

    Raises:
        ValueError: a field is out of range, or fields do not fit the policy (SAMPLE
            without ``sample_every`` or ``max_rate``, AGGREGATE without a key, ...).

    Example:
        >>> Backpressure(Policy.SAMPLE, sample_every=10).sample_every
        10
    """

    policy: Policy | None = None
    sample_every: int | None = None
    max_rate: float | None = None
    aggregate_key: str | Callable[[Event], str | None] | None = None
    queue_size: int | None = None

    def __post_init__(self) -> None:
        policy = self.policy
        if policy is not None and not isinstance(policy, Policy):
            raise ValueError(f"policy must be a loom.bus.Policy, not {policy!r}")
        if self.queue_size is not None and (
            self.queue_size.__class__ is not int or self.queue_size < 1
        ):
            raise ValueError(f"queue_size must be an int >= 1, got {self.queue_size!r}")
        sampling = self.sample_every is not None or self.max_rate is not None
        if policy is Policy.SAMPLE and not sampling:
            raise ValueError("Policy.SAMPLE needs sample_every (1 in N) or max_rate (per second)")
        if sampling and policy is not Policy.SAMPLE:
            raise ValueError("sample_every and max_rate need policy=Policy.SAMPLE")
        if self.sample_every is not None and (
            self.sample_every.__class__ is not int or self.sample_every < 1
        ):
            raise ValueError(f"sample_every must be an int >= 1, got {self.sample_every!r}")
        if self.max_rate is not None and not (
            isinstance(self.max_rate, int | float)
            and math.isfinite(self.max_rate)
            and self.max_rate > 0
        ):
            raise ValueError(f"max_rate must be a finite number > 0, got {self.max_rate!r}")
        key = self.aggregate_key
        if policy is Policy.AGGREGATE and key is None:
            raise ValueError("Policy.AGGREGATE needs aggregate_key (a metadata key or a function)")
        if key is not None:
            if policy is not Policy.AGGREGATE:
                raise ValueError("aggregate_key needs policy=Policy.AGGREGATE")
            if not (isinstance(key, str) or callable(key)):
                raise ValueError(f"aggregate_key must be a str or a callable, not {key!r}")

    def overflow(self, qos: QoS) -> Policy:
        """What a full queue does for this subscription: BLOCK, DROP_NEWEST or DROP_OLDEST.

        Raises:
            ValueError: BLOCK on a Realtime subscription (Realtime never blocks its publisher).
        """
        policy = self.policy
        if policy is Policy.BLOCK and qos is QoS.REALTIME:
            raise ValueError(
                "Policy.BLOCK is not allowed on a Realtime subscription (Realtime never blocks "
                "the publisher); use QoS.BATCHED, or DROP_NEWEST / DROP_OLDEST"
            )
        if policy is None or policy is Policy.SAMPLE or policy is Policy.AGGREGATE:
            return default_policy(qos)
        return policy

    def key_function(self) -> Callable[[Event], str | None] | None:
        """The aggregate key as a function of the event, or None when not aggregating."""
        key = self.aggregate_key
        if key is None:
            return None
        if isinstance(key, str):
            return lambda event: event.metadata.get(key)
        return key
