"""Server-sent event decoding, Retry-After and backoff: the pieces under the client."""

from __future__ import annotations

import email.utils
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loom.models import Backoff, parse_retry_after
from loom.models._sse import SSEDecoder


def test_events_split_on_blank_lines_and_data_lines_join():
    d = SSEDecoder()
    events = d.feed(b"event: update\ndata: a\ndata: b\n\n: comment\nid: 7\ndata: c\n\n")
    assert events == [("update", "a\nb"), ("message", "c")]


def test_all_three_line_endings_and_a_crlf_split_across_chunks():
    d = SSEDecoder()
    out = d.feed(b"data: 1\r")
    out += d.feed(b"\n\r\ndata: 2\r\rdata: 3\n\n")
    assert out == [("message", "1"), ("message", "2"), ("message", "3")]


def test_utf8_split_across_chunks():
    raw = "data: café ☕\n\n".encode()
    d = SSEDecoder()
    out = []
    for i in range(len(raw)):
        out += d.feed(raw[i : i + 1])
    assert out == [("message", "café ☕")]


def test_close_flushes_an_unterminated_event():
    d = SSEDecoder()
    assert d.feed(b"data: last") == []
    assert d.close() == [("message", "last")]


def test_a_line_or_event_past_the_bound_is_refused():
    with pytest.raises(ValueError, match="line is longer than 16"):
        SSEDecoder(max_chars=16).feed(b"data: " + b"x" * 40)
    d = SSEDecoder(max_chars=16)
    with pytest.raises(ValueError, match="event is larger than 16"):
        d.feed(b"data: 12345678\ndata: 12345678\n")


@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
            min_size=1,
        ),
        max_size=8,
    ),
    st.integers(1, 7),
)
def test_any_chunking_gives_the_same_events(datas, size):
    raw = "".join(f"data: {x}\r\n\r\n" for x in datas).encode()
    d = SSEDecoder()
    out = []
    for i in range(0, len(raw), size):
        out += d.feed(raw[i : i + size])
    out += d.close()
    # A leading space after "data:" is the separator, so one is removed, as the spec says.
    assert out == [("message", x) for x in datas]


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "-4"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers, seconds):
    assert parse_retry_after(headers) == seconds


def test_retry_after_as_an_http_date():
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"Retry-After": date}, now=now) == pytest.approx(30.0)


def test_backoff_doubles_with_jitter_and_a_cap():
    b = Backoff(0.5, 4.0, random.Random(0))
    for attempt, ceiling in enumerate([0.5, 1.0, 2.0, 4.0, 4.0, 4.0]):
        for _ in range(20):
            assert ceiling / 2 <= b.delay(attempt) <= ceiling
    assert len({round(b.delay(3), 6) for _ in range(20)}) > 1  # jittered
    assert b.delay(10_000) <= 4.0
