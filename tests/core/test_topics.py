"""Topic grammar and NATS-wildcard matching."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loom import InvalidTopicError
from loom.topics import (
    TopicPattern,
    agent_replies_topic,
    is_pattern,
    matches,
    validate_pattern,
    validate_topic,
)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.b", "a.b.c", False),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.*", "a", False),
        ("*.b", "a.b", True),
        ("a.*.c", "a.x.c", True),
        ("a.>", "a.b", True),
        ("a.>", "a.b.c.d", True),
        ("a.>", "a", False),
        (">", "a", True),
        (">", "a.b", True),
        ("*", "a.b", False),
        ("*.>", "a.b", True),
        ("*.>", "a", False),
    ],
)
def test_nats_wildcards(pattern, topic, expected):
    assert matches(pattern, topic) is expected


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("", "empty"),
        ("a..b", "empty token at position 1"),
        (".a", "empty token at position 0"),
        ("a.", "empty token at position 1"),
        ("a.>.b", "'>' must be the last token"),
        ("a b", "whitespace"),
        ("a.\tb", "whitespace"),
        ("a.b*", "whole tokens"),
        ("a.>x", "whole tokens"),
    ],
)
def test_invalid_patterns_say_why(pattern, reason):
    with pytest.raises(InvalidTopicError, match=re.escape(reason)) as info:
        validate_pattern(pattern)
    assert info.value.topic == pattern


def test_concrete_topics_reject_wildcards():
    with pytest.raises(InvalidTopicError, match="only patterns take wildcards"):
        validate_topic("a.*")
    assert validate_topic("a.b") == "a.b"


def test_non_str_topic_is_a_clear_error():
    with pytest.raises(InvalidTopicError, match="not int"):
        validate_topic(5)  # type: ignore[arg-type]


def test_invalid_topic_error_is_a_value_error():
    with pytest.raises(ValueError, match="empty"):
        matches("", "a")


def test_overlong_topic_is_rejected():
    with pytest.raises(InvalidTopicError, match="longer than"):
        validate_topic("a" * 5000)


def test_pattern_objects():
    pattern = TopicPattern.compile("a.*")
    assert pattern is TopicPattern.compile("a.*")
    assert pattern.has_wildcards and not TopicPattern.compile("a.b").has_wildcards
    assert is_pattern("a.>") and not is_pattern("a.b")
    assert agent_replies_topic("x") == "agent.x.replies"


# -- property tests against a reference built from regular expressions --------------------

_token = st.sampled_from(["a", "b", "c", "sensor", "x1"])
_topic = st.lists(_token, min_size=1, max_size=5).map(".".join)


@st.composite
def _patterns(draw):
    tokens = draw(st.lists(st.one_of(_token, st.just("*")), min_size=1, max_size=5))
    if draw(st.booleans()):
        tokens.append(">")
    return ".".join(tokens)


def _reference(pattern, topic):
    parts = []
    for token in pattern.split("."):
        if token == "*":
            parts.append(r"[^.]+")
        elif token == ">":
            parts.append(r"[^.]+(?:\.[^.]+)*")
        else:
            parts.append(re.escape(token))
    return re.fullmatch(r"\.".join(parts), topic) is not None


@given(_patterns(), _topic)
def test_matcher_agrees_with_regex_reference(pattern, topic):
    assert matches(pattern, topic) is _reference(pattern, topic)


@given(_topic)
def test_a_topic_matches_itself_and_full_wildcards(topic):
    depth = topic.count(".") + 1
    assert matches(topic, topic)
    assert matches(">", topic)
    assert matches(".".join(["*"] * depth), topic)


@given(st.text(max_size=30))
def test_any_text_is_valid_or_rejected_cleanly(text):
    try:
        validate_pattern(text)
    except InvalidTopicError as exc:
        assert exc.reason
    else:
        assert all(token and not any(c.isspace() for c in token) for token in text.split("."))
