"""The in-process Event: a light object, converted to ``loom.v1.Event`` only at boundaries."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from loom.errors import InvalidEventError, ProtocolError

if TYPE_CHECKING:
    from loom.v1 import event_pb2

__all__ = ["Event", "new_event_id"]

# Ids are a random per-process prefix plus a counter: unique across processes like a uuid4,
# at a tenth of the cost on the publish path.
_ID_PREFIX = os.urandom(6).hex()
_id_counter = itertools.count(1)

# Envelope keys in metadata; readers also accept them with this prefix (UPSTREAM.md AC1.7).
_PREFIX = "loom."


def new_event_id() -> str:
    """A new id, unique across processes: 12 random hex digits, a dash and a counter."""
    return f"{_ID_PREFIX}-{next(_id_counter):x}"


class Event:
    """Something that happened: the unit the bus carries.

    Field for field the ``loom.v1.Event`` message. Treat an event as immutable once
    published: subscribers share the same object (no copy on delivery), so derive a changed
    one with :meth:`replace` or the ``with_*`` helpers, which copy.

    Args:
        type: what kind of event this is, e.g. ``"sensor.reading"``.
        payload: the body, as bytes (JSON by convention when structured).
        id: unique id; generated when omitted.
        timestamp_ms: creation time in ms since the epoch; now when omitted.
        source: who produced it, e.g. ``"agent.planner"``.
        metadata: str to str; also carries the envelope (thread_id, correlation_id, ...).
            The event takes ownership of the dict it is given.
        confidence: 0..1, how sure the source is.
        tags: free-form labels.
        priority: 0 (lowest) to 100 (highest).

    Raises:
        InvalidEventError: ``payload`` is not bytes or ``priority`` is outside 0..100.

    Example:
        >>> e = Event("greeting", b"hi", source="demo")
        >>> e.with_thread("t1").thread_id
        't1'
    """

    __slots__ = (
        "confidence",
        "id",
        "metadata",
        "payload",
        "priority",
        "source",
        "tags",
        "timestamp_ms",
        "type",
    )

    id: str
    type: str
    timestamp_ms: int
    source: str
    metadata: dict[str, str]
    payload: bytes
    confidence: float
    tags: tuple[str, ...]
    priority: int

    def __init__(
        self,
        type: str,
        payload: bytes = b"",
        *,
        id: str | None = None,
        timestamp_ms: int | None = None,
        source: str = "",
        metadata: dict[str, str] | None = None,
        confidence: float = 1.0,
        tags: Iterable[str] = (),
        priority: int = 50,
    ) -> None:
        if payload.__class__ is not bytes:
            _bad_payload(payload)
        if priority.__class__ is not int or not 0 <= priority <= 100:
            _bad_priority(priority)
        if type.__class__ is not str:
            raise InvalidEventError(f"event type must be a str, not {type.__class__.__name__}")
        self.id = id if id is not None else f"{_ID_PREFIX}-{next(_id_counter):x}"
        self.type = type
        self.timestamp_ms = (
            timestamp_ms if timestamp_ms is not None else time.time_ns() // 1_000_000
        )
        self.source = source
        self.metadata = {} if metadata is None else metadata
        self.payload = payload
        self.confidence = confidence
        self.tags = tags if isinstance(tags, tuple) else tuple(tags)
        self.priority = priority

    # -- value semantics ---------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in Event.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable metadata: not hashable

    def __repr__(self) -> str:
        return (
            f"Event(type={self.type!r}, id={self.id!r}, source={self.source!r}, "
            f"payload={self.payload[:32]!r}{'…' if len(self.payload) > 32 else ''}, "
            f"priority={self.priority}, metadata={self.metadata!r})"
        )

    def replace(self, **changes: Any) -> Event:
        """A copy with some fields changed (metadata is copied, so the original is untouched)."""
        fields: dict[str, Any] = {f: getattr(self, f) for f in Event.__slots__}
        fields["metadata"] = dict(self.metadata)
        fields.update(changes)
        return Event(**fields)

    def with_metadata(self, values: Mapping[str, str]) -> Event:
        """A copy whose metadata has ``values`` merged in, overwriting keys present."""
        metadata = dict(self.metadata)
        metadata.update(values)
        return self.replace(metadata=metadata)

    # -- envelope helpers (UPSTREAM.md AC1.6) ---------------------------------------------

    def with_thread(self, thread_id: str) -> Event:
        """A copy carrying ``thread_id``."""
        return self.with_metadata({"thread_id": thread_id})

    def with_correlation(self, correlation_id: str) -> Event:
        """A copy carrying ``correlation_id``."""
        return self.with_metadata({"correlation_id": correlation_id})

    def with_reply_to(self, reply_to: str) -> Event:
        """A copy carrying ``reply_to``."""
        return self.with_metadata({"reply_to": reply_to})

    def with_sender(self, sender: str) -> Event:
        """A copy carrying ``sender``."""
        return self.with_metadata({"sender": sender})

    def _read(self, key: str) -> str | None:
        md = self.metadata
        value = md.get(key)
        return value if value is not None else md.get(_PREFIX + key)

    @property
    def thread_id(self) -> str | None:
        """The envelope's thread id, or None (bare key first, then ``loom.thread_id``)."""
        return self._read("thread_id")

    @property
    def correlation_id(self) -> str | None:
        """The envelope's correlation id, or None."""
        return self._read("correlation_id")

    @property
    def reply_to(self) -> str | None:
        """Where replies go, or None."""
        return self._read("reply_to")

    @property
    def sender(self) -> str | None:
        """Who sent the event (``agent.{id}`` for agents), or None."""
        return self._read("sender")

    # -- protobuf boundary ----------------------------------------------------------------

    def to_proto(self) -> event_pb2.Event:
        """This event as a ``loom.v1.Event`` message.

        Raises:
            InvalidEventError: a field holds a value the wire cannot carry (say, a non-str
                metadata value).
        """
        from loom.v1 import event_pb2  # on first use: `import loom` does not load protobuf

        try:
            return event_pb2.Event(
                id=self.id,
                type=self.type,
                timestamp_ms=self.timestamp_ms,
                source=self.source,
                metadata=self.metadata,
                payload=self.payload,
                confidence=self.confidence,
                tags=self.tags,
                priority=self.priority,
            )
        except (TypeError, ValueError) as exc:
            raise InvalidEventError(f"event {self.id!r} cannot be encoded: {exc}") from exc

    @classmethod
    def from_proto(cls, message: event_pb2.Event) -> Event:
        """The event a ``loom.v1.Event`` message carries.

        Raises:
            ProtocolError: the message holds a priority outside 0..100.
        """
        if not 0 <= message.priority <= 100:
            raise ProtocolError(
                "loom.v1.Event", f"field 9 priority={message.priority} is outside 0..100"
            )
        return cls(
            message.type,
            message.payload,
            id=message.id,
            timestamp_ms=message.timestamp_ms,
            source=message.source,
            metadata=dict(message.metadata),
            confidence=message.confidence,
            tags=tuple(message.tags),
            priority=message.priority,
        )

    def encode(self) -> bytes:
        """The serialised ``loom.v1.Event``."""
        return bytes(self.to_proto().SerializeToString())

    @classmethod
    def decode(cls, data: bytes) -> Event:
        """Parse a serialised ``loom.v1.Event``.

        Raises:
            ProtocolError: the bytes are not a valid ``loom.v1.Event``.
        """
        from google.protobuf.message import DecodeError

        from loom.v1 import event_pb2

        message = event_pb2.Event()
        try:
            message.ParseFromString(data)
        except (
            DecodeError,
            UnicodeDecodeError,
        ) as exc:  # the pure-Python backend raises the latter
            raise ProtocolError("loom.v1.Event", f"{len(data)} bytes do not parse: {exc}") from exc
        return cls.from_proto(message)


def _bad_payload(payload: object) -> None:
    hint = " (encode text first, e.g. text.encode())" if isinstance(payload, str) else ""
    raise InvalidEventError(f"event payload must be bytes, not {type(payload).__name__}{hint}")


def _bad_priority(priority: object) -> None:
    raise InvalidEventError(f"event priority must be an int in 0..100, got {priority!r}")


def _with_metadata_unchecked(event: Event, metadata: dict[str, str]) -> Event:
    """A copy of a valid event with new metadata, skipping validation (runtime hot path)."""
    new = Event.__new__(Event)
    new.id = event.id
    new.type = event.type
    new.timestamp_ms = event.timestamp_ms
    new.source = event.source
    new.metadata = metadata
    new.payload = event.payload
    new.confidence = event.confidence
    new.tags = event.tags
    new.priority = event.priority
    return new
