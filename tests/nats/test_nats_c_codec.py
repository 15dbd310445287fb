"""The batch wire format: a ``loom.v1.EventBatch`` of columns with no topics column,
checked against protobuf's own generated classes; and what the decoder says about damaged
bodies. No server needed."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loom import Event
from loom.errors import InvalidEventError
from loom.testing import wire_events
from loom.v1 import bridge_pb2, event_pb2
from loom_nats._codec import (
    BATCH_HEADER,
    check_event,
    decode_batch,
    decode_message,
    encode_batch,
    encode_event,
)

events = wire_events(max_payload=300)

BIG = 1 << 30


def reference_events(data: bytes) -> list[Event]:
    """The events of a batch body read column by column with the generated class alone,
    each rebuilt as a generated ``loom.v1.Event`` and decoded by :meth:`Event.decode`."""
    batch = bridge_pb2.EventBatch.FromString(data)
    keys, values, tags = iter(batch.metadata_keys), iter(batch.metadata_values), iter(batch.tags)
    out = []
    for i, event_id in enumerate(batch.ids):
        message = event_pb2.Event(
            id=event_id,
            type=batch.types[i],
            timestamp_ms=batch.timestamps_ms[i],
            source=batch.sources[i],
            metadata={next(keys): next(values) for _ in range(batch.metadata_counts[i])},
            payload=batch.payloads[i],
            confidence=batch.confidences[i],
            tags=[next(tags) for _ in range(batch.tag_counts[i])],
            priority=batch.priorities[i],
        )
        out.append(Event.decode(message.SerializeToString()))
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(events, min_size=1, max_size=8))
def test_batches_round_trip_and_read_the_same_with_protobuf_alone(batch: list[Event]) -> None:
    data, count = encode_batch(batch, BIG)
    assert count == len(batch)
    if count == 1:  # a lone event travels as itself
        assert data == encode_event(batch[0])
        assert decode_message(data, None) == (batch, None)
        return
    assert reference_events(data) == batch
    decoded, error = decode_batch(data, str(count))
    assert error is None and decoded == batch
    assert decode_message(data, {BATCH_HEADER: str(count)}) == (batch, None)


def test_a_batch_is_cut_at_its_budget_and_an_event_over_it_goes_alone() -> None:
    batch = [Event("t", bytes(1000), id=f"e{i}") for i in range(10)]
    data, count = encode_batch(batch, 3500)
    assert count == 3 and decode_batch(data, "3") == (batch[:3], None)
    data, count = encode_batch(batch, 10)
    assert count == 1 and data == encode_event(batch[0])


def _body(n: int, **spoil: object) -> bytes:
    batch = bridge_pb2.EventBatch()
    data, _ = encode_batch([Event("t", str(i).encode(), id=f"e{i}") for i in range(n)], BIG)
    batch.ParseFromString(data)
    for column, value in spoil.items():
        getattr(batch, column).append(value)
    return batch.SerializeToString()


@pytest.mark.parametrize(
    ("data", "count", "intact", "message"),
    [
        (b"", "0", 0, "holds no event"),
        (b"\xff\xff\xff\xff\xff\xff", "1", 0, "do not parse"),
        (_body(3)[:-2], "3", 0, "do not parse"),
        (_body(2, ids="e2"), "3", 0, "column types holds 2 entries for 3 ids"),
        (_body(2, metadata_keys="k"), "2", 0, "metadata_counts add up to 0"),
        (_body(2, tags="x"), "2", 0, "tag_counts add up to 0"),
        (_body(2, topics="t"), "2", 0, "carries no topics column"),
        (_body(3), "2", 3, "'2' announces another count than the 3 events"),
        (_body(3), "three", 3, "announces another count"),
    ],
)
def test_damaged_batches_say_what(
    data: bytes, count: str | None, intact: int, message: str
) -> None:
    decoded, error = decode_batch(data, count)
    assert [e.id for e in decoded] == [f"e{i}" for i in range(intact)]
    assert error is not None
    assert error.message_type == "loom.v1.EventBatch"
    assert re.search(message, str(error)), str(error)


def test_a_batch_with_an_event_without_id_is_refused() -> None:
    batch = bridge_pb2.EventBatch()
    batch.ParseFromString(_body(2))
    batch.ids[1] = ""
    decoded, error = decode_batch(batch.SerializeToString(), "2")
    assert decoded == [] and error is not None and "no id" in str(error)


def test_a_plain_message_is_one_event_and_garbage_is_an_error() -> None:
    event = Event("t", b"x", id="one")
    assert decode_message(encode_event(event), None) == ([event], None)
    assert decode_message(encode_event(event), {"Other": "header"}) == ([event], None)
    events_, error = decode_message(b"garbage", None)
    assert events_ == [] and error is not None and "do not parse" in str(error)


def test_check_event_refuses_what_could_not_travel_and_passes_the_rest() -> None:
    check_event(Event("t", bytes(900), metadata={"k": "v"}, tags=("a",)), 1000)
    with pytest.raises(InvalidEventError, match="max_payload of 1000"):
        check_event(Event("t", bytes(1000)), 1000)
    with pytest.raises(InvalidEventError, match="max_payload"):  # multi-byte characters
        check_event(Event("t", metadata={"k": "é" * 600}), 1000)
    with pytest.raises(InvalidEventError, match="cannot be encoded"):
        check_event(Event("t", metadata={"k": 3}), 1000)  # type: ignore[dict-item]
    with pytest.raises(InvalidEventError, match="cannot be encoded"):
        check_event(Event("t", tags=(None,)), 1000)  # type: ignore[arg-type]


def test_an_unencodable_batch_says_so() -> None:
    bad = Event("t", id="bad", metadata={"k": ["a list"]})  # type: ignore[dict-item]
    with pytest.raises(InvalidEventError, match="cannot be encoded"):
        encode_batch([Event("t", id="good"), bad], BIG)


def test_multi_byte_text_still_keeps_a_batch_within_its_budget() -> None:
    batch = [Event("t", id=f"e{i}", metadata={"k": "é" * 500}) for i in range(10)]
    data, count = encode_batch(batch, 4000)
    assert len(data) <= 4000 and 1 < count < 10
    assert decode_batch(data, str(count)) == (batch[:count], None)
