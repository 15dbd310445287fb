"""The trio: a planner, two researchers and a writer answering a question together.

The planner fans the question out to the researchers, who search the bundled corpus with
the native capability ``search.local``; the writer condenses their passages with
``text.summarize`` and prints the draft. The user (this script) asks the planner with a
request and waits for the answer. Everything runs in process, on the memory bus, with
the capabilities in an ``ActionBroker``.

Run: ``.venv/bin/python examples/trio/main.py ["your question"]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from roles import RESEARCH_TOPICS, Planner, Researcher, Writer
from skills import search_local, summarize

from loom.actions import ActionBroker, NativeProvider
from loom.agents import AgentRuntime
from loom.bus import MemoryBus
from loom.collab import Collab, CollabTimeout, json_payload

DEFAULT_QUESTION = "How do agents collaborate with a fanout and what happens to a late reply?"


async def main(question: str, timeout_s: float) -> int:
    async with ActionBroker() as broker, MemoryBus() as bus:
        for fn in (search_local, summarize):
            broker.register(NativeProvider(fn))
        runtime = AgentRuntime(bus, broker=broker)
        await runtime.spawn("planner", Planner())
        for topic in RESEARCH_TOPICS:
            shelf = topic.rsplit(".", 1)[1]
            await runtime.spawn(f"researcher-{shelf}", Researcher(shelf), topics=[topic])
        await runtime.spawn("writer", Writer())
        user = Collab(bus, "user")
        try:
            answer = await user.request(
                "user.questions", "user.question", question, timeout_s=timeout_s
            )
        except CollabTimeout as exc:
            print(f"trio: no answer: {exc}", file=sys.stderr)
            return 1
        finally:
            await runtime.shutdown()
        sources = json_payload(answer)["sources"]
        print(f"user: answer from {answer.sender} citing {len(sources)} source(s)")
        calls = broker.stats.ok
        print(f"trio: {calls} capability calls ok, {sum(broker.stats.failed.values())} failed")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default=DEFAULT_QUESTION)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait")
    options = parser.parse_args()
    sys.exit(asyncio.run(main(options.question, options.timeout)))
