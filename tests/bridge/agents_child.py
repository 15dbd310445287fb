"""A process that runs two remote agents, for test_run_agents.py (real processes, real signals).

Usage: ``agents_child.py MODE ADDRESS``. Each agent (``alpha``, ``beta``) answers an event on
``rq.{id}`` with ``pong`` on ``rs.{id}`` and emits ``bye`` on ``rs.{id}`` when it stops.

Modes:
    together: ``run_agents(alpha, beta)``.
    side_by_side: ``asyncio.gather(alpha.run(), beta.run())``; alpha's end is printed, not fatal.
    restore: an app handler for SIGTERM and asyncio.Runner's SIGINT handler are there before
        ``alpha.run()``; after it returns the child checks that both are back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from loom import Event
from loom.agents import Agent, Context
from loom_bridge import Backoff, BridgeError, ClientConfig, RemoteAgent, run_agents


class Pinger(Agent):
    def __init__(self, name: str) -> None:
        self.name = name

    async def on_other(self, ctx: Context, event: Event) -> None:
        await ctx.emit(f"rs.{self.name}", "pong", event.payload)

    async def on_stop(self, ctx: Context) -> None:
        await ctx.emit(f"rs.{self.name}", "bye", b"")


def say(line: str) -> None:
    print(line, flush=True)


def agent(name: str, address: str) -> RemoteAgent:
    config = ClientConfig(
        address=address,
        connect_timeout_s=30,
        heartbeat_s=0.5,
        backoff=Backoff(initial_s=0.05, factor=2.0, max_s=0.2),
    )
    return RemoteAgent(name, Pinger(name), topics=[f"rq.{name}"], config=config)


async def together(address: str) -> None:
    say(f"pid {os.getpid()}")
    ran = await run_agents(
        agent("alpha", address), agent("beta", address), on_started=lambda: say("started")
    )
    say("stopped" if ran else "stopped before connecting")


async def side_by_side(address: str) -> None:
    alpha, beta = agent("alpha", address), agent("beta", address)

    async def run_alpha() -> None:
        try:
            await alpha.run()
        except BridgeError as exc:
            say(f"alpha ended: {type(exc).__name__}")
            return
        say("alpha stopped")

    async def announce() -> None:
        while not (alpha.connected and beta.connected):
            await asyncio.sleep(0.01)
        say("started")

    await asyncio.gather(run_alpha(), beta.run(), announce())
    say("stopped")


async def restore(address: str) -> None:
    loop = asyncio.get_running_loop()
    app_handler = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, app_handler.set)
    runner_sigint = signal.getsignal(signal.SIGINT)
    await run_agents(agent("alpha", address), on_started=lambda: say("started"))
    say(f"app handler ran during the run: {app_handler.is_set()}")
    say(f"SIGINT handler back: {signal.getsignal(signal.SIGINT) is runner_sigint}")
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(app_handler.wait(), 10)
    say("SIGTERM handler back: True")


if __name__ == "__main__":
    mode, address = sys.argv[1], sys.argv[2]
    asyncio.run(
        {"together": together, "side_by_side": side_by_side, "restore": restore}[mode](address)
    )
