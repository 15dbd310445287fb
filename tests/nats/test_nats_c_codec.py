"""The batch wire format: a protobuf delimited stream of ``loom.v1.Event`` (varint length,
then the event's bytes), checked against protobuf's own generated classes and varint
codec; and what the decoder says about damaged bodies. No server needed."""

from __future__ import annotations

import re

import pytest
from google.protobuf.internal.decoder import _DecodeVarint32
from google.protobuf.internal.encoder import _VarintBytes
from hypothesis import given, settings
from hypothesis import strategies as st

from loom import Event
from loom.v1 import event_pb2
from loom_nats._codec import (
    BATCH_HEADER,
    decode_batch,
    decode_message,
    encode_batch,
    encode_event,
    varint,
)

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)

events = st.builds(
    Event,
    text,
    st.binary(max_size=300),  # lengths on both sides of the one-byte varint
    id=text.filter(bool),
    timestamp_ms=st.integers(0, 2**62),
    source=text,
    metadata=st.dictionaries(text, text, max_size=4),
    confidence=st.floats(0, 1, width=32),
    tags=st.lists(text, max_size=3).map(tuple),
    priority=st.integers(0, 100),
)


def reference_stream(batch: list[Event]) -> bytes:
    """The delimited stream as protobuf writes it (writeDelimitedTo): the generated
    message's size as a varint, then its serialisation."""
    out = b""
    for event in batch:
        message = event_pb2.Event.FromString(event.encode())
        out += _VarintBytes(message.ByteSize()) + message.SerializeToString()
    return out


def reference_frames(data: bytes) -> list[bytes]:
    """The frames of a delimited stream, split with protobuf's own varint decoder."""
    frames: list[bytes] = []
    pos = 0
    while pos < len(data):
        size, pos = _DecodeVarint32(data, pos)
        frames.append(data[pos : pos + size])
        pos += size
    return frames


@settings(max_examples=150, deadline=None)
@given(st.lists(events, min_size=1, max_size=8))
def test_batches_round_trip_and_match_protobufs_delimited_stream(batch: list[Event]) -> None:
    encoded = [encode_event(e) for e in batch]
    data = encode_batch(encoded)
    # Ours, split by protobuf: exactly the events' bytes, each a valid generated message.
    assert reference_frames(data) == encoded
    assert [Event.decode(event_pb2.Event.FromString(f).SerializeToString()) for f in encoded] == (
        batch
    )
    decoded, error = decode_batch(data, str(len(batch)))
    assert error is None and decoded == batch
    assert decode_message(data, {BATCH_HEADER: str(len(batch))}) == (batch, None)
    # Protobuf's, read by ours (map entries may come in another order: same events).
    assert decode_batch(reference_stream(batch)) == (batch, None)


@given(st.integers(0, 2**32 - 1))
def test_varint_matches_protobuf(n: int) -> None:
    assert varint(n) == _VarintBytes(n)


def test_a_big_event_takes_a_multi_byte_length() -> None:
    batch = [Event("t", bytes(70_000), id="a"), Event("t", b"x", id="b")]
    data = encode_batch([encode_event(e) for e in batch])
    assert data[:3] == _VarintBytes(len(encode_event(batch[0])))
    assert decode_batch(data) == (batch, None)


def _stream(n: int) -> bytes:
    return encode_batch([encode_event(Event("t", str(i).encode(), id=f"e{i}")) for i in range(n)])


@pytest.mark.parametrize(
    ("data", "count", "intact", "message"),
    [
        (b"", "0", 0, "holds no event"),
        (b"\xff\xff\xff\xff\xff\xff", "1", 0, "event 1: bad length varint"),
        (b"\x80", None, 0, "event 1: bad length varint"),
        (_stream(3)[:-2], "3", 2, "event 3 is truncated"),
        (_stream(2) + b"\x05ab", "3", 2, "event 3 is truncated: 5 bytes announced, 2 left"),
        (_stream(2) + b"\x03abc", "3", 2, "event 3: cannot decode loom.v1.Event"),
        (_stream(2) + b"\x00", "3", 2, "event 3: .*no event id"),
        (_stream(3), "2", 3, "'2' announces another count than the 3 events"),
        (_stream(3), "three", 3, "announces another count"),
    ],
)
def test_damaged_batches_say_what_and_keep_the_intact_part(
    data: bytes, count: str | None, intact: int, message: str
) -> None:
    decoded, error = decode_batch(data, count)
    assert [e.id for e in decoded] == [f"e{i}" for i in range(intact)]
    assert error is not None
    assert error.message_type == "loom.v1.Event batch"
    assert re.search(message, str(error)), str(error)


def test_a_plain_message_is_one_event_and_garbage_is_an_error() -> None:
    event = Event("t", b"x", id="one")
    assert decode_message(encode_event(event), None) == ([event], None)
    assert decode_message(encode_event(event), {"Other": "header"}) == ([event], None)
    events_, error = decode_message(b"garbage", None)
    assert events_ == [] and error is not None and "do not parse" in str(error)
