"""The trio's native capabilities: search over the bundled corpus, and summarize text.

Both are plain typed functions made capabilities with ``@capability``; the broker runs
them (in a worker thread, since they are sync) with their inputs validated against the
schemas derived from the type hints. No network: the corpus ships beside this file.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

from loom.actions import capability

CORPUS = Path(__file__).resolve().parent / "corpus"

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# Words too common to tell passages apart.
_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "a an and are as at be by can do does each every for from has how in into is it its no "
        "not of on one or out so such than that the their them then there these they this to "
        "was what when which while who why with without",
    )
)


class Passage(BaseModel):
    """One paragraph of the corpus that matches a query."""

    shelf: str
    source: str
    title: str
    text: str
    score: float


def _words(text: str) -> list[str]:
    """The text's content words, crudely stemmed: a plural's "s" dropped, cut to 6 letters
    (so "subscriber" meets "subscription", and "agents" meets "agent")."""
    words = []
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s"):
            word = word[:-1]
        words.append(word[:6])
    return words


@lru_cache(maxsize=1)
def _library() -> list[tuple[str, str, str, str]]:
    """Every paragraph of the corpus: (shelf, file, title, text)."""
    paragraphs = []
    for path in sorted(CORPUS.glob("*/*.md")):
        blocks = [b.strip() for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]
        title = (
            blocks[0].lstrip("# ").strip() if blocks and blocks[0].startswith("#") else path.stem
        )
        for block in blocks:
            if not block.startswith("#"):
                paragraphs.append((path.parent.name, path.name, title, " ".join(block.split())))
    return paragraphs


@capability("search.local")
def search_local(query: str, shelf: str = "", limit: int = 3) -> list[Passage]:
    """Find the corpus paragraphs that best match a query (TF-IDF over the bundled corpus)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    library = [p for p in _library() if not shelf or p[0] == shelf]
    if not library:
        raise ValueError(f"no shelf named {shelf!r} in the corpus")
    terms = set(_words(query))
    documents = [Counter(_words(text)) for *_, text in library]
    frequency = Counter(term for doc in documents for term in set(doc) if term in terms)
    hits = []
    for (shelf_name, source, title, text), counts in zip(library, documents, strict=True):
        length = sum(counts.values()) or 1
        score = sum(
            counts[t] / length * math.log(1 + len(documents) / frequency[t])
            for t in terms
            if counts[t]
        )
        if score > 0:
            hits.append(
                Passage(shelf=shelf_name, source=source, title=title, text=text, score=score)
            )
    hits.sort(key=lambda p: p.score, reverse=True)
    return hits[:limit]


@capability("text.summarize")
def summarize(text: str, sentences: int = 3) -> str:
    """Keep the sentences that carry the text's most frequent words, in their order."""
    if sentences < 1:
        raise ValueError(f"sentences must be at least 1, got {sentences}")
    found = [s.strip() for s in _SENTENCE.split(" ".join(text.split())) if s.strip()]
    if len(found) <= sentences:
        return " ".join(found)
    weights = Counter(_words(text))
    top = max(weights.values(), default=1)

    def weight(sentence: str) -> float:
        words = _words(sentence)
        return sum(weights[w] / top for w in words) / math.sqrt(len(words) or 1)

    keep = sorted(
        sorted(range(len(found)), key=lambda i: weight(found[i]), reverse=True)[:sentences]
    )
    return " ".join(found[i] for i in keep)
