"""The trio: a planner, two researchers and a writer answering a question together.

The planner fans the question out to the researchers, who search the bundled corpus with
the native capability ``search.local``; the writer condenses their passages with
``text.summarize`` and prints the draft. The user (this script) asks the planner with a
request and waits for the answer. Everything runs in process, on the memory bus, with
the capabilities in an ``ActionBroker``.

With ``--remote-researchers`` the researchers run in a second process and take part
through the bridge (``loom-bridge``): this script serves the bridge on its bus and broker
(127.0.0.1, an ephemeral port, a token made for the run), starts
``remote_researchers.py``, which runs the very same ``Researcher`` class with the SDK's
``RemoteAgent`` and serves ``search.local`` from there, waits for both researchers to
connect, asks, and stops the second process cleanly (SIGTERM) at the end. The planner's
fanout and the researchers' replies and capability calls all cross the wire; the answer
names the process each researcher ran in. ``--no-launch`` starts no second process: run
``remote_researchers.py --address ADDR`` yourself, with the address this script prints.

Exit status: 0 answered; 1 no answer in time; 3 the remote researchers did not connect
within ``--connect-timeout``, died, or did not stop cleanly (the reason is on stderr).

Run: ``.venv/bin/python examples/trio/main.py ["your question"]``
     ``.venv/bin/python examples/trio/main.py --remote-researchers ["your question"]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from dataclasses import dataclass
from typing import Any

from launch import RemoteFailure, ResearcherProcess, watched
from roles import RESEARCH_TOPICS, Planner, Researcher, Writer
from skills import search_local, summarize

from loom import Event
from loom.actions import ActionBroker, NativeProvider
from loom.agents import AgentRuntime
from loom.bus import EventBus, MemoryBus
from loom.collab import Collab, CollabTimeout, json_payload
from loom.directory import AgentDirectory

DEFAULT_QUESTION = "How do agents collaborate with a fanout and what happens to a late reply?"
RESEARCHERS = tuple(f"researcher-{topic.rsplit('.', 1)[1]}" for topic in RESEARCH_TOPICS)

EXIT_NO_ANSWER = 1
EXIT_REMOTE = 3


@dataclass(frozen=True)
class RemoteOptions:
    """How to run the researchers remotely."""

    address: str = "127.0.0.1:0"
    launch: bool = True
    connect_timeout_s: float = 15.0


async def main(question: str, timeout_s: float, remote: RemoteOptions | None = None) -> int:
    directory = AgentDirectory()
    async with ActionBroker() as broker, MemoryBus() as bus:
        broker.register(NativeProvider(summarize))
        runtime = AgentRuntime(bus, broker=broker, directory=directory)
        await runtime.spawn("planner", Planner())
        await runtime.spawn("writer", Writer())
        if remote is not None:
            return await _with_remote_researchers(
                bus, broker, runtime, directory, question, timeout_s, remote
            )
        broker.register(NativeProvider(search_local))
        for topic, agent_id in zip(RESEARCH_TOPICS, RESEARCHERS, strict=True):
            shelf = topic.rsplit(".", 1)[1]
            await runtime.spawn(agent_id, Researcher(shelf), topics=[topic])
        try:
            answer = await _ask(bus, question, timeout_s)
        except CollabTimeout as exc:
            print(f"trio: no answer: {exc}", file=sys.stderr)
            return EXIT_NO_ANSWER
        finally:
            await runtime.shutdown()
        _report(answer, broker)
    return 0


async def _ask(bus: EventBus, question: str, timeout_s: float) -> Event:
    """The user's request to the planner; its answer."""
    user = Collab(bus, "user")
    return await user.request("user.questions", "user.question", question, timeout_s=timeout_s)


def _report(answer: Event, broker: ActionBroker) -> None:
    body = json_payload(answer)
    by = ", ".join(_where(r) for r in sorted(body["research"], key=lambda r: r["agent"]))
    print(
        f"user: answer from {answer.sender} citing {len(body['sources'])} source(s), "
        f"researched by {by or 'nobody'}"
    )
    failed = sum(broker.stats.failed.values())
    print(f"trio: {broker.stats.ok} capability calls ok, {failed} failed")


def _where(research: dict[str, Any]) -> str:
    pid = research["pid"]
    return (
        f"{research['agent']} in pid {pid} ({'this process' if pid == os.getpid() else 'remote'})"
    )


