"""Envelope behaviour of upstream Loom (shared/UPSTREAM.md §1, AC1.1-1.7)."""

from __future__ import annotations

from loom import DEFAULT_TTL, ActionCall, Envelope, Event


def test_new_envelope_defaults():  # AC1.1
    envelope = Envelope.new("t1", "agent.a")
    assert envelope.correlation_id == "t1"
    assert (envelope.ttl, envelope.hop) == (16, 0) == (DEFAULT_TTL, 0)
    assert envelope.reply_to == "thread.t1.reply"
    assert envelope.ts > 0


def test_reading_fills_defaults():  # AC1.2
    envelope = Envelope.from_event(Event("t", id="ev-9"))
    assert envelope.thread_id == "ev-9" and envelope.correlation_id == "ev-9"
    assert envelope.sender == "" and envelope.reply_to == "thread.ev-9.reply"
    assert (envelope.ttl, envelope.hop) == (16, 0) and envelope.ts > 0


def test_bad_ttl_and_hop_fall_back():  # AC1.2
    envelope = Envelope.from_metadata({"thread_id": "t", "ttl": "many", "hop": "x"}, "id")
    assert (envelope.ttl, envelope.hop) == (16, 0)


def test_attach_writes_all_seven_keys_overwriting():  # AC1.3
    envelope = Envelope.new("t1", "agent.a")
    metadata = {"thread_id": "old", "other": "kept"}
    envelope.attach(metadata)
    assert set(metadata) == {
        "thread_id",
        "correlation_id",
        "sender",
        "reply_to",
        "ttl",
        "hop",
        "ts",
        "other",
    }
    assert metadata["thread_id"] == "t1"
    assert Envelope.from_metadata(metadata, "x") == envelope


def test_apply_to_event_round_trips():  # AC1.3
    envelope = Envelope.new("t1", "agent.a")
    assert Envelope.from_event(envelope.apply_to_event(Event("t"))) == envelope


def test_apply_to_call_sets_correlation():  # AC1.3
    envelope = Envelope.new("t1", "agent.a")
    call = ActionCall("echo")
    envelope.apply_to_call(call)
    assert call.correlation_id == "t1" and call.headers["thread_id"] == "t1"


def test_next_hop_counts_down():  # AC1.4
    envelope = Envelope.new("t")
    envelope.ttl = 3
    assert [envelope.next_hop() for _ in range(5)] == [True, True, False, False, False]
    assert envelope.ttl == 0 and envelope.hop == 5


def test_reply_topics():  # AC1.5
    envelope = Envelope.new("t1", "agent.planner")
    assert envelope.broadcast_topic == "thread.t1.broadcast"
    assert envelope.reply_topic == "thread.t1.reply"
    assert envelope.agent_reply_topic() == "agent.planner.replies"
    assert Envelope.new("t1", "planner").agent_reply_topic() == ""
    assert Envelope.with_agent_reply("t1", "s", "me").reply_to == "agent.me.replies"


def test_event_helpers_agree_with_envelope():  # AC1.6
    event = Event("t").with_thread("t1").with_correlation("c").with_sender("agent.x")
    envelope = Envelope.from_event(event)
    assert (envelope.thread_id, envelope.correlation_id, envelope.sender) == (
        event.thread_id,
        event.correlation_id,
        event.sender,
    )


def test_prefixed_keys_are_read_and_bare_keys_written():  # AC1.7
    metadata = {
        "loom.thread_id": "t9",
        "loom.correlation_id": "c9",
        "loom.sender": "agent.py",
        "loom.reply_to": "agent.py.replies",
        "loom.ttl": "4",
        "loom.hop": "2",
    }
    envelope = Envelope.from_metadata(metadata, "id")
    assert (envelope.thread_id, envelope.correlation_id, envelope.sender) == (
        "t9",
        "c9",
        "agent.py",
    )
    assert (envelope.reply_to, envelope.ttl, envelope.hop) == ("agent.py.replies", 4, 2)
    written = envelope.to_metadata()
    assert not any(key.startswith("loom.") for key in written)


def test_python_sdk_ttl_ms_is_not_read_as_hops():  # AC1.7: loom.ttl_ms is a time budget
    envelope = Envelope.from_metadata({"loom.ttl_ms": "5000"}, "id")
    assert envelope.ttl == DEFAULT_TTL
