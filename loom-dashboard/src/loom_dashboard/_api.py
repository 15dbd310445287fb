"""The JSON API's query parsing: every malformed request is an :class:`ApiError` naming the
parameter and what is expected, answered 400 (or 404 for an unknown thread)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from loom.errors import InvalidTopicError
from loom.topics import TopicPattern, validate_pattern

__all__ = [
    "TOKEN_PARAM",
    "ApiError",
    "EventsQuery",
    "MetricsQuery",
    "StreamQuery",
    "ThreadsQuery",
    "parse_query",
    "thread_key",
]

#: The query parameter that may carry the bearer token (EventSource cannot send headers).
TOKEN_PARAM: Final = "access_token"
_MAX_TEXT: Final = 256


@dataclass
class ApiError(Exception):
    """A request the API refuses: its HTTP status and a message for the caller."""

    status: int
    message: str

    def __str__(self) -> str:
        return self.message


def parse_query(raw: str | bytes, path: str, known: Iterable[str]) -> dict[str, str]:
    """The query string as a dict, refusing unknown and repeated parameters.

    Raises:
        ApiError: 400, naming the parameter.
    """
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    allowed = set(known) | {TOKEN_PARAM}
    params: dict[str, str] = {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, max_num_fields=32)
    except ValueError as exc:
        raise ApiError(400, f"malformed query string: {exc}") from None
    for key, value in pairs:
        if key not in allowed:
            names = ", ".join(sorted(set(known))) or "none"
            raise ApiError(400, f"unknown query parameter {key!r} for {path} (known: {names})")
        if key in params:
            raise ApiError(400, f"query parameter {key!r} is given twice")
        params[key] = value
    params.pop(TOKEN_PARAM, None)
    return params


def _int(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            400, f"{name} must be an integer from {low} to {high}, got {raw!r}"
        ) from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be an integer from {low} to {high}, got {value}")
    return value


def _pattern(params: dict[str, str], name: str = "topic") -> tuple[TopicPattern | None, str]:
    raw = params.get(name, "")
    if raw == "":
        return None, ""
    if len(raw) > _MAX_TEXT:
        raise ApiError(400, f"{name} is longer than {_MAX_TEXT} characters")
    try:
        validate_pattern(raw)
    except InvalidTopicError as exc:
        raise ApiError(
            400, f"{name}: {exc} (a topic pattern: dot-separated tokens, '*' one, '>' the rest)"
        ) from None
    return TopicPattern.compile(raw), raw


@dataclass(frozen=True)
class EventsQuery:
    """``GET /api/events``: ``topic`` (pattern), ``type``, ``after`` (seq), ``limit``."""

    pattern: TopicPattern | None
    topic: str
    event_type: str | None
    after: int
    limit: int

    @classmethod
    def parse(cls, raw: str | bytes, *, max_limit: int) -> EventsQuery:
        """Raises ApiError (400)."""
        params = parse_query(raw, "/api/events", ("topic", "type", "after", "limit"))
        pattern, topic = _pattern(params)
        event_type = params.get("type")
        if event_type is not None and not 0 < len(event_type) <= _MAX_TEXT:
            raise ApiError(400, f"type must be 1 to {_MAX_TEXT} characters")
        return cls(
            pattern=pattern,
            topic=topic,
            event_type=event_type,
            after=_int(params, "after", 0, 0, 2**63 - 1),
            limit=_int(params, "limit", min(100, max_limit), 1, max_limit),
        )


@dataclass(frozen=True)
class MetricsQuery:
    """``GET /api/metrics``: ``limit`` (topics and queues listed)."""

    limit: int

    @classmethod
    def parse(cls, raw: str | bytes) -> MetricsQuery:
        """Raises ApiError (400)."""
        params = parse_query(raw, "/api/metrics", ("limit",))
        return cls(limit=_int(params, "limit", 50, 1, 1000))


@dataclass(frozen=True)
class ThreadsQuery:
    """``GET /api/threads``: ``limit``, ``kind`` (``collab``, the default, or ``all``)."""

    limit: int
    collab_only: bool

    @classmethod
    def parse(cls, raw: str | bytes) -> ThreadsQuery:
        """Raises ApiError (400)."""
        params = parse_query(raw, "/api/threads", ("limit", "kind"))
        kind = params.get("kind", "collab")
        if kind not in ("collab", "all"):
            raise ApiError(400, f"kind must be 'collab' or 'all', got {kind!r}")
        return cls(limit=_int(params, "limit", 50, 1, 1000), collab_only=kind == "collab")


@dataclass(frozen=True)
class StreamQuery:
    """``GET /api/stream``: ``topic`` (pattern) filters the tail."""

    pattern: TopicPattern | None
    topic: str

    @classmethod
    def parse(cls, raw: str | bytes) -> StreamQuery:
        """Raises ApiError (400)."""
        params = parse_query(raw, "/api/stream", ("topic",))
        pattern, topic = _pattern(params)
        return cls(pattern=pattern, topic=topic)


def thread_key(raw: str) -> str:
    """A thread id (or trace id) from the path.

    Raises:
        ApiError: 400 for an empty or overlong id.
    """
    if not raw or len(raw) > _MAX_TEXT:
        raise ApiError(400, f"a thread id is 1 to {_MAX_TEXT} characters")
    return raw
