"""The remote side: the same :class:`Summarizer` as embedded, in its own process.

It connects to the bridge, registers its topics and its ``text.shout`` capability, and
serves until Ctrl-C; after a bridge restart it reconnects and registers again.

Run: ``.venv/bin/python examples/remote_agent/remote.py [--address 127.0.0.1:50051]``
(``LOOM_BRIDGE_TOKEN`` is sent when set).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from loom_bridge import ClientConfig, RemoteAgent

sys.path.insert(0, str(Path(__file__).parent))
from agents import Summarizer, shout


async def main(address: str) -> None:
    agent = RemoteAgent(
        "summarizer",
        Summarizer(),
        capabilities=[shout],
        config=ClientConfig.from_env(address=address),
    )
    print(f"remote: connecting to {address}", flush=True)
    await agent.run()
    print("remote: stopped", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--address", default=None, help="default $LOOM_BRIDGE_ADDR or 127.0.0.1:50051"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="remote: %(levelname)s %(message)s")
    asyncio.run(main(args.address))
