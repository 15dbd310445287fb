"""The trio's researchers in their own process, taking part through the bridge.

The same :class:`~roles.Researcher` class that ``main.py`` runs in process, one
:class:`~loom_bridge.RemoteAgent` per shelf of the corpus (``researcher-docs``,
``researcher-notes``). Each subscribes to its ``research.*`` topic and serves the
``search.local`` capability, since the corpus lives beside this file: the host's broker
gets it as a provider of kind GRPC, and the researchers' own ``ctx.tool("search.local",
...)`` goes to the host's broker (ForwardAction) and back here.

``main.py --remote-researchers`` starts this script itself. To run it by hand, in another
terminal, start ``main.py --remote-researchers --no-launch`` and give this script the
address it prints (``LOOM_BRIDGE_TOKEN`` is sent when set).

Run: ``.venv/bin/python examples/trio/remote_researchers.py --address HOST:PORT``

It serves until SIGINT or SIGTERM, then stops both agents cleanly (exit 0); it exits 1 when
the bridge cannot be reached or refuses the registration, or a connection ends for good.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from roles import RESEARCH_TOPICS, Researcher
from skills import search_local

from loom_bridge import BridgeError, ClientConfig, RemoteAgent

#: How many seconds to wait for the first connection.
CONNECT_TIMEOUT_S = 10.0


def researchers(config: ClientConfig) -> list[RemoteAgent]:
    """One remote agent per shelf, with the ids and topics ``main.py`` gives them in process."""
    agents = []
    for topic in RESEARCH_TOPICS:
        shelf = topic.rsplit(".", 1)[1]
        agents.append(
            RemoteAgent(
                f"researcher-{shelf}",
                Researcher(shelf),
                topics=[topic],
                capabilities=[search_local],
                config=config,
            )
        )
    return agents


async def serve(config: ClientConfig) -> int:
    """Connect the researchers, serve until a signal (0) or a connection lost for good (1)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    agents = researchers(config)
    started: list[RemoteAgent] = []
    # A signal while connecting stops at once, not after the connect timeout.
    starting = asyncio.ensure_future(_start(agents, started))
    interrupted = asyncio.ensure_future(stopping.wait())
    await asyncio.wait((starting, interrupted), return_when=asyncio.FIRST_COMPLETED)
    interrupted.cancel()
    if not starting.done():
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
    failure = None if starting.cancelled() else starting.exception()
    if starting.cancelled() or failure is not None:
        for agent in started:
            await agent.stop()
        if failure is None:
            print("researchers: stopped before connecting", file=sys.stderr)
            return 0
        if not isinstance(failure, BridgeError | OSError):
            raise failure
        print(f"researchers: cannot take part through {config.address}: {failure}", file=sys.stderr)
        return 1
    ids = ", ".join(agent.agent_id for agent in agents)
    print(f"researchers: connected to {config.address} as {ids} (pid {os.getpid()})", flush=True)
    waits: list[asyncio.Future[object]] = [asyncio.ensure_future(stopping.wait())]
    waits += [asyncio.ensure_future(agent.wait_closed()) for agent in agents]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        for agent in agents:
            await agent.stop()
    if not stopping.is_set():
        reasons = [f"{a.agent_id}: {a.link.closed_reason}" for a in agents if a.link.closed_reason]
        print(f"researchers: connection ended for good ({'; '.join(reasons)})", file=sys.stderr)
        return 1
    print("researchers: stopped", flush=True)
    return 0


async def _start(agents: list[RemoteAgent], started: list[RemoteAgent]) -> None:
    for agent in agents:
        await agent.start()  # a failed or cancelled start cleans up after itself
        started.append(agent)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--address", default=None, help="the bridge; default $LOOM_BRIDGE_ADDR or 127.0.0.1:50051"
    )
    parser.add_argument(
        "--connect-timeout", type=float, default=CONNECT_TIMEOUT_S, help="seconds to wait"
    )
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="researchers: %(levelname)s %(message)s")
    try:
        config = ClientConfig.from_env(
            address=options.address, connect_timeout_s=options.connect_timeout
        )
    except BridgeError as exc:
        parser.error(str(exc))
    sys.exit(asyncio.run(serve(config)))
