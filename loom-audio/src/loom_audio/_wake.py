"""The wake phrase: fuzzy matching on transcripts (upstream's rules), and its stage."""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import JaroWinkler, Levenshtein

from loom import Event, QoS
from loom_audio._names import TRANSCRIPT_FINAL, USER_QUERY, WAKE_DETECTED, AudioTopics
from loom_audio._stage import Stage

__all__ = ["WakeConfig", "WakeMatch", "WakeMatcher", "WakeStage", "normalize_words"]

log = logging.getLogger("loom_audio")

_NOT_WORD = re.compile(r"[^0-9a-z]+")
_sessions = itertools.count(1)


def normalize_words(text: str) -> list[str]:
    """Lowercase words with everything but letters and digits removed ("Hey, Loom!" -> hey loom)."""
    words = (_NOT_WORD.sub("", word) for word in text.lower().split())
    return [word for word in words if word]


@dataclass(frozen=True, slots=True)
class WakeConfig:
    """How the wake phrase is recognised (upstream's WAKE_* settings).

    Attributes:
        phrases: the wake phrases; empty means every transcript is a query.
        max_distance: a word matches when its Levenshtein distance is at most this.
        jw_threshold: ... or when the phrase's average Jaro-Winkler similarity reaches this.
        match_anywhere: look for the phrase anywhere in the transcript, not only at its start.
        strict_single_word: a one-word phrase (``loom``) matches only as the first word and
            spelled exactly (after normalising), even with ``match_anywhere``: one edit away
            and anywhere, upstream's rule takes "room" or "zoom" in ordinary speech for it.
        min_query_chars: letters needed after the phrase for the rest to be the query at
            once; with fewer, the next transcript is the query.
        armed_s: how long a bare wake phrase waits for the query.
    """

    phrases: tuple[str, ...] = ("hey loom", "loom")
    max_distance: int = 1
    jw_threshold: float = 0.90
    match_anywhere: bool = True
    strict_single_word: bool = True
    min_query_chars: int = 4
    armed_s: float = 8.0

    def __post_init__(self) -> None:
        if self.max_distance < 0:
            raise ValueError(f"wake.max_distance must be >= 0, got {self.max_distance!r}")
        if not 0.0 < self.jw_threshold <= 1.0:
            raise ValueError(f"wake.jw_threshold must be within (0, 1], got {self.jw_threshold!r}")
        for phrase in self.phrases:
            if not normalize_words(phrase):
                raise ValueError(f"wake phrase {phrase!r} has no words")


@dataclass(frozen=True, slots=True)
class WakeMatch:
    """Where a wake phrase was heard.

    Attributes:
        phrase: the configured phrase that matched.
        start: index of its first word in the transcript's words.
        end: index after its last word.
        distance: the summed Levenshtein distance of its words.
        similarity: the average Jaro-Winkler similarity of its words.
        query: the transcript's words after the phrase, as spoken (punctuation kept).
    """

    phrase: str
    start: int
    end: int
    distance: int
    similarity: float
    query: str


def _rest(spoken: list[str], start: int) -> str:
    return " ".join(spoken[start:]).lstrip(" ,.;:!-")


class WakeMatcher:
    """Finds a wake phrase in a transcript, tolerating what speech recognition gets wrong.

    A phrase of n words matches at a position when every word is within ``max_distance``
    edits, or all n together are within ``max_distance * n``, or their average
    Jaro-Winkler similarity is at least ``jw_threshold``. A match at the start wins; with
    ``match_anywhere`` the best-scoring position elsewhere is taken (the earliest on ties),
    and of several phrases the one matching earliest, then the longest.

    Example:
        >>> WakeMatcher(WakeConfig()).match("Hey, Loon, what time is it?").query
        'what time is it?'
    """

    def __init__(self, config: WakeConfig | None = None) -> None:
        self.config = config or WakeConfig()
        self._phrases = [(p, normalize_words(p)) for p in self.config.phrases]

    def match(self, text: str) -> WakeMatch | None:
        """The wake phrase in ``text``, or None."""
        spoken = [w for w in text.split() if _NOT_WORD.sub("", w.lower())]
        words = [_NOT_WORD.sub("", w.lower()) for w in spoken]
        best: WakeMatch | None = None
        for phrase, tokens in self._phrases:
            found = self._match_phrase(phrase, tokens, words, spoken)
            if found is None:
                continue
            if best is None or (found.start, -(found.end - found.start)) < (
                best.start,
                -(best.end - best.start),
            ):
                best = found
        return best

    def _match_phrase(
        self, phrase: str, tokens: list[str], words: list[str], spoken: list[str]
    ) -> WakeMatch | None:
        n = len(tokens)
        if len(words) < n:
            return None
        strict = n == 1 and self.config.strict_single_word
        if strict:
            return (
                WakeMatch(phrase, 0, 1, 0, 1.0, _rest(spoken, 1)) if words[0] == tokens[0] else None
            )
        positions = range(len(words) - n + 1) if self.config.match_anywhere else range(1)
        best: tuple[int, float, int] | None = None
        for start in positions:
            scored = self._score(tokens, words[start : start + n])
            if scored is None:
                continue
            distance, similarity = scored
            if start == 0:
                best = (distance, similarity, 0)
                break
            if best is None or (distance, -similarity) < (best[0], -best[1]):
                best = (distance, similarity, start)
        if best is None:
            return None
        distance, similarity, start = best
        return WakeMatch(phrase, start, start + n, distance, similarity, _rest(spoken, start + n))

    def _score(self, tokens: Sequence[str], window: Sequence[str]) -> tuple[int, float] | None:
        d = self.config.max_distance
        distances = [Levenshtein.distance(t, w) for t, w in zip(tokens, window, strict=True)]
        similarity = sum(
            JaroWinkler.similarity(t, w) for t, w in zip(tokens, window, strict=True)
        ) / len(tokens)
        total = sum(distances)
        if (
            all(x <= d for x in distances)
            or total <= d * len(tokens)
            or similarity >= self.config.jw_threshold
        ):
            return total, similarity
        return None


