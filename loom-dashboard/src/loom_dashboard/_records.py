"""Events as the dashboard keeps and shows them.

The tap runs for every event on the bus, so it keeps a plain tuple per event (a raw
record, fields at the indices below, the payload cut to the preview length) and builds the
JSON record only when someone reads it: the cost on the bus's loop stays a tuple and a
few lookups per event.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from loom._event import Event

__all__ = [
    "RawRecord",
    "envelope_value",
    "parse_traceparent",
    "payload_preview",
    "raw_record",
    "to_json",
]

#: ``(seq, topic, id, type, source, ts, seen_ms, priority, size, tags, metadata, head)``.
RawRecord = tuple[Any, ...]
SEQ, TOPIC, ID, TYPE, SOURCE, TS, SEEN, PRIORITY, SIZE, TAGS, METADATA, HEAD = range(12)

# W3C trace context: version-traceid-spanid-flags, lower-case hex; all-zero ids are invalid.
_TRACEPARENT: Final = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16


def envelope_value(metadata: dict[str, str], key: str) -> str:
    """An envelope key from metadata, bare or ``loom.``-prefixed; "" when absent."""
    value = metadata.get(key)
    if value is None:
        value = metadata.get("loom." + key)
    return value or ""


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of a W3C ``traceparent``; None when absent or malformed."""
    if not value:
        return None
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    trace_id, span_id = match.groups()
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id


def payload_preview(head: bytes, size: int) -> str:
    """The start of a payload as text: UTF-8 when it is, else ``<N bytes: hex...>``.

    Args:
        head: the payload's first bytes (what was kept).
        size: the whole payload's length.
    """
    if not head:
        return ""
    try:
        text = head.decode()
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the preview limit is not binary data.
        if exc.start < len(head) - 3 or len(head) == size:
            return f"<{size} bytes: {head[:24].hex()}>"
        text = head[: exc.start].decode()
    return text + "…" if size > len(head) else text


def raw_record(seq: int, topic: str, event: Event, seen_ms: float, preview: int) -> RawRecord:
    """The raw record of one event (the metadata dict is shared, not copied)."""
    payload = event.payload
    return (
        seq,
        topic,
        event.id,
        event.type,
        event.source,
        event.timestamp_ms,
        seen_ms,
        event.priority,
        len(payload),
        event.tags,
        event.metadata,
        payload[:preview] if preview else b"",
    )


def to_json(raw: RawRecord) -> dict[str, Any]:
    """The JSON record of a raw one: what ``/api/events`` and the stream show per event."""
    md = raw[METADATA]
    trace = parse_traceparent(md.get("traceparent"))
    ts = raw[TS]
    seen = raw[SEEN]
    return {
        "seq": raw[SEQ],
        "topic": raw[TOPIC],
        "id": raw[ID],
        "type": raw[TYPE],
        "source": raw[SOURCE],
        "ts": ts,
        "seen_ms": round(seen, 3),
        "latency_ms": round(max(0.0, seen - ts), 3),
        "priority": raw[PRIORITY],
        "size": raw[SIZE],
        "tags": list(raw[TAGS]),
        "thread_id": envelope_value(md, "thread_id"),
        "correlation_id": envelope_value(md, "correlation_id"),
        "sender": envelope_value(md, "sender"),
        "reply_to": envelope_value(md, "reply_to"),
        "hop": envelope_value(md, "hop"),
        "trace_id": trace[0] if trace else "",
        "span_id": trace[1] if trace else "",
        "preview": payload_preview(raw[HEAD], raw[SIZE]),
    }
