"""A Loom host process for the multi-host tests: its own NatsBus, ActionBroker,
AgentRuntime and CapabilityMesh, with the capabilities and agents of its role.

mesh_host.py URL PREFIX HOST [--interval S] [--expire S]

Roles (by HOST): ``a`` runs the capabilities ``calc.add`` and ``calc.div`` and the agents
``echo-a`` (svc.echo), ``critic-a`` (review.a) and ``bidder-a`` (score 0.4); ``b`` runs
``text.upper`` and ``critic-b`` (review.b) and ``bidder-b`` (score 0.9); any other host runs
``critic-HOST`` (review.HOST) only.

Prints ``{"ready": HOST}``, then reads one JSON command per line on stdin and prints one
JSON line per command:

- ``{"cmd": "peers", "want": [...]}``: waits until the mesh knows exactly these hosts.
- ``{"cmd": "directory"}``: agents (id, host) and capabilities (name, provider hosts).
- ``{"cmd": "invoke", "capability": ..., "params": {...}, "timeout_s": 5}``: the result.
- ``{"cmd": "request", "topic": ..., "payload": {...}}``: the reply's source and payload.
- ``{"cmd": "fanout", "topics": [...]}``: the replies' sources and payloads.
- ``{"cmd": "contract_net", "thread": ..., "bidders": N}``: winners and results.
- ``{"cmd": "stats"}``: the mesh's counters.

Exits when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from typing import Any

from loom import ActionCall, Event
from loom.actions import ActionBroker, NativeProvider, capability
from loom.agents import AgentRuntime, Context
from loom.collab import COLLAB_AWARD, COLLAB_CFP, Collab, json_payload
from loom_nats import NatsBus, StreamLimits
from loom_nats._remote_caps import CapabilityMesh, MeshProvider

LIMITS = StreamLimits(max_age=600, duplicate_window=60)


def say(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def responder(host: str, field: str):  # type: ignore[no-untyped-def]
    async def handler(ctx: Context, event: Event) -> None:
        await ctx.reply(event, "collab.reply", {field: host, "got": json_payload(event)})

    return handler


def bidder(host: str, score: float):  # type: ignore[no-untyped-def]
    async def handler(ctx: Context, event: Event) -> None:
        if event.type == COLLAB_CFP:
            await ctx.propose(event, score, {"host": host})
        elif event.type == COLLAB_AWARD and event.metadata.get("award_to") == ctx.sender:
            await ctx.reply(event, "collab.reply", {"done_by": host})

    return handler


async def setup(host: str, broker: ActionBroker, runtime: AgentRuntime) -> None:
    if host == "a":

        @capability("calc.add")
        async def add(a: int, b: int) -> dict[str, int | str]:
            return {"sum": a + b, "host": host}

        @capability("calc.div")
        async def div(a: int, b: int) -> float:
            return a / b

        broker.register(NativeProvider(add))
        broker.register(NativeProvider(div))
        await runtime.spawn("echo-a", responder(host, "echoed_by"), topics=["svc.echo"])
        await runtime.spawn("bidder-a", bidder(host, 0.4), topics=["thread.job.broadcast"])
    elif host == "b":

        @capability("text.upper")
        async def upper(text: str) -> dict[str, str]:
            return {"text": text.upper(), "host": host}

        broker.register(NativeProvider(upper))
        await runtime.spawn("bidder-b", bidder(host, 0.9), topics=["thread.job.broadcast"])
    await runtime.spawn(f"critic-{host}", responder(host, "reviewed_by"), topics=[f"review.{host}"])


async def command(
    line: str, mesh: CapabilityMesh, broker: ActionBroker, collab: Collab
) -> dict[str, Any]:
    cmd = json.loads(line)
    kind = cmd["cmd"]
    if kind == "peers":
        want = sorted(cmd["want"])
        while mesh.peers != want:
            await asyncio.sleep(0.05)
        return {"peers": mesh.peers}
    if kind == "directory":
        assert mesh.directory is not None
        agents = {r.agent_id: r.metadata.get("host", "local") for r in mesh.directory.all()}
        caps = {}
        for d in broker.list_capabilities():
            provider = broker.provider(d.name, d.version)
            caps[d.name] = list(provider.hosts) if isinstance(provider, MeshProvider) else "local"
        return {"agents": agents, "capabilities": caps}
    if kind == "invoke":
        call = ActionCall(
            cmd["capability"],
            json.dumps(cmd.get("params", {})).encode(),
            timeout_ms=int(cmd.get("timeout_s", 5) * 1000),
        )
        result = await broker.invoke(call)
        error = result.error
        return {
            "status": result.status.name,
            "output": json.loads(result.output) if result.output else None,
            "code": error.code if error else None,
            "message": error.message if error else None,
        }
    if kind == "request":
        reply = await collab.request(cmd["topic"], payload=cmd["payload"], timeout_s=10)
        return {"source": reply.sender, "payload": json_payload(reply)}
    if kind == "fanout":
        result = await collab.fanout(cmd["topics"], payload={"draft": 1}, timeout_s=10)
        return {"replies": sorted([json_payload(e)["reviewed_by"] for e in result.replies])}
    if kind == "contract_net":
        net = await collab.contract_net(
            cmd["thread"],
            {"task": "x"},
            window_s=10.0,
            bidders=cmd["bidders"],
            result_timeout_s=10.0,
        )
        return {
            "winners": list(net.winners),
            "scores": [p.score for p in net.proposals],
            "results": [json_payload(e) for e in net.results],
        }
    if kind == "stats":
        return asdict(mesh.stats)
    raise ValueError(f"unknown command {kind!r}")


async def main(args: argparse.Namespace) -> None:
    name = f"host-{args.host}"
    async with (
        NatsBus(args.url, prefix=args.prefix, name=name, limits=LIMITS) as bus,
        ActionBroker() as broker,
    ):
        runtime = AgentRuntime(bus, broker=broker)
        await setup(args.host, broker, runtime)
        mesh = CapabilityMesh(
            bus,
            broker,
            host_id=args.host,
            directory=runtime.directory,
            announce_interval_s=args.interval,
            expire_after_s=args.expire,
        )
        await mesh.start()
        collab = Collab(bus, f"host.{args.host}")
        say({"ready": args.host})
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            try:
                say(await command(line, mesh, broker, collab))
            except Exception as exc:  # noqa: BLE001 - reported to the test, which fails
                say({"error": f"{type(exc).__name__}: {exc}"})
        await mesh.close()
        await runtime.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("prefix")
    parser.add_argument("host")
    parser.add_argument("--interval", type=float, default=0.3)
    # Long enough that a loaded test machine does not take a slow host for a lost one.
    parser.add_argument("--expire", type=float, default=3.0)
    asyncio.run(main(parser.parse_args()))
