"""Events on the wire: ``loom.v1.Event`` protobuf, encoded and decoded on the hot path.

Same bytes as :meth:`loom.Event.encode` / :meth:`loom.Event.decode`, a little faster: the
message is filled field by field, and a decoded event is built without re-running the
checks that protobuf's own types already guarantee (priority is still range-checked, and
an event must have an id).
"""

from __future__ import annotations

from typing import Any

from loom import Event
from loom.errors import InvalidEventError, ProtocolError

__all__ = ["decode_event", "encode_event"]

_message_class: Any = None
_decode_errors: tuple[type[Exception], ...] = (UnicodeDecodeError,)


def _message() -> Any:
    """Load protobuf on first use, so that importing this module stays light."""
    global _message_class, _decode_errors
    if _message_class is None:
        from google.protobuf.message import DecodeError

        from loom.v1 import event_pb2

        # UnicodeDecodeError comes from the pure-Python protobuf backend.
        _decode_errors = (DecodeError, UnicodeDecodeError)
        _message_class = event_pb2.Event
    return _message_class


def encode_event(event: Event) -> bytes:
    """The serialised ``loom.v1.Event`` of ``event``.

    Raises:
        InvalidEventError: a field holds a value the wire cannot carry.
    """
    cls = _message_class or _message()
    try:
        message = cls(
            id=event.id,
            type=event.type,
            timestamp_ms=event.timestamp_ms,
            source=event.source,
            payload=event.payload,
            confidence=event.confidence,
            priority=event.priority,
        )
        metadata = event.metadata
        if metadata:
            field = message.metadata
            for key, value in metadata.items():  # faster than the map's generic update()
                field[key] = value
        if event.tags:
            message.tags.extend(event.tags)
        return message.SerializeToString()  # type: ignore[no-any-return]  # protobuf is untyped here
    except (TypeError, ValueError) as exc:
        raise InvalidEventError(f"event {event.id!r} cannot be encoded: {exc}") from exc


def decode_event(data: bytes) -> Event:
    """The event that ``data`` (a serialised ``loom.v1.Event``) carries.

    Raises:
        ProtocolError: the bytes are not a valid ``loom.v1.Event``.
    """
    cls = _message_class or _message()
    try:
        message = cls.FromString(data)
    except _decode_errors as exc:
        raise ProtocolError("loom.v1.Event", f"{len(data)} bytes do not parse: {exc}") from exc
    if not message.id:
        # Every Loom event has an id; stray bytes that happen to parse (b"" does) have none.
        raise ProtocolError("loom.v1.Event", f"{len(data)} bytes carry no event id")
    priority = message.priority
    if not 0 <= priority <= 100:
        raise ProtocolError("loom.v1.Event", f"field 9 priority={priority} is outside 0..100")
    event = Event.__new__(Event)
    event.id = message.id
    event.type = message.type
    event.timestamp_ms = message.timestamp_ms
    event.source = message.source
    # upb's map and repeated containers are slow to convert (dict() of an empty map costs
    # as much as parsing the message): test for emptiness first, and read keys directly.
    metadata = message.metadata
    event.metadata = {key: metadata[key] for key in metadata} if metadata else {}
    event.payload = message.payload
    event.confidence = message.confidence
    tags = message.tags
    event.tags = tuple(tags) if tags else ()
    event.priority = priority
    return event