class WakeStage(Stage):
    """Turns final transcripts into queries when they carry the wake phrase.

    Subscribes (Batched: text is not dropped) to ``transcript.final`` on
    ``topics.transcript``. A transcript with the wake phrase publishes
    ``wake_word_detected`` on ``topics.wake`` (metadata ``phrase``, ``text``,
    ``session_id``); if at least ``min_query_chars`` letters follow the phrase, the rest is
    published at once as ``user.query`` on ``topics.query`` (payload and ``text``: the
    query); otherwise the stage is armed and the next transcript within ``armed_s`` is the
    query. With no phrases configured, every transcript is a query.

    Args:
        config: phrases and matching thresholds.
        topics: the topics to use.
        name: the stage's name.
    """

    def __init__(
        self,
        config: WakeConfig | None = None,
        *,
        topics: AudioTopics | None = None,
        name: str = "wake",
    ) -> None:
        super().__init__(name)
        self.config = config or WakeConfig()
        self.topics = topics or AudioTopics()
        self.matcher = WakeMatcher(self.config)
        self.wakes = 0
        self.queries = 0
        self.ignored = 0
        self._armed: tuple[str, float] | None = None

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "wakes": self.wakes,
            "queries": self.queries,
            "ignored": self.ignored,
            "armed": self._armed is not None,
        }

    async def _on_start(self) -> None:
        await self._subscribe(
            self.topics.transcript,
            self._on_transcript,
            event_types=(TRANSCRIPT_FINAL,),
            qos=QoS.BATCHED,
        )

    async def _on_transcript(self, topic: str, event: Event) -> None:
        text = event.metadata.get("text") or event.payload.decode("utf-8", "replace")
        text = text.strip()
        if not text:
            return
        if not self.config.phrases:
            await self._query(text, f"sess_{next(_sessions)}", event, "")
            return
        armed, self._armed = self._armed, None
        if armed is not None and time.monotonic() - armed[1] <= self.config.armed_s:
            found = self.matcher.match(text)
            if found is None or found.start > 0:
                await self._query(text, armed[0], event, "")
                return
        found = self.matcher.match(text)
        if found is None:
            self.ignored += 1
            log.debug("%s: no wake phrase in %r", self.name, text)
            return
        session = f"sess_{next(_sessions)}"
        self.wakes += 1
        await self._publish(
            self.topics.wake,
            Event(
                WAKE_DETECTED,
                text.encode(),
                source=self.name,
                metadata={
                    "phrase": found.phrase,
                    "text": text,
                    "session_id": session,
                    "utterance_id": event.metadata.get("utterance_id", ""),
                },
                priority=65,
            ),
        )
        if len(found.query.replace(" ", "")) >= self.config.min_query_chars:
            await self._query(found.query, session, event, found.phrase)
        else:
            self._armed = (session, time.monotonic())

    async def _query(self, text: str, session: str, source: Event, phrase: str) -> None:
        self.queries += 1
        metadata = {"text": text, "session_id": session, "wake_phrase": phrase}
        for key in ("utterance_id", "last_voiced_ns"):
            if key in source.metadata:
                metadata[key] = source.metadata[key]
        await self._publish(
            self.topics.query,
            Event(USER_QUERY, text.encode(), source=self.name, metadata=metadata, priority=60),
        )
