"""The host side: a bus, a broker with ``text.count_words``, the bridge, and a client agent.

Run it, then ``remote.py`` in another terminal. The client asks the remote summarizer for a
summary (``ctx.request``) and calls the remote agent's ``text.shout`` capability
(``ctx.tool``), as if both were in this process.

Run: ``.venv/bin/python examples/remote_agent/host.py [--address 127.0.0.1:50051]``
(``--embedded`` runs the summarizer in process instead, the same class.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from loom import LoomError
from loom.actions import ActionBroker, NativeProvider
from loom.agents import Agent, AgentRuntime, Context
from loom.bus import MemoryBus
from loom_bridge import BridgeConfig, BridgeServer

sys.path.insert(0, str(Path(__file__).parent))
from agents import REQUESTS, Summarizer, count_words, shout


class Client(Agent):
    """Asks for summaries and shouts, ``rounds`` times, when it starts."""

    def __init__(self, rounds: int, done: asyncio.Event) -> None:
        self.rounds = rounds
        self.done = done

    async def on_start(self, ctx: Context) -> None:
        try:
            for i in range(1, self.rounds + 1):
                text = f"Round {i} of the bridge demo\nwith a second line"
                reply = await ctx.request(REQUESTS, "doc.summarize", text.encode(), timeout_s=5)
                print(f"client: summary {json.loads(reply.payload)}", flush=True)
                loud = await ctx.tool("text.shout", {"text": "done", "times": 2})
                print(f"client: text.shout -> {loud!r}", flush=True)
        except LoomError as exc:  # a timeout, a failed capability: say so and stop
            print(f"client: failed: {exc}", flush=True)
        finally:
            self.done.set()


async def main(address: str, embedded: bool, rounds: int) -> None:
    broker = ActionBroker()
    broker.register(NativeProvider(count_words))
    async with MemoryBus() as bus:
        runtime = AgentRuntime(bus, broker=broker)
        server = BridgeServer(bus, broker, config=BridgeConfig(address=address))
        await server.start()
        print(f"host: bridge listening on {server.address}", flush=True)
        try:
            if embedded:
                broker.register(NativeProvider(shout))
                await runtime.spawn("summarizer", Summarizer())
            else:
                print("host: waiting for the remote summarizer (run remote.py)", flush=True)
                while broker.provider("text.shout") is None:
                    await asyncio.sleep(0.05)
            done = asyncio.Event()
            await runtime.spawn("client", Client(rounds, done))
            await done.wait()
        finally:
            await runtime.shutdown()
            await server.stop()
            await broker.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1:50051")
    parser.add_argument("--embedded", action="store_true", help="run the summarizer in process")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.address, args.embedded, args.rounds))
