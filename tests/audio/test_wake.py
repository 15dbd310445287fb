"""The wake phrase: upstream's fuzzy rules (AC13.1), on transcripts, through the bus."""

from __future__ import annotations

import pytest

from loom import Event
from loom_audio import WakeConfig, WakeMatcher, WakeStage
from loom_audio._names import TRANSCRIPT_FINAL, USER_QUERY, WAKE_DETECTED


@pytest.mark.parametrize(
    ("text", "phrase", "query"),
    [
        ("hey loom what time is it", "hey loom", "what time is it"),
        ("Hey, Loom, what time is it?", "hey loom", "what time is it?"),
        ("Hey, Loon, what time is it?", "hey loom", "what time is it?"),  # one edit per word
        ("Hey, Lou, what can you do?", "hey loom", "what can you do?"),  # two edits in all
        ("Hey loam. Echo the quick brown fox.", "hey loom", "Echo the quick brown fox."),
        ("Loom, what is the date today?", "loom", "what is the date today?"),
        ("Okay, hey Loom, turn on the lights.", "hey loom", "turn on the lights."),  # anywhere
    ],
)
def test_wake_phrases_are_heard_despite_recognition_errors(text, phrase, query) -> None:
    found = WakeMatcher().match(text)
    assert found is not None and found.phrase == phrase and found.query == query


@pytest.mark.parametrize(
    "text",
    [
        "Open the window in the living room.",  # "room" is one edit from "loom"
        "Zoom in on the picture.",
        "Hey you, come over here.",
        "Hey, Lynn, what can you do?",  # three edits: too far
        "Please turn on the lights in the kitchen.",
        "",
    ],
)
def test_ordinary_speech_does_not_wake(text) -> None:
    assert WakeMatcher().match(text) is None


def test_upstream_single_word_rule_is_available() -> None:
    # Upstream lets a one-word phrase match anywhere, one edit away; ours keeps that behind
    # a switch.
    loose = WakeMatcher(WakeConfig(strict_single_word=False))
    found = loose.match("open the window in the living room")
    assert found is not None and found.phrase == "loom" and found.query == ""
    assert WakeMatcher().match("Lume, what time is it?") is None


def test_match_at_start_only() -> None:
    strict = WakeMatcher(WakeConfig(match_anywhere=False))
    assert strict.match("okay hey loom turn on the lights") is None
    assert strict.match("hey loom turn on the lights") is not None


def test_jaro_winkler_threshold_is_configurable() -> None:
    text = "hey loon what time is it"  # loon/loom: one edit; average JW of the words 0.94
    tight = WakeConfig(phrases=("hey loom",), max_distance=0, jw_threshold=0.95)
    assert WakeMatcher(tight).match(text) is None
    loose = WakeConfig(phrases=("hey loom",), max_distance=0, jw_threshold=0.9)
    found = WakeMatcher(loose).match(text)
    assert found is not None and found.distance == 1 and 0.9 < found.similarity < 0.95


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"phrases": ("!!",)}, "has no words"),
        ({"max_distance": -1}, "max_distance"),
        ({"jw_threshold": 0.0}, "jw_threshold"),
    ],
)
def test_bad_config_is_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        WakeConfig(**kwargs)


def _final(text: str) -> Event:
    return Event(TRANSCRIPT_FINAL, text.encode(), metadata={"text": text, "utterance_id": "u1"})


async def test_stage_ac13_1_wake_and_query(bus, collect) -> None:
    seen = await collect(types=(WAKE_DETECTED, USER_QUERY))
    stage = WakeStage()
    await stage.start(bus)
    await bus.publish("transcript", _final("hey loom what time is it"))
    queries = await seen.wait_type(USER_QUERY)
    wake = seen.of(WAKE_DETECTED)[0]
    assert wake.metadata["phrase"] == "hey loom" and wake.priority == 65
    assert queries[0].payload == b"what time is it" and queries[0].priority == 60
    assert queries[0].metadata["session_id"] == wake.metadata["session_id"]
    await stage.stop()


async def test_stage_bare_wake_arms_for_the_next_transcript(bus, collect) -> None:
    seen = await collect(types=(WAKE_DETECTED, USER_QUERY))
    stage = WakeStage()
    await stage.start(bus)
    await bus.publish("transcript", _final("Hey Loom."))
    await seen.wait_type(WAKE_DETECTED)
    assert stage.status()["armed"]
    await bus.publish("transcript", _final("What time is it?"))
    queries = await seen.wait_type(USER_QUERY)
    assert queries[0].metadata["text"] == "What time is it?"
    assert queries[0].metadata["session_id"] == seen.of(WAKE_DETECTED)[0].metadata["session_id"]
    await bus.publish("transcript", _final("and the weather?"))  # no longer armed: ignored
    await bus.publish("transcript", _final("hey loom echo done"))
    await seen.wait_type(USER_QUERY, 2)
    assert [q.metadata["text"] for q in seen.of(USER_QUERY)] == ["What time is it?", "echo done"]
    assert stage.ignored == 1
    await stage.stop()


async def test_stage_armed_wake_expires(bus, collect) -> None:
    seen = await collect(types=(USER_QUERY,))
    stage = WakeStage(WakeConfig(armed_s=0.0))
    await stage.start(bus)
    await bus.publish("transcript", _final("hey loom"))
    await bus.publish("transcript", _final("what time is it"))
    await bus.publish("transcript", _final("loom echo marker"))
    await seen.wait_type(USER_QUERY)
    assert [q.metadata["text"] for q in seen.of(USER_QUERY)] == ["echo marker"]
    await stage.stop()


async def test_stage_without_phrases_passes_every_transcript(bus, collect) -> None:
    seen = await collect(types=(WAKE_DETECTED, USER_QUERY))
    stage = WakeStage(WakeConfig(phrases=()))
    await stage.start(bus)
    await bus.publish("transcript", _final("what time is it"))
    await bus.publish("transcript", _final("   "))
    await seen.wait_type(USER_QUERY)
    assert [q.metadata["text"] for q in seen.of(USER_QUERY)] == ["what time is it"]
    assert seen.of(WAKE_DETECTED) == []
    await stage.stop()
