"""Events on the wire: ``loom.v1.Event`` protobuf, encoded and decoded on the hot path.

Same bytes as :meth:`loom.Event.encode` / :meth:`loom.Event.decode`, a little faster: the
message is filled field by field, and a decoded event is built without re-running the
checks that protobuf's own types already guarantee (priority is still range-checked, and
an event must have an id).

A NATS message carries one event (its body is the ``loom.v1.Event``, no header) or a
batch: several events coalesced by a Realtime publisher, the body a ``loom.v1.EventBatch``
of columns (see :mod:`loom.wire`) with no ``topics`` column (the subject is every event's
topic), and the header :data:`BATCH_HEADER` giving their count. :func:`decode_message`
reads both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from loom import Event
from loom.errors import InvalidEventError, ProtocolError
from loom.wire import event_chars, fill_events, read_events

__all__ = [
    "BATCH_HEADER",
    "check_event",
    "decode_batch",
    "decode_event",
    "decode_message",
    "encode_batch",
    "encode_event",
    "raise_too_large",
]

#: The NATS header that marks a batch body; its value is the number of events in it.
BATCH_HEADER = "Loom-Batch"

_BATCH = "loom.v1.EventBatch"

_message_class: Any = None
_batch_class: Any = None
_decode_errors: tuple[type[Exception], ...] = (UnicodeDecodeError,)


def _message() -> Any:
    """Load protobuf on first use, so that importing this module stays light."""
    global _message_class, _batch_class, _decode_errors
    if _message_class is None:
        from google.protobuf.message import DecodeError

        from loom.v1 import bridge_pb2, event_pb2

        # UnicodeDecodeError comes from the pure-Python protobuf backend.
        _decode_errors = (DecodeError, UnicodeDecodeError)
        _batch_class = bridge_pb2.EventBatch
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


def check_event(event: Event, max_payload: int) -> None:
    """Refuse, before it is held for a batch, an event that could not travel alone; cheap
    (it encodes only an event that may be near ``max_payload``).

    Raises:
        InvalidEventError: a metadata key or value, or a tag, that is not a string (most
            such: one with a length, bytes say, fails when its batch is encoded instead),
            or the event encoded is larger than ``max_payload``.
    """
    try:
        chars = event_chars(event)
    except TypeError as exc:
        encode_event(event)  # names the field
        raise InvalidEventError(f"event {event.id!r} cannot be encoded: {exc}") from exc
    if chars * 4 > max_payload:  # UTF-8 takes at most 4 bytes a character
        size = len(encode_event(event))
        if size > max_payload:
            raise_too_large(event, size, max_payload)


def raise_too_large(event: Event, size: int, max_payload: int) -> NoReturn:
    """Raise the error for an event of ``size`` bytes encoded, over ``max_payload``.

    Raises:
        InvalidEventError: always.
    """
    raise InvalidEventError(
        f"event {event.id!r} is {size} bytes encoded, more than the server's "
        f"max_payload of {max_payload}"
    )


def encode_batch(events: Sequence[Event], budget: int) -> tuple[bytes, int]:
    """The body of one message holding the longest prefix of ``events`` (at least one)
    that stays within ``budget`` bytes, and how many events it holds: a lone event as a
    plain ``loom.v1.Event``, several as a batch. Only a lone event may be over the budget.

    Raises:
        InvalidEventError: some event cannot be encoded.
    """
    if len(events) > 1:
        if _batch_class is None:
            _message()
        batch = _batch_class()
        try:
            # The estimate counts characters; multi-byte text is caught by the check below.
            count = fill_events(batch, events, budget)
        except (TypeError, ValueError) as exc:
            raise InvalidEventError(f"a batch of events cannot be encoded: {exc}") from exc
        if count > 1:
            body: bytes = batch.SerializeToString()
            if len(body) <= budget:
                return body, count
            return encode_batch(events[: max(1, count * budget // len(body))], budget)
    return encode_event(events[0]), 1


def decode_batch(data: bytes, count: str | None = None) -> tuple[list[Event], ProtocolError | None]:
    """The events of a batch body, in order, and what went wrong, if anything.

    A body that does not parse, or whose columns do not add up, yields no event. One whose
    count differs from the header's still yields its events, with the error.

    Args:
        data: the body.
        count: the :data:`BATCH_HEADER` value; when given, a batch holding another number
            of events is an error.
    """
    cls = _batch_class
    if cls is None:
        _message()
        cls = _batch_class
    try:
        batch = cls.FromString(data)
    except _decode_errors as exc:
        return [], ProtocolError(_BATCH, f"{len(data)} bytes do not parse: {exc}")
    if batch.topics:
        return [], ProtocolError(_BATCH, "a loom-nats batch carries no topics column")
    try:
        events = read_events(batch)
    except ProtocolError as exc:
        return [], exc
    if not events:
        return events, ProtocolError(_BATCH, "the body holds no event")
    if not all(batch.ids):
        return [], ProtocolError(_BATCH, "an event in it has no id")
    if count is not None and count != str(len(events)):
        return events, ProtocolError(
            _BATCH,
            f"header {BATCH_HEADER}: {count!r} announces another count than the "
            f"{len(events)} events the body holds",
        )
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
