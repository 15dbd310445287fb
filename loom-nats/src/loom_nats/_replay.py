"""Replay: read a topic's history from the stream, from a sequence or a time, up to now,
and hand it to a subscriber (a handler or another bus) or write it as JSON lines."""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, TypeAlias

from loom import Event
from loom.bus import EventBus
from loom.errors import ProtocolError
from loom_nats._codec import decode_message
from loom_nats._stream import create_consumer

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext

    from loom_nats._bus import NatsBus

__all__ = [
    "ReplayTarget",
    "ReplayedEvent",
    "check_start",
    "event_json",
    "replay_into",
    "replay_stream",
]

#: Where :func:`replay_into` hands the history: a handler ``(topic, event)`` (sync or
#: async), an :class:`~loom.bus.EventBus` to publish it on, a file path or a text stream
#: (JSON lines).
ReplayTarget: TypeAlias = (
    "Callable[[str, Event], Awaitable[None] | None] | EventBus | str | os.PathLike[str] | IO[str]"
)

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

    def to_json(self) -> dict[str, Any]:
        """As the JSON object ``loom replay`` writes: ``seq``, ``topic``, ``stored_at``
        (ISO 8601) and ``event`` (see :func:`event_json`)."""
        return {
            "seq": self.seq,
            "topic": self.topic,
            "stored_at": self.stored_at.isoformat(),
            "event": event_json(self.event),
        }


def event_json(event: Event) -> dict[str, Any]:
    """An event as JSON-ready data; the payload in base64 (``payload_b64``)."""
    return {
        "id": event.id,
        "type": event.type,
        "timestamp_ms": event.timestamp_ms,
        "source": event.source,
        "metadata": event.metadata,
        "payload_b64": base64.b64encode(event.payload).decode(),
        "confidence": event.confidence,
        "tags": list(event.tags),
        "priority": event.priority,
    }


async def replay_into(
    bus: NatsBus,
    pattern: str,
    target: ReplayTarget,
    *,
    from_seq: int | None = None,
    from_time: datetime | float | None = None,
    event_types: Iterable[str] = (),
    limit: int | None = None,
) -> int:
    """Replay the history of the topics ``pattern`` matches into ``target``, oldest first,
    and return how many events it got.

    The target gets every event in stream order, each handed on before the next is read:

    - a handler ``handler(topic, event)`` (a coroutine function or a plain one) is called;
    - an :class:`~loom.bus.EventBus` gets each event published on its topic, so that the
      agents of a runtime on that bus handle the history with the code that handled it
      live (to rebuild their state on a fresh host). It must be another bus than the
      stream's: publishing the history back into the stream it comes from is refused;
    - a path or a text stream gets one JSON object per line (:meth:`ReplayedEvent.to_json`).

    Args:
        bus: a started ``NatsBus`` whose stream holds the history.
        pattern: a topic or a pattern.
        target: where the events go (see above).
        from_seq: the first stream sequence to read.
        from_time: read what was stored at or after this time.
        event_types: only these event types.
        limit: stop after this many events.

    Raises:
        ValueError: a bad start point or limit, or ``target`` is the stream's own bus (or
            another ``NatsBus`` on the same stream).
        TypeError: ``target`` is none of the above.
        InvalidTopicError: the pattern is invalid.
    """
    sink, close = _sink(bus, target)
    count = 0
    try:
        async for item in bus.replay(
            pattern,
            from_seq=from_seq,
            from_time=from_time,
            event_types=event_types,
            limit=limit,
        ):
            result = sink(item)
            if inspect.isawaitable(result):
                await result
            count += 1
    finally:
        close()
    return count


def _sink(
    bus: NatsBus, target: ReplayTarget
) -> tuple[Callable[[ReplayedEvent], Awaitable[Any] | None], Callable[[], None]]:
    if isinstance(target, EventBus):
        if target is bus or _same_stream(bus, target):
            raise ValueError(
                "replay_into would publish the history back into the stream it reads "
                f"({_stream_of(bus)}); replay into another bus (a MemoryBus of the host "
                "that rebuilds), a handler or a file"
            )
        publish = target.publish
        return (lambda item: publish(item.topic, item.event)), _nothing
    if isinstance(target, str | os.PathLike):
        out = open(target, "w", encoding="utf-8")  # noqa: SIM115 - closed by the caller
        return (lambda item: _write(out, item)), out.close
    if hasattr(target, "write") and not callable(target):
        return (lambda item: _write(target, item)), _nothing
    if callable(target):
        handler = target
        return (lambda item: handler(item.topic, item.event)), _nothing
    raise TypeError(
        "replay_into needs a handler (topic, event), an EventBus, a path or a text stream, "
        f"not {type(target).__name__}"
    )


def _write(out: IO[str], item: ReplayedEvent) -> None:
    out.write(json.dumps(item.to_json()) + "\n")


def _nothing() -> None:
    return None


def _stream_of(bus: NatsBus) -> str:
    return f"stream {bus.stream!r}"


def _same_stream(bus: NatsBus, other: EventBus) -> bool:
    from loom_nats._bus import NatsBus

    return isinstance(other, NatsBus) and other.stream == bus.stream


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
    consumer = await create_consumer(js, stream, config)
    # What the filter matches from the start point, counted by the server when the
    # consumer was made: reading that many ends the replay without waiting for a fetch to
    # time out (the subject's newest event is rarely the stream's).
    remaining = consumer.num_pending or 0
    if remaining == 0:
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, name)
        return
    psub = await js.pull_subscribe_bind(name, stream=stream)
    count = 0
    try:
        while True:
            try:
                messages = await psub.fetch(min(batch, remaining), timeout=2.0)
            except (NatsTimeout, TimeoutError):
                return  # nothing left on this subject up to now
            for msg in messages:
                metadata = msg.metadata
                seq = metadata.sequence.stream
                remaining -= 1
                if seq > end:
                    return
                events, error = decode_message(msg.data, msg.headers)
                if error is not None:
                    undecodable(msg.subject, error)
                for event in events:  # one event, or a batch of core publishes
                    if event_types is not None and event.type not in event_types:
                        continue
                    yield ReplayedEvent(seq, msg.subject[strip:], event, metadata.timestamp)
                    count += 1
                    if limit is not None and count >= limit:
                        return
                if seq >= end:
                    return
            if remaining <= 0:
                return
    finally:
        try:
            await psub.unsubscribe()
            await js.delete_consumer(stream, name)
        except Exception as exc:  # noqa: BLE001 - the server removes it after 30 s idle anyway
            log.debug("removing the replay consumer: %s", exc)
