"""Replay: read a topic's history from the stream, from a sequence or a time, up to now."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from loom import Event
from loom.errors import ProtocolError
from loom_nats._codec import decode_event
from loom_nats._stream import create_consumer

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext

__all__ = ["ReplayedEvent", "check_start", "replay_stream"]

log = logging.getLogger("loom.nats")


@dataclass(frozen=True, slots=True)
class ReplayedEvent:
    """One event read back from the stream.

    Attributes:
        seq: its stream sequence (pass ``seq + 1`` to resume after it).
        topic: the topic it was published on.
        event: the event.
        stored_at: when the stream stored it (UTC).
    """

    seq: int
    topic: str
    event: Event
    stored_at: datetime


def check_start(from_seq: int | None, from_time: datetime | float | None) -> datetime | None:
    """Check a replay start point; returns the start time as an aware datetime (or None).

    Raises:
        ValueError: both or neither given, a sequence below 1, a naive datetime, or a
            time that is not a datetime nor a number of seconds since the epoch.
    """
    if (from_seq is None) == (from_time is None):
        raise ValueError("replay takes exactly one of from_seq (a stream sequence) or from_time")
    if from_seq is not None:
        if from_seq.__class__ is not int or from_seq < 1:
            raise ValueError(f"from_seq must be an int >= 1 (a stream sequence), got {from_seq!r}")
        return None
    if isinstance(from_time, datetime):
        if from_time.tzinfo is None:
            raise ValueError(
                f"from_time {from_time.isoformat()} has no time zone: give an aware datetime "
                "(e.g. datetime.now(UTC)) or seconds since the epoch"
            )
        return from_time.astimezone(UTC)
    if isinstance(from_time, int | float) and not isinstance(from_time, bool):
        return datetime.fromtimestamp(float(from_time), UTC)
    raise ValueError(
        f"from_time must be a datetime or seconds since the epoch, not {type(from_time).__name__}"
    )


async def replay_stream(
    js: JetStreamContext,
    *,
    stream: str,
    subject: str,
    strip: int,
    from_seq: int | None,
    from_time: datetime | None,
    event_types: frozenset[str] | None,
    limit: int | None,
    batch: int,
    undecodable: Callable[[str, ProtocolError], None],
) -> AsyncIterator[ReplayedEvent]:
    """Yield the stream's events on ``subject`` from the start point to the newest one
    stored when the replay began, in order; a short-lived consumer that acknowledges
    nothing reads them, so the replay changes no subscriber's position."""
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, ReplayPolicy

    info = await js.stream_info(stream)
    end = info.state.last_seq
    if end == 0 or (from_seq is not None and from_seq > end):
        return
    name = f"loom-replay-{uuid.uuid4().hex[:16]}"
    config = ConsumerConfig(
        name=name,
        filter_subject=subject,
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE
        if from_seq is not None
        else DeliverPolicy.BY_START_TIME,
        opt_start_seq=from_seq,
        opt_start_time=from_time,
        replay_policy=ReplayPolicy.INSTANT,
        inactive_threshold=30.0,
        max_ack_pending=-1,
    )
    await create_consumer(js, stream, config)
    psub = await js.pull_subscribe_bind(name, stream=stream)
    count = 0
    try:
        while True:
            try:
                messages = await psub.fetch(batch, timeout=2.0)
            except (NatsTimeout, TimeoutError):
                return  # nothing left on this subject up to now
            for msg in messages:
                metadata = msg.metadata
                seq = metadata.sequence.stream
                if seq > end:
                    return
                try:
                    event = decode_event(msg.data)
                except ProtocolError as exc:
                    undecodable(msg.subject, exc)
                    continue
                if event_types is not None and event.type not in event_types:
                    continue
                yield ReplayedEvent(seq, msg.subject[strip:], event, metadata.timestamp)
                count += 1
                if limit is not None and count >= limit:
                    return
                if seq >= end:
                    return
    finally:
        try:
            await psub.unsubscribe()
            await js.delete_consumer(stream, name)
        except Exception as exc:  # noqa: BLE001 - the server removes it after 30 s idle anyway
            log.debug("removing the replay consumer: %s", exc)
