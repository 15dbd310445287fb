"""A second process on the bus, driven by the loom-nats tests.

peer.py subscribe URL PREFIX PATTERN [--qos realtime|batched] [--name NAME] [--count N]
                  [--until SEQ]
    prints "ready" once subscribed, then one JSON line per event read
    ({"topic": ..., "seq": ..., "source": ...}), and exits after N events or after the
    event whose metadata seq is SEQ.
peer.py publish URL PREFIX TOPIC --count N
    publishes N events (metadata seq 0..N-1), prints "done", exits.
peer.py echo URL PREFIX
    answers every event on svc.echo by publishing it to its metadata "reply_to"
    topic; prints "ready"; exits when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from loom import Event, QoS
from loom_nats import NatsBus, StreamLimits

LIMITS = StreamLimits(max_age=600, duplicate_window=60)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def subscribe(args: argparse.Namespace) -> None:
    qos = QoS.BATCHED if args.qos == "batched" else QoS.REALTIME
    async with NatsBus(args.url, prefix=args.prefix, name=args.name, limits=LIMITS) as bus:
        sub = await bus.subscribe(args.pattern, qos=qos)
        say("ready")
        for _ in range(args.count):
            topic, event = await sub.get()
            seq = int(event.metadata["seq"])
            say(json.dumps({"topic": topic, "seq": seq, "source": event.source}))
            if seq == args.until:
                break


async def publish(args: argparse.Namespace) -> None:
    async with NatsBus(args.url, prefix=args.prefix, limits=LIMITS) as bus:
        for i in range(args.count):
            await bus.publish(
                args.topic, Event("peer.event", b"x", source="peer", metadata={"seq": str(i)})
            )
        say("done")


async def echo(args: argparse.Namespace) -> None:
    async with NatsBus(args.url, prefix=args.prefix, limits=LIMITS) as bus:

        async def answer(topic: str, event: Event) -> None:
            reply = Event("echo.reply", event.payload, source="peer", metadata=dict(event.metadata))
            await bus.publish(event.metadata["reply_to"], reply)

        await bus.subscribe("svc.echo", handler=answer)
        say("ready")
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("subscribe")
    sub.add_argument("url")
    sub.add_argument("prefix")
    sub.add_argument("pattern")
    sub.add_argument("--qos", default="realtime")
    sub.add_argument("--name")
    sub.add_argument("--count", type=int, default=1)
    sub.add_argument("--until", type=int, default=-1, help="stop after the event with this seq")
    pub = commands.add_parser("publish")
    pub.add_argument("url")
    pub.add_argument("prefix")
    pub.add_argument("topic")
    pub.add_argument("--count", type=int, default=1)
    ech = commands.add_parser("echo")
    ech.add_argument("url")
    ech.add_argument("prefix")
    args = parser.parse_args()
    asyncio.run({"subscribe": subscribe, "publish": publish, "echo": echo}[args.command](args))


if __name__ == "__main__":
    main()
