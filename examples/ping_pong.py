"""Two agents exchanging events through the plugin host, on the embedded defaults.

The host supplies the bus (``memory``) and the state store (``rocksdb``) by name, as an app
would; ``ping`` sends requests to a topic, ``pong`` answers each on ping's private topic, and
ping keeps a count of games in RocksDB, so every run continues where the last one stopped.

Run: ``.venv/bin/python examples/ping_pong.py [--rounds N] [--data DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import loom
from loom import Event, create_host
from loom.agents import Agent, AgentRuntime, Context, handles


class Pong(Agent):
    """Answers every ``ping`` on the table with a ``pong`` to the sender."""

    topics = ("table.*",)

    @handles("ping")
    async def on_ping(self, ctx: Context, event: Event) -> None:
        reply = await ctx.reply(event, "pong", event.payload)
        hop = reply.metadata["hop"]
        ball = event.payload.decode()
        print(f"  pong <- {ctx.topic:<18} {ball:<8} -> {event.reply_to} (hop {hop})")


class Ping(Agent):
    """Serves ``rounds`` pings and counts the pongs; remembers games played in its state."""

    def __init__(self, rounds: int, finished: asyncio.Event) -> None:
        self.rounds = rounds
        self.finished = finished
        self.pongs = 0

    async def on_start(self, ctx: Context) -> None:
        for i in range(1, self.rounds + 1):
            await ctx.emit("table.pong", "ping", f"ball #{i}".encode())

    @handles("pong")
    async def on_pong(self, ctx: Context, event: Event) -> None:
        self.pongs += 1
        print(f"  ping <- {ctx.topic:<18} {event.payload.decode():<8} from {event.sender}")
        if self.pongs == self.rounds:
            games = int(await ctx.state.get("games") or b"0") + 1
            await ctx.state.put("games", str(games).encode(), sync=True)
            print(f"ping: {self.pongs} pongs back; games played so far (kept in RocksDB): {games}")
            self.finished.set()


async def main(rounds: int, data: Path) -> None:
    host = create_host()
    bus = {b.name: b for b in host.bus_backends()}["memory"].factory()
    store = {s.name: s for s in host.state_stores()}["rocksdb"].factory(data)
    print(f"loom {loom.__version__}: bus 'memory', state 'rocksdb' at {data}")
    await bus.start()
    runtime = AgentRuntime(bus, state_store=store)
    finished = asyncio.Event()
    await runtime.spawn("pong", Pong())
    await runtime.spawn("ping", Ping(rounds, finished))
    await asyncio.wait_for(finished.wait(), timeout=10)
    for topic in ("table.pong", "agent.ping.replies"):
        stats = bus.stats(topic)
        counts = f"published {stats.published}, delivered {stats.delivered}"
        print(f"{topic}: {counts}, dropped {stats.dropped}")
    await runtime.shutdown()
    await bus.shutdown()
    await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=Path(".loom-data/ping_pong"))
    options = parser.parse_args()
    asyncio.run(main(options.rounds, options.data))
