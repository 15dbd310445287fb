"""Word error rate: how far a transcript is from what was said."""

from __future__ import annotations

import re
from collections.abc import Iterable

from rapidfuzz.distance import Levenshtein

__all__ = ["corpus_word_error_rate", "normalize_transcript", "word_error_rate"]

_KEEP = re.compile(r"[^a-z0-9' ]+")


def normalize_transcript(text: str) -> list[str]:
    """Lowercase words without punctuation (hyphens split words, apostrophes stay)."""
    return _KEEP.sub(" ", text.lower().replace("-", " ")).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / words in ``reference``, after normalising.

    Example:
        >>> word_error_rate("the quick brown fox", "the quick round fox")
        0.25
    """
    ref = normalize_transcript(reference)
    hyp = normalize_transcript(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return Levenshtein.distance(ref, hyp) / len(ref)


def corpus_word_error_rate(pairs: Iterable[tuple[str, str]]) -> float:
    """The word error rate over many (reference, hypothesis) pairs: total edits / total words."""
    edits = words = 0
    for reference, hypothesis in pairs:
        ref = normalize_transcript(reference)
        edits += Levenshtein.distance(ref, normalize_transcript(hypothesis))
        words += len(ref)
    return edits / words if words else 0.0
