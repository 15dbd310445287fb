"""The trio: a planner, two researchers and a writer.

- The planner takes a ``user.question`` and fans a ``research.request`` out to the
  researchers (collecting from all of them, or what came when the deadline passed), then
  asks the writer for a draft and replies to the user with it.
- A researcher answers a ``research.request`` with the passages ``search.local`` finds on
  its shelf of the corpus, and the id of the process it runs in (so the answer shows where
  the research was done: in this process, or in a remote one through the bridge).
- The writer turns the passages into a draft with ``text.summarize``, prints it and
  "SUMMARY: OK", and replies with it.

Everything between them is request/reply on the bus; the capabilities run through the
runtime's action broker (``ctx.tool``). Nothing here knows where it runs: ``main.py`` runs
every role in process, or (``--remote-researchers``) the very same :class:`Researcher` in a
second process through the bridge (``remote_researchers.py``).
"""

from __future__ import annotations

import os
from typing import Any

from loom import Event
from loom.agents import Agent, Context, handles
from loom.collab import ALL, CollabTimeout, FanoutResult, json_payload

RESEARCH_TOPICS = ("research.docs", "research.notes")


class Planner(Agent):
    """Plans the answer to a user's question."""

    topics = ("user.questions",)

    @handles("user.question")
    async def on_question(self, ctx: Context, event: Event) -> None:
        thread = ctx.thread(event)
        question = event.payload.decode()
        print(f"planner: question {question!r} (thread {thread.id})")
        try:
            research = await ctx.fanout(
                RESEARCH_TOPICS,
                "research.request",
                {"question": question},
                strategy=ALL,
                timeout_s=5.0,
                thread=thread,
            )
        except CollabTimeout as exc:
            if not isinstance(exc.result, FanoutResult):
                raise
            research = exc.result  # what did arrive
            print(f"planner: going on without {', '.join(research.missing)}")
        findings = [json_payload(reply) for reply in research.replies]
        print(
            f"planner: {len(research.replies)} of {len(research.targets)} researchers "
            f"replied ({research.strategy}, {research.elapsed_s * 1000:.1f} ms)"
        )
        draft = await ctx.request(
            "writer.drafts",
            "writer.draft",
            {"question": question, "findings": findings},
            timeout_s=10.0,
            thread=thread,
        )
        # Who did the research, and where: the senders' ids as the bus delivered them.
        by = [
            {"agent": reply.sender, "pid": finding.get("pid")}
            for reply, finding in zip(research.replies, findings, strict=True)
        ]
        await ctx.reply(event, "user.answer", {**json_payload(draft), "research": by})


class Researcher(Agent):
    """Searches one shelf of the corpus."""

    def __init__(self, shelf: str) -> None:
        self.shelf = shelf

    @handles("research.request")
    async def on_request(self, ctx: Context, event: Event) -> None:
        question = json_payload(event)["question"]
        passages: list[dict[str, Any]] = await ctx.tool(
            "search.local",
            {"query": question, "shelf": self.shelf, "limit": 2},
            thread=ctx.thread(event),
        )
        sources = ", ".join(p["source"] for p in passages) or "nothing"
        print(f"researcher[{self.shelf}]: {len(passages)} passage(s) from {sources}")
        await ctx.reply(
            event,
            "research.found",
            {"shelf": self.shelf, "passages": passages, "pid": os.getpid()},
        )


class Writer(Agent):
    """Writes the draft from the researchers' passages."""

    topics = ("writer.drafts",)

    @handles("writer.draft")
    async def on_draft(self, ctx: Context, event: Event) -> None:
        brief = json_payload(event)
        passages = [p for finding in brief["findings"] for p in finding["passages"]]
        passages.sort(key=lambda p: p["score"], reverse=True)
        text = " ".join(p["text"] for p in passages)
        summary = await ctx.tool(
            "text.summarize", {"text": text, "sentences": 3}, thread=ctx.thread(event)
        )
        sources = sorted({f"{p['shelf']}/{p['source']}" for p in passages})
        draft = f"Q: {brief['question']}\n\n{summary or 'Nothing in the corpus answers this.'}"
        print("writer: draft\n")
        print(draft)
        print(f"\nSources: {', '.join(sources) or 'none'}")
        print("SUMMARY: OK")
        await ctx.reply(event, "writer.done", {"draft": draft, "sources": sources})
