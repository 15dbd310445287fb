"""Payloads: bytes as they are, text as UTF-8, anything else as compact JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeAlias

from loom._event import Event

__all__ = ["CONTENT_TYPE_KEY", "JSON_CONTENT_TYPE", "Payload", "encode_payload", "json_payload"]

#: What a primitive or ``ctx`` method accepts as a payload: bytes are sent as they are,
#: a str as UTF-8, and a mapping or a list as JSON.
Payload: TypeAlias = bytes | str | Mapping[str, Any] | Sequence[Any]

#: The metadata key that marks a JSON payload, and its value.
CONTENT_TYPE_KEY: Final = "content_type"
JSON_CONTENT_TYPE: Final = "application/json"


def encode_payload(payload: Payload) -> tuple[bytes, bool]:
    """The payload as bytes, and whether it was encoded as JSON.

    Raises:
        TypeError: the payload is neither bytes, str, nor JSON-serialisable.
    """
    if payload.__class__ is bytes:
        return payload, False
    if isinstance(payload, str):
        return payload.encode(), False
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload), False
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"payload of type {type(payload).__name__} is not bytes, str or JSON: {exc}"
        ) from exc
    return text.encode(), True


def json_payload(event: Event) -> Any:
    """The event's payload decoded as JSON.

    Raises:
        ValueError: the payload is not UTF-8 JSON (the message names the event).

    Example:
        >>> json_payload(Event("t", b'{"a": 1}'))
        {'a': 1}
    """
    try:
        return json.loads(event.payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(
            f"event {event.id!r} ({event.type}) does not carry JSON: {exc}; "
            f"payload starts {event.payload[:40]!r}"
        ) from exc
