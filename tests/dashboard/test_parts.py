"""The dashboard's parts on their own: the latency histogram, event records, the thread
book's bounds, rates, and a viewer's bounded queue."""

from __future__ import annotations

import asyncio

import pytest

from loom import Event
from loom_dashboard._histogram import BUCKETS_MS, LatencyHistogram
from loom_dashboard._metrics import Rates
from loom_dashboard._records import parse_traceparent, payload_preview, raw_record, to_json
from loom_dashboard._threads import ThreadBook
from loom_dashboard._viewers import Viewer, sse


def test_histogram_buckets_percentiles_and_window():
    h = LatencyHistogram(window_s=10)
    for latency in [0.2] * 90 + [3.0] * 9 + [40.0]:
        h.record(latency, 1000.0)
    snap = h.snapshot(1000.5)
    counts = {b["le_ms"]: b["count"] for b in snap["buckets"]}
    assert counts[0.5] == 90 and counts[5.0] == 9 and counts[50.0] == 1
    assert len(snap["buckets"]) == len(BUCKETS_MS) + 1 and snap["buckets"][-1]["le_ms"] is None
    # Percentiles are the upper bounds of their buckets (capped by the largest value seen).
    assert (snap["p50_ms"], snap["p90_ms"], snap["p99_ms"], snap["max_ms"]) == (0.5, 0.5, 5.0, 40.0)
    h.record(9000.0, 1003.0)  # slower than the last bound: the last bucket, the max its bound
    assert h.snapshot(1003.0)["buckets"][-1]["count"] == 1
    # Ten seconds later the first second has left the window; totals stay.
    later = h.snapshot(1010.5)
    assert later["count"] == 1 and later["max_ms"] == 9000.0 and later["total_count"] == 101
    assert h.snapshot(1020.0)["p50_ms"] is None
    with pytest.raises(ValueError, match="window_s must be >= 1"):
        LatencyHistogram(window_s=0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"),
        ),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", None),
        ("garbage", None),
        ("", None),
        (None, None),
    ],
)
def test_traceparent(value, expected):
    assert parse_traceparent(value) == expected


def test_payload_preview():
    assert payload_preview(b"", 0) == ""
    assert payload_preview(b"hello", 5) == "hello"
    assert payload_preview(b"hello", 50) == "hello…"
    cut = "ü".encode() * 3
    assert payload_preview(cut[:5], 6) == "üü…"  # a character cut in two is not binary
    assert payload_preview(b"\x00\xff\xfe", 3).startswith("<3 bytes: 00fffe")


def test_records_read_the_envelope_bare_or_prefixed():
    event = Event(
        "collab.reply",
        b'{"a":1}',
        source="agent.b",
        metadata={"loom.thread_id": "t1", "loom.correlation_id": "c1", "loom.sender": "agent.b"},
    )
    record = to_json(raw_record(7, "thread.t1.reply", event, event.timestamp_ms + 2.5, 160))
    assert (record["thread_id"], record["correlation_id"], record["sender"]) == (
        "t1",
        "c1",
        "agent.b",
    )
    assert record["seq"] == 7 and record["latency_ms"] == 2.5 and record["preview"] == '{"a":1}'
    assert to_json(raw_record(8, "x", event, 0.0, 0))["preview"] == ""


def _raw(seq: int, thread: str, kind: str, sender: str, ts: int) -> tuple:
    event = Event(kind, timestamp_ms=ts, metadata={"thread_id": thread, "sender": sender})
    return raw_record(seq, "t", event, float(ts), 0)


def test_thread_book_bounds_and_status():
    book = ThreadBook(max_threads=3, per_thread=2)
    for i in range(5):
        book.add(f"t{i}", _raw(i, f"t{i}", "collab.request", "agent.a", 1000 + i))
    assert len(book) == 3 and book.forgotten == 2
    assert [t["id"] for t in book.summaries(10)] == ["t4", "t3", "t2"]
    assert book.detail("t0") is None
    book.add("t2", _raw(10, "t2", "collab.reply", "agent.b", 1010))
    book.add("t2", _raw(11, "t2", "collab.timeout", "agent.a", 1011))
    t2 = book.detail("t2")
    assert t2["count"] == 3 and len(t2["events"]) == 2  # the oldest event left the thread
    assert t2["status"] == "timeout" and t2["lanes"] == ["agent.b", "agent.a"]
    assert book.summaries(1)[0]["id"] == "t2"  # the most recently active first
    book.add("plain", _raw(12, "plain", "note", "x", 1012))
    assert "plain" not in {t["id"] for t in book.summaries(10, collab_only=True)}
    assert book.summaries(10)[0]["kind"] == "events"


def test_thread_events_are_in_time_order():
    book = ThreadBook()
    book.add("t", _raw(1, "t", "collab.reply", "agent.b", 2000))
    book.add("t", _raw(2, "t", "collab.request", "agent.a", 1000))
    detail = book.detail("t")
    assert [e["type"] for e in detail["events"]] == ["collab.request", "collab.reply"]
    assert detail["kind"] == "request/reply" and detail["status"] == "answered"


def test_rates_sample_at_most_once_per_interval():
    rates = Rates(min_interval_s=1.0)
    assert rates.update({"a": 10}, 100.0) == {}
    assert rates.update({"a": 20}, 100.5) == {}  # too soon: the last rates
    assert rates.update({"a": 30, "b": 4}, 102.0) == {"a": 10.0, "b": 2.0}
    assert rates.window_s == 2.0
    assert rates.update({"a": 5, "b": 4}, 103.0) == {}  # reset, or still: no rate
    assert rates.get("a") == 0.0


async def test_a_viewer_queue_is_bounded_and_a_full_one_is_dropped():
    viewer = Viewer(1, None, "", limit=3, after=0)
    assert all(viewer.offer(sse("x", {"n": n})) for n in range(3))
    assert viewer.qsize() == 3
    assert viewer.offer(b"one too many") is False
    assert viewer.reason == "slow" and viewer.qsize() == 0
    assert await asyncio.wait_for(viewer.next(), 1) is None
    await asyncio.wait_for(viewer.wait_closed(), 1)


async def test_a_closed_viewer_hands_out_what_was_queued_then_none():
    viewer = Viewer(2, None, "", limit=3, after=0)
    viewer.offer(b"a")
    viewer.close("shutdown")
    viewer.close("slow")  # the first reason sticks
    assert viewer.reason == "shutdown"
    assert await viewer.next() == b"a"
    assert await viewer.next() is None
    assert viewer.offer(b"late") is False


def test_sse_frames_one_line_of_json():
    assert sse("metrics", {"a": "x\ny"}) == b'event: metrics\ndata: {"a":"x\\ny"}\n\n'
