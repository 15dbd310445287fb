"""loom.wire: events in and out of the columns of ``loom.v1.EventBatch``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loom import Event
from loom.errors import ProtocolError
from loom.testing import wire_events
from loom.v1 import bridge_pb2
from loom.wire import EVENT_OVERHEAD, event_chars, fill_events, read_events

events = wire_events()


@settings(max_examples=100, deadline=None)
@given(st.lists(events, min_size=1, max_size=6))
def test_events_round_trip_through_the_wire(batch: list[Event]) -> None:
    message = bridge_pb2.EventBatch()
    assert fill_events(message, batch, 1 << 30) == len(batch)
    assert not message.topics  # left to the caller
    again = bridge_pb2.EventBatch.FromString(message.SerializeToString())
    assert read_events(again) == batch


def test_event_chars_counts_strings_bytes_and_the_overhead() -> None:
    event = Event("ty", b"12345", id="i", source="s", metadata={"k": "vv"}, tags=("t",))
    assert event_chars(event) == EVENT_OVERHEAD + 1 + 2 + 1 + 5 + 3 + 1


def test_the_longest_prefix_within_the_budget_and_at_least_one() -> None:
    batch = [Event("e", bytes(100), id=f"e{i}") for i in range(5)]
    each = event_chars(batch[0])
    message = bridge_pb2.EventBatch()
    assert fill_events(message, batch, 3 * each) == 3
    assert [e.id for e in read_events(message)] == ["e0", "e1", "e2"]
    assert fill_events(bridge_pb2.EventBatch(), batch, 1) == 1


@pytest.mark.parametrize(
    ("spoil", "words"),
    [
        (lambda b: b.types.append("x"), "column types holds 3 entries for 2 ids"),
        (lambda b: b.payloads.pop(), "column payloads holds 1 entries for 2 ids"),
        (lambda b: b.metadata_keys.append("k"), "metadata_counts add up to 0"),
        (lambda b: b.tag_counts.__setitem__(0, 2), "tag_counts add up to 2, with 0 tags"),
        (lambda b: b.priorities.__setitem__(1, 101), "priority of 101"),
    ],
)
def test_columns_that_do_not_add_up_are_refused_whole(spoil, words) -> None:
    message = bridge_pb2.EventBatch()
    fill_events(message, [Event("a"), Event("b")], 1 << 20)
    spoil(message)
    with pytest.raises(ProtocolError, match=words):
        read_events(message)


def test_a_value_protobuf_cannot_carry_raises() -> None:
    with pytest.raises(TypeError):
        fill_events(bridge_pb2.EventBatch(), [Event("a", metadata={"k": 3})], 1 << 20)  # type: ignore[dict-item]
