"""Core's event sources `timer` and `file`, on a real MemoryBus."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from loom import QoS
from loom.app import EventSourceLike, FileSource, TimerSource
from loom.bus import MemoryBus
from loom.errors import InvalidTopicError


async def _drain(subscription, n):
    return [await asyncio.wait_for(subscription.get(), 5) for _ in range(n)]


async def test_the_timer_ticks_count_times_then_is_exhausted():
    async with MemoryBus() as bus:
        ticks = await bus.subscribe("clock", qos=QoS.BATCHED)
        timer = TimerSource(
            "clock",
            topic="clock",
            every_s=0.01,
            count=3,
            delay_s=0,
            event_type="clock.tick",
            payload={"room": "lab"},
            metadata={"site": "north"},
            priority=70,
        )
        assert isinstance(timer, EventSourceLike)
        await timer.start(bus)
        await asyncio.wait_for(timer.wait(), 5)
        events = [event for _, event in await _drain(ticks, 3)]
    assert [json.loads(e.payload) for e in events] == [
        {"tick": n, "count": 3, "room": "lab"} for n in (1, 2, 3)
    ]
    assert [e.metadata for e in events] == [{"site": "north", "tick": str(n)} for n in (1, 2, 3)]
    assert {(e.type, e.source, e.priority) for e in events} == {("clock.tick", "clock", 70)}
    assert timer.status() == {
        "name": "clock",
        "published": 3,
        "outcome": "exhausted",
        "topic": "clock",
        "count": 3,
    }


async def test_an_endless_timer_stops_when_asked():
    async with MemoryBus() as bus:
        timer = TimerSource(topic="clock", every_s=0.01)
        await timer.start(bus)
        await timer.start(bus)  # idempotent
        await asyncio.sleep(0.05)
        assert not timer.finished.is_set()
        await timer.stop()
        await timer.stop()
        assert timer.finished.is_set() and timer.outcome == "stopped"
        published = timer.published
        await asyncio.sleep(0.03)
        assert timer.published == published


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"every_s": 0}, "every_s must be a finite number > 0"),
        ({"every_s": float("nan")}, "every_s must be a finite number > 0"),
        ({"every_s": 1, "count": 0}, "count must be a whole number >= 1"),
        ({"every_s": 1, "count": 2.5}, "count must be a whole number >= 1"),
        ({"every_s": 1, "delay_s": -1}, "delay_s must be a finite number >= 0"),
        ({"every_s": 1, "priority": 101}, "priority must be within 0..100"),
        ({"every_s": 1, "payload": {"when": object()}}, "not JSON serializable"),
        ({"every_s": 1, "metadata": "x"}, "metadata must be a table"),
    ],
)
def test_timer_options_are_checked(options, error):
    with pytest.raises((ValueError, TypeError), match=error):
        TimerSource(topic="clock", **options)


def test_a_timer_topic_must_be_concrete():
    with pytest.raises(InvalidTopicError):
        TimerSource(topic="clock.*", every_s=1)


async def test_a_text_file_becomes_one_event_per_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("first\n\nsecond line\r\nthird")
    async with MemoryBus() as bus:
        lines = await bus.subscribe("notes", qos=QoS.BATCHED)
        source = FileSource("notes", topic="notes", path=path, metadata={"kind": "note"})
        await source.start(bus)
        await asyncio.wait_for(source.wait(), 5)
        events = [event for _, event in await _drain(lines, 3)]
    assert [e.payload for e in events] == [b"first", b"second line", b"third"]
    assert [e.metadata["line"] for e in events] == ["1", "3", "4"]
    assert {e.metadata["file"] for e in events} == {"notes.txt"}
    assert {(e.type, e.source, e.metadata["kind"]) for e in events} == {
        ("file.line", "notes", "note")
    }
    assert source.outcome == "exhausted" and source.skipped == 0


async def test_jsonl_fills_topics_and_types_and_skips_bad_lines(tmp_path, caplog):
    path = tmp_path / "readings.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"zone": "north", "kind": "temp", "value": 21, "type": "reading"}),
                "{not json",
                json.dumps(["a", "list"]),
                json.dumps({"zone": "south", "value": 3}),
                json.dumps({"zone": "bad zone", "kind": "temp"}),
                json.dumps({"zone": "east", "kind": "humidity", "value": 60}),
            ]
        )
    )
    async with MemoryBus() as bus:
        readings = await bus.subscribe("sensors.>", qos=QoS.BATCHED)
        source = FileSource("sensors", topic="sensors.{zone}.{kind}", path=path, type_field="type")
        with caplog.at_level(logging.WARNING, logger="loom.app.sources"):
            await source.start(bus)
            await asyncio.wait_for(source.wait(), 5)
        received = await _drain(readings, 2)
    assert [topic for topic, _ in received] == ["sensors.north.temp", "sensors.east.humidity"]
    first, second = (event for _, event in received)
    assert (first.type, second.type) == ("reading", "file.line")
    assert json.loads(first.payload) == {
        "zone": "north",
        "kind": "temp",
        "value": 21,
        "type": "reading",
    }
    assert second.metadata["line"] == "6"
    assert source.skipped == 4
    assert source.published == 2
    assert f"{path}:2: line skipped: not JSON" in caplog.text
    assert f"{path}:3: line skipped: expected a JSON object, got list" in caplog.text
    assert f"{path}:4: line skipped: no field 'kind'" in caplog.text
    assert f"{path}:5: line skipped: invalid topic" in caplog.text


async def test_a_missing_file_fails_start_with_the_path(tmp_path):
    source = FileSource("feed", topic="x", path=tmp_path / "gone.jsonl")
    async with MemoryBus() as bus:
        with pytest.raises(OSError, match=r"source 'feed' cannot read .*gone\.jsonl"):
            await source.start(bus)


async def test_a_paced_file_source_can_be_stopped_midway(tmp_path):
    path = tmp_path / "many.txt"
    path.write_text("".join(f"line {n}\n" for n in range(100)))
    async with MemoryBus() as bus:
        source = FileSource(topic="lines", path=path, interval_s=0.01)
        await source.start(bus)
        await asyncio.sleep(0.05)
        await source.stop()
    assert 0 < source.published < 100
    assert source.outcome == "stopped"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"topic": "a.{zone}", "format": "lines"}, "need format 'jsonl'"),
        ({"topic": "a.{0}", "format": "jsonl"}, "plain field names"),
        ({"topic": "a", "format": "csv"}, "format must be 'lines' or 'jsonl'"),
        ({"topic": "a", "type_field": "t", "format": "lines"}, "type_field needs format"),
        ({"topic": "a", "interval_s": -1}, "interval_s must be"),
        ({"topic": "a.*"}, "wildcard"),
    ],
)
def test_file_options_are_checked(tmp_path, options, error):
    with pytest.raises(ValueError, match=error):
        FileSource(path=tmp_path / "x.txt", **options)
