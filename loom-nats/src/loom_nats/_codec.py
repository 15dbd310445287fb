"""Events on the wire: ``loom.v1.Event`` protobuf, encoded and decoded on the hot path.

Same bytes as :meth:`loom.Event.encode` / :meth:`loom.Event.decode`, a little faster: the
message is filled field by field, and a decoded event is built without re-running the
checks that protobuf's own types already guarantee (priority is still range-checked, and
an event must have an id).

A NATS message carries one event (its body is the ``loom.v1.Event``, no header) or a
batch: several events coalesced by a Realtime publisher, the body a protobuf delimited
stream (varint length, then the event's bytes, repeated) and the header
:data:`BATCH_HEADER` giving their count. :func:`decode_message` reads both.
"""

from __future__ import annotations

from typing import Any

from loom import Event
from loom.errors import InvalidEventError, ProtocolError

__all__ = [
    "BATCH_HEADER",
    "decode_batch",
    "decode_event",
    "decode_message",
    "encode_batch",
    "encode_event",
    "varint",
]

#: The NATS header that marks a batch body; its value is the number of events in it.
BATCH_HEADER = "Loom-Batch"

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
        # Field by field: faster than the constructor's keyword arguments (upb checks
        # each the same way, and proto3 leaves default values off the wire either way).
        message = cls()
        message.id = event.id
        message.type = event.type
        message.timestamp_ms = event.timestamp_ms
        message.source = event.source
        message.payload = event.payload
        message.confidence = event.confidence
        message.priority = event.priority
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


def varint(n: int) -> bytes:
    """``n`` (>= 0) as a protobuf varint."""
    if n < 0x80:
        return bytes((n,))
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_batch(encoded: list[bytes]) -> bytes:
    """The protobuf delimited stream of already encoded events: each one's length as a
    varint, then its bytes."""
    parts: list[bytes] = []
    append = parts.append
    for data in encoded:
        append(varint(len(data)))
        append(data)
    return b"".join(parts)


def decode_batch(data: bytes, count: str | None = None) -> tuple[list[Event], ProtocolError | None]:
    """The events of a delimited stream, in order, and what went wrong, if anything.

    Decoding stops at the first bad frame (a truncated length or body, bytes that are not
    an event); the events before it are returned with the error, so a damaged batch still
    delivers what it carries intact.

    Args:
        data: the body.
        count: the :data:`BATCH_HEADER` value; when given, a stream holding another
            number of events is an error (the events it does hold are still returned).
    """
    events: list[Event] = []
    append = events.append
    end = len(data)
    pos = 0
    while pos < end:
        size = data[pos]
        pos += 1
        if size & 0x80:  # a length of 128 bytes or more: more varint bytes follow
            size &= 0x7F
            shift = 7
            while True:
                if pos >= end or shift > 28:
                    return events, ProtocolError(
                        "loom.v1.Event batch", f"event {len(events) + 1}: bad length varint"
                    )
                byte = data[pos]
                pos += 1
                size |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
        stop = pos + size
        if stop > end:
            return events, ProtocolError(
                "loom.v1.Event batch",
                f"event {len(events) + 1} is truncated: {size} bytes announced, {end - pos} left",
            )
        try:
            append(decode_event(data[pos:stop]))
        except ProtocolError as exc:
            return events, ProtocolError("loom.v1.Event batch", f"event {len(events) + 1}: {exc}")
        pos = stop
    if count is not None and count != str(len(events)):
        return events, ProtocolError(
            "loom.v1.Event batch",
            f"header {BATCH_HEADER}: {count!r} announces another count than the "
            f"{len(events)} events the body holds",
        )
    if not events:
        return events, ProtocolError("loom.v1.Event batch", "the body holds no event")
    return events, None


def decode_message(
    data: bytes, headers: dict[str, str] | None
) -> tuple[list[Event], ProtocolError | None]:
    """The events one NATS message carries (one, or a batch marked by
    :data:`BATCH_HEADER`), and the error that cut decoding short, if any."""
    if headers:
        count = headers.get(BATCH_HEADER)
        if count is not None:
            return decode_batch(data, count)
    try:
        return [decode_event(data)], None
    except ProtocolError as exc:
        return [], exc
