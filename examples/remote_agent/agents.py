"""Agent code that runs embedded or remote, unchanged.

Nothing here knows about the bridge: ``host.py`` can run :class:`Summarizer` in process,
and ``remote.py`` runs the very same class in another process through the bridge.
"""

from __future__ import annotations

import json

from loom import Event
from loom.actions import capability
from loom.agents import Agent, Context, handles

#: Where requests for summaries go.
REQUESTS = "docs.summarize"


class Summarizer(Agent):
    """Answers ``doc.summarize`` requests with the first line and a word count.

    The count comes from the host's ``text.count_words`` capability, called through the
    broker (``ctx.tool``), wherever this agent runs.
    """

    topics = (REQUESTS,)

    @handles("doc.summarize")
    async def summarize(self, ctx: Context, event: Event) -> None:
        text = event.payload.decode()
        words = await ctx.tool("text.count_words", {"text": text})
        summary = {"first_line": text.splitlines()[0] if text else "", "words": words}
        await ctx.reply(event, "doc.summary", json.dumps(summary).encode())


@capability("text.shout", description="Upper-case a text and add an exclamation mark")
async def shout(text: str, times: int = 1) -> str:
    """The capability this agent serves to everyone on the host."""
    if times < 1:
        raise ValueError("times must be at least 1")
    return (text.upper() + "!") * times


@capability("text.count_words", description="Count the words of a text")
def count_words(text: str) -> int:
    """The host's capability (registered by ``host.py``)."""
    return len(text.split())
