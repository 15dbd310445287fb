"""What Realtime subscriptions missed while the connection was down, counted from the
stream after the reconnect.

Core NATS keeps nothing for a subscriber that is away, but the bus's stream stores every
event published under the prefix, Realtime traffic included. So after a reconnect each
Realtime tap reads, through a short-lived consumer that acknowledges nothing, the events
stored on its subject from the moment the disconnection was noticed up to the stream's
last sequence once the tap was subscribed again; those it did not receive meanwhile (it
remembers their ids from the disconnection on) are what it missed.

Limits, said in docs/nats.md: what is published between the real break and its detection
(a silent network failure, noticed by pings) is not counted; clocks of client and server
that disagree shift the window; a stream that lost its history (memory storage) counts
nothing; beyond :data:`MAX_SCANNED` stored events the count stops (logged).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from loom_nats._codec import decode_message
from loom_nats._stream import create_consumer

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

    from loom_nats._realtime import RealtimeTap

__all__ = ["MAX_SCANNED", "Missed", "count_missed"]

log = logging.getLogger("loom.nats")

#: Most stored events one tap's count reads after one outage.
MAX_SCANNED = 200_000
_BATCH = 512


@dataclass(slots=True)
class Missed:
    """What one Realtime tap missed during one outage.

    Attributes:
        events: per subject, events stored meanwhile that the tap never received.
        deliveries: per topic, the deliveries to local subscriptions those events were
            (an event counts once per subscription whose type filter takes it).
        truncated: the count stopped at :data:`MAX_SCANNED` stored events.
    """

    events: dict[str, int] = field(default_factory=dict)
    deliveries: dict[str, int] = field(default_factory=dict)
    truncated: bool = False

    @property
    def total(self) -> int:
        """Events missed on every subject together."""
        return sum(self.events.values())


async def count_missed(
    js: JetStreamContext,
    *,
    stream: str,
    tap: RealtimeTap,
    since: float,
    end_seq: int,
    strip: int,
) -> Missed:
    """Count the events on ``tap``'s subject stored from ``since`` (epoch seconds) up to
    stream sequence ``end_seq`` that the tap did not receive (``tap.witnessed``).

    Raises:
        StreamConfigError: the server refused the short-lived consumer.
        nats.errors.Error: JetStream did not answer.
    """
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, ReplayPolicy

    missed = Missed()
    if end_seq <= 0:
        return missed
    witnessed = tap.witnessed or set()
    name = f"loom-outage-{uuid.uuid4().hex[:16]}"
    config = ConsumerConfig(
        name=name,
        filter_subject=tap.subject,
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=datetime.fromtimestamp(since, UTC),
        replay_policy=ReplayPolicy.INSTANT,
        inactive_threshold=30.0,
        max_ack_pending=-1,
    )
    info = await create_consumer(js, stream, config)
    try:
        if not info.num_pending:
            return missed
        psub = await js.pull_subscribe_bind(name, stream=stream)
        scanned = 0
        try:
            while True:
                try:
                    messages = await psub.fetch(_BATCH, timeout=2.0)
                except (NatsTimeout, TimeoutError):
                    return missed
                for msg in messages:
                    metadata = msg.metadata
                    seq = metadata.sequence.stream
                    if seq > end_seq:
                        return missed
                    scanned += 1
                    _count_one(missed, tap, msg, witnessed, strip)
                    if seq == end_seq or not metadata.num_pending:
                        return missed
                    if scanned >= MAX_SCANNED:
                        missed.truncated = True
                        log.warning(
                            "counting what %r missed during the outage stopped after %d events",
                            tap.subject,
                            scanned,
                        )
                        return missed
        finally:
            await psub.unsubscribe()
    finally:
        try:
            await js.delete_consumer(stream, name)
        except Exception as exc:  # noqa: BLE001 - the server removes it after 30 s idle anyway
            log.debug("removing the outage consumer: %s", exc)


def _count_one(missed: Missed, tap: RealtimeTap, msg: Msg, witnessed: set[str], strip: int) -> None:
    """Count the events of one stored message (one event, or a batch) the tap missed.
    What does not decode is not counted: it is counted as undecodable where delivered."""
    subject = msg.subject
    events, _ = decode_message(msg.data, msg.headers)
    for event in events:
        if event.id in witnessed:
            continue
        missed.events[subject] = missed.events.get(subject, 0) + 1
        deliveries = sum(1 for sub in tap.subs if sub.accepts(event))
        if deliveries:
            topic = subject[strip:]
            missed.deliveries[topic] = missed.deliveries.get(topic, 0) + deliveries