async def _with_remote_researchers(
    bus: EventBus,
    broker: ActionBroker,
    runtime: AgentRuntime,
    directory: AgentDirectory,
    question: str,
    timeout_s: float,
    options: RemoteOptions,
) -> int:
    """Serve the bridge, get the researchers connected through it, ask, clean up."""
    from loom_bridge import BridgeConfig, BridgeError, BridgeServer

    # A bridge lets its clients publish on the bus and run capabilities: the child gets a
    # token made for this run (a hand-started one uses $LOOM_BRIDGE_TOKEN, when set).
    token = os.environ.get("LOOM_BRIDGE_TOKEN") or (
        secrets.token_urlsafe(24) if options.launch else None
    )
    server = BridgeServer(
        bus, broker, directory=directory, config=BridgeConfig(address=options.address, token=token)
    )
    try:
        await server.start()
    except BridgeError as exc:
        await runtime.shutdown()
        print(f"trio: cannot serve the bridge: {exc}", file=sys.stderr)
        return EXIT_REMOTE
    print(f"trio: bridge listening on {server.address}", flush=True)
    process: ResearcherProcess | None = None
    code = 0
    try:
        if options.launch:
            process = await ResearcherProcess.start(
                server.address, token, options.connect_timeout_s
            )
            print(f"trio: started the remote researchers (pid {process.pid})", flush=True)
        else:
            print(
                "trio: waiting for the researchers; run: python examples/trio/"
                f"remote_researchers.py --address {server.address}"
                + (" (with the same LOOM_BRIDGE_TOKEN)" if token else ""),
                flush=True,
            )
        try:
            async with asyncio.timeout(options.connect_timeout_s):
                await watched(_connected(directory), process, "before they connected")
        except TimeoutError:
            missing = ", ".join(a for a in RESEARCHERS if a not in directory)
            raise RemoteFailure(
                f"the remote researchers did not connect to {server.address} within "
                f"{options.connect_timeout_s:g} s (missing: {missing})"
            ) from None
        peers = ", ".join(f"{a} from {directory.get(a).metadata['peer']}" for a in RESEARCHERS)
        print(f"trio: researchers connected through the bridge: {peers}", flush=True)
        try:
            answer = await watched(
                _ask(bus, question, timeout_s), process, "before the answer came"
            )
        except CollabTimeout as exc:
            print(f"trio: no answer: {exc}", file=sys.stderr)
            code = EXIT_NO_ANSWER
        else:
            _report(answer, broker)
    except RemoteFailure as exc:
        print(f"trio: {exc}", file=sys.stderr)
        code = EXIT_REMOTE
    finally:
        await runtime.shutdown()
        if process is not None:
            try:
                ended = await process.stop()
            except RemoteFailure as exc:
                if code == 0:  # else the failure is reported already
                    print(f"trio: {exc}", file=sys.stderr)
                    code = EXIT_REMOTE
            else:
                print(f"trio: the remote researchers (pid {process.pid}) {ended}", flush=True)
        await server.stop()
    return code


async def _connected(directory: AgentDirectory) -> None:
    """Wait until every researcher is connected (the bridge lists a remote agent once its
    subscriptions and capabilities are in place)."""
    while not all(agent_id in directory for agent_id in RESEARCHERS):
        await asyncio.sleep(0.02)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default=DEFAULT_QUESTION)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait")
    parser.add_argument(
        "--remote-researchers",
        action="store_true",
        help="run the researchers in a second process, through the bridge",
    )
    parser.add_argument(
        "--bridge-address",
        default=RemoteOptions.address,
        help="where the bridge listens (default: 127.0.0.1 and a free port)",
    )
    parser.add_argument(
        "--no-launch",
        action="store_true",
        help="start no second process: wait for remote_researchers.py started by hand",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=RemoteOptions.connect_timeout_s,
        help="seconds to wait for the remote researchers to connect",
    )
    options = parser.parse_args()
    remote = None
    if options.remote_researchers:
        remote = RemoteOptions(
            options.bridge_address, not options.no_launch, options.connect_timeout
        )
    elif options.no_launch or options.bridge_address != RemoteOptions.address:
        parser.error("--no-launch and --bridge-address go with --remote-researchers")
    try:
        sys.exit(asyncio.run(main(options.question, options.timeout, remote)))
    except KeyboardInterrupt:  # the second process, if any, was stopped on the way out
        print("trio: interrupted", file=sys.stderr)
        sys.exit(130)
