"""The trio example, run as a user runs it: one command, in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "examples" / "trio" / "main.py"
CORPUS = ROOT / "examples" / "trio" / "corpus"


def _corpus_text() -> str:
    return " ".join(" ".join(p.read_text().split()) for p in sorted(CORPUS.glob("*/*.md")))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MAIN), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_the_trio_answers_a_question():
    result = _run("How do agents collaborate with a fanout?")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "planner: question 'How do agents collaborate with a fanout?'" in out
    [docs] = [line for line in out.splitlines() if line.startswith("researcher[docs]:")]
    assert docs.startswith("researcher[docs]: 2 passage(s) from") and "collaboration.md" in docs
    assert "researcher[notes]:" in out
    assert "planner: 2 of 2 researchers replied (all," in out
    draft = out.split("writer: draft", 1)[1]
    question, rest = draft.strip().split("\n\n", 1)
    assert question == "Q: How do agents collaborate with a fanout?"
    body, sources = rest.split("\n\nSources: ", 1)
    # The draft is the summary of what was found: three sentences, each from the corpus.
    sentences = [s for s in body.replace("; ", ". ").split(". ") if s]
    corpus = _corpus_text()
    assert len(sentences) >= 3
    assert all(s.rstrip(".") in corpus for s in sentences), sentences
    assert "docs/collaboration.md" in sources.splitlines()[0]
    assert out.rstrip().splitlines()[-3] == "SUMMARY: OK"
    assert "user: answer from agent.planner citing" in out
    assert "trio: 3 capability calls ok, 0 failed" in out  # 2 searches and 1 summary
    assert result.stderr == ""


def test_a_question_the_corpus_cannot_answer():
    result = _run("zzz qqq")
    assert result.returncode == 0, result.stderr
    assert "researcher[docs]: 0 passage(s) from nothing" in result.stdout
    assert "Nothing in the corpus answers this." in result.stdout
    assert "SUMMARY: OK" in result.stdout
