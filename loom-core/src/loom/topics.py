"""Topics and topic patterns.

A topic is a dot-separated list of non-empty tokens, for example ``sensor.kitchen.temp``.
A pattern may also use NATS wildcards as whole tokens: ``*`` matches exactly one token and
``>`` (last token only) matches one or more trailing tokens. The rules are those of NATS
subjects, so a pattern means the same in process and on a NATS cluster.

Tokens may hold any printable character except ``.``, whitespace, and the wildcard
characters ``*`` and ``>`` (which are only allowed as a whole token, and only in patterns).

Example:
    >>> matches("sensor.*.temp", "sensor.kitchen.temp")
    True
    >>> matches("sensor.>", "sensor")
    False
"""

from __future__ import annotations

from functools import lru_cache

from loom.errors import InvalidTopicError

__all__ = [
    "MAX_TOPIC_LENGTH",
    "TopicPattern",
    "agent_replies_topic",
    "is_pattern",
    "matches",
    "thread_broadcast_topic",
    "thread_reply_topic",
    "validate_pattern",
    "validate_topic",
]

#: Longest topic accepted, in characters (NATS' default max_payload is far larger; this
#: bound keeps a hostile topic from bloating per-topic statistics).
MAX_TOPIC_LENGTH = 1024

_WILDCARDS = frozenset("*>")


def _check_tokens(topic: object, *, allow_wildcards: bool) -> tuple[str, ...]:
    if not isinstance(topic, str):
        raise InvalidTopicError(repr(topic), f"a topic is a str, not {type(topic).__name__}")
    if not topic:
        raise InvalidTopicError(topic, "empty")
    if len(topic) > MAX_TOPIC_LENGTH:
        raise InvalidTopicError(topic[:40] + "…", f"longer than {MAX_TOPIC_LENGTH} characters")
    tokens = tuple(topic.split("."))
    last = len(tokens) - 1
    for i, token in enumerate(tokens):
        if not token:
            raise InvalidTopicError(topic, f"empty token at position {i}")
        if any(c.isspace() for c in token):
            raise InvalidTopicError(topic, f"whitespace in token {token!r}")
        if not token.isprintable():
            raise InvalidTopicError(topic, f"non-printable character in token {token!r}")
        if token in _WILDCARDS:
            if not allow_wildcards:
                raise InvalidTopicError(
                    topic, f"wildcard {token!r} in a concrete topic (only patterns take wildcards)"
                )
            if token == ">" and i != last:
                raise InvalidTopicError(topic, "'>' must be the last token")
        elif _WILDCARDS.intersection(token):
            raise InvalidTopicError(
                topic, f"'*' and '>' must be whole tokens, not part of {token!r}"
            )
    return tokens


@lru_cache(maxsize=4096)
def validate_topic(topic: str) -> str:
    """Check a concrete topic (one that events are published to) and return it.

    Raises:
        InvalidTopicError: the topic is empty, has an empty token, whitespace, or a wildcard.
    """
    _check_tokens(topic, allow_wildcards=False)
    return topic


def validate_pattern(pattern: str) -> str:
    """Check a subscription pattern and return it.

    Raises:
        InvalidTopicError: empty token, whitespace, ``>`` not last, or a partial wildcard.
    """
    _compile(pattern)
    return pattern


def is_pattern(pattern: str) -> bool:
    """Whether a valid pattern holds a wildcard (and so may match more than one topic)."""
    return _compile(pattern).has_wildcards


class TopicPattern:
    """A validated, compiled subscription pattern.

    Build one with :meth:`compile` (cached) and test topics with :meth:`matches`.
    """

    __slots__ = ("_tokens", "has_wildcards", "pattern")

    def __init__(self, pattern: str) -> None:
        self._tokens = _check_tokens(pattern, allow_wildcards=True)
        self.pattern = pattern
        self.has_wildcards = any(t in _WILDCARDS for t in self._tokens)

    @staticmethod
    def compile(pattern: str) -> TopicPattern:
        """Return the compiled pattern, from a cache of recent ones.

        Raises:
            InvalidTopicError: the pattern breaks the grammar.
        """
        return _compile(pattern)

    @property
    def tokens(self) -> tuple[str, ...]:
        """The pattern's tokens, wildcards included."""
        return self._tokens

    def matches(self, topic: str) -> bool:
        """Whether the concrete ``topic`` matches this pattern (the topic is not validated)."""
        if not self.has_wildcards:
            return topic == self.pattern
        return _match_tokens(self._tokens, topic.split("."))

    def __repr__(self) -> str:
        return f"TopicPattern({self.pattern!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TopicPattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)


def _match_tokens(pattern: tuple[str, ...], topic: list[str]) -> bool:
    n = len(pattern)
    if pattern[-1] == ">":
        if len(topic) < n:
            return False
        n -= 1
    elif len(topic) != n:
        return False
    for i in range(n):
        p = pattern[i]
        if p != "*" and p != topic[i]:
            return False
    return True


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> TopicPattern:
    return TopicPattern(pattern)


def matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` matches ``pattern``.

    Raises:
        InvalidTopicError: the pattern breaks the grammar.
    """
    return _compile(pattern).matches(topic)


def thread_broadcast_topic(thread_id: str) -> str:
    """The topic every member of a collaboration thread listens on: ``thread.{id}.broadcast``."""
    return f"thread.{thread_id}.broadcast"


def thread_reply_topic(thread_id: str) -> str:
    """The topic replies to a thread's requests go to: ``thread.{id}.reply``."""
    return f"thread.{thread_id}.reply"


def agent_replies_topic(agent_id: str) -> str:
    """An agent's private topic, to which it is subscribed from creation: ``agent.{id}.replies``."""
    return f"agent.{agent_id}.replies"
