"""Event: construction rules, the protobuf boundary, and envelope helpers on the event."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loom import Event, InvalidEventError, ProtocolError, new_event_id
from loom.v1 import event_pb2


def test_defaults_fill_id_time_and_priority():
    event = Event("greeting", b"hi")
    assert event.id and event.timestamp_ms > 1_600_000_000_000
    assert event.priority == 50 and event.confidence == 1.0
    assert event.metadata == {} and event.tags == ()


def test_ids_are_unique():
    assert len({new_event_id() for _ in range(10_000)}) == 10_000


@pytest.mark.parametrize("payload", ["text", 3, None, [1]])
def test_non_bytes_payload_is_rejected(payload):
    with pytest.raises(InvalidEventError, match="payload must be bytes"):
        Event("t", payload)


def test_str_payload_error_says_how_to_fix():
    with pytest.raises(TypeError, match=r"encode\(\)"):
        Event("t", "text")  # type: ignore[arg-type]


@pytest.mark.parametrize("priority", [-1, 101, 50.0, "50", True])
def test_priority_outside_0_100_is_rejected(priority):
    with pytest.raises(ValueError, match="priority"):
        Event("t", priority=priority)


def test_replace_copies_metadata():
    original = Event("t", metadata={"a": "1"})
    changed = original.replace(type="u", metadata={**original.metadata, "b": "2"})
    assert original.metadata == {"a": "1"} and original.type == "t"
    assert changed.metadata == {"a": "1", "b": "2"} and changed.id == original.id


def test_with_helpers_chain_overwrite_and_leave_original():
    original = Event("t")
    event = original.with_thread("t1").with_correlation("c1").with_reply_to("r").with_sender("s")
    event = event.with_thread("t2")
    assert (event.thread_id, event.correlation_id, event.reply_to, event.sender) == (
        "t2",
        "c1",
        "r",
        "s",
    )
    assert original.metadata == {}


def test_readers_return_none_when_absent():
    event = Event("t")
    assert event.thread_id is None and event.correlation_id is None
    assert event.reply_to is None and event.sender is None


def test_readers_accept_prefixed_keys_bare_first():
    event = Event("t", metadata={"loom.thread_id": "p", "loom.sender": "ps", "sender": "bare"})
    assert event.thread_id == "p"
    assert event.sender == "bare"


def test_proto_round_trip_keeps_every_field():
    event = Event(
        "sensor.reading",
        b"\x00\x01",
        id="e1",
        timestamp_ms=1_700_000_000_000,
        source="s",
        metadata={"k": "v"},
        confidence=0.5,
        tags=("a", "b"),
        priority=70,
    )
    message = event.to_proto()
    assert isinstance(message, event_pb2.Event)
    assert Event.from_proto(message) == event
    assert Event.decode(event.encode()) == event


def test_encoding_uses_wire_field_numbers():
    encoded = Event("t", id="e1", timestamp_ms=1, priority=70, confidence=0.5).encode()
    assert encoded.startswith(b"\x0a\x02e1\x12\x01t\x18\x01")  # 1 id, 2 type, 3 timestamp_ms
    assert b"\x3d" + struct.pack("<f", 0.5) in encoded  # 7 confidence, fixed32
    assert encoded.endswith(b"\x48\x46")  # 9 priority = 70, varint


def test_decode_garbage_names_the_message():
    with pytest.raises(ProtocolError, match=r"cannot decode loom\.v1\.Event"):
        Event.decode(b"\xff\xff\xff")


def test_decode_priority_out_of_range_names_the_field():
    data = event_pb2.Event(type="t", priority=500).SerializeToString()
    with pytest.raises(ProtocolError, match="priority=500"):
        Event.decode(data)


def test_non_str_metadata_fails_at_encoding_with_event_id():
    event = Event("t", id="bad", metadata={"k": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidEventError, match="'bad'"):
        event.encode()


_text = st.text(max_size=20)
_float32 = st.floats(0, 1, width=32)


@given(
    type=_text,
    payload=st.binary(max_size=64),
    id=_text,
    source=_text,
    timestamp_ms=st.integers(0, 2**62),
    metadata=st.dictionaries(_text, _text, max_size=5),
    confidence=_float32,
    tags=st.lists(_text, max_size=4),
    priority=st.integers(0, 100),
)
def test_any_event_round_trips_through_protobuf(
    type, payload, id, source, timestamp_ms, metadata, confidence, tags, priority
):
    event = Event(
        type,
        payload,
        id=id,
        source=source,
        timestamp_ms=timestamp_ms,
        metadata=metadata,
        confidence=confidence,
        tags=tags,
        priority=priority,
    )
    assert Event.decode(event.encode()) == event


@given(st.binary(max_size=64))
def test_decoding_any_bytes_gives_an_event_or_protocol_error(data):
    try:
        event = Event.decode(data)
    except ProtocolError:
        return
    assert isinstance(event, Event) and 0 <= event.priority <= 100
