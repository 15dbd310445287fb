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
import sys

from roles import RESEARCH_TOPICS, Researcher
from skills import search_local

from loom_bridge import BridgeError, ClientConfig, RemoteAgent, run_agents

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
    agents = researchers(config)
    ids = ", ".join(agent.agent_id for agent in agents)
    started = False

    def connected() -> None:
        nonlocal started
        started = True
        print(
            f"researchers: connected to {config.address} as {ids} (pid {os.getpid()})", flush=True
        )

    # One set of SIGINT/SIGTERM handlers for both; a signal while connecting stops at once.
    try:
        ran = await run_agents(*agents, on_started=connected)
    except (BridgeError, OSError) as exc:
        if started:
            print(f"researchers: connection ended for good ({exc})", file=sys.stderr)
        else:
            print(f"researchers: cannot take part through {config.address}: {exc}", file=sys.stderr)
        return 1
    print("researchers: stopped" if ran else "researchers: stopped before connecting", flush=True)
    return 0


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
