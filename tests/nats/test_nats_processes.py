"""Across processes: each side a separate Python process with its own NatsBus."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from loom import Event, QoS
from loom_nats import NatsBus, StreamLimits

pytestmark = pytest.mark.nats

PEER = str(Path(__file__).with_name("peer.py"))
LIMITS = StreamLimits(max_age=600, duplicate_window=60)


class Peer:
    """A peer.py process, read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, *args: str) -> Peer:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            PEER,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def line(self, timeout: float = 15.0) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            assert self.proc.stderr is not None
            error = (await self.proc.stderr.read()).decode()
            raise AssertionError(f"peer exited ({self.proc.returncode}): {error}")
        return raw.decode().strip()

    async def events(self, n: int) -> list[dict[str, object]]:
        return [json.loads(await self.line()) for _ in range(n)]

    async def finish(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return await asyncio.wait_for(self.proc.wait(), 15)

    def kill(self) -> None:
        self.proc.kill()


def ev(seq: int) -> Event:
    return Event("t.event", b"x", source="main", metadata={"seq": str(seq)})


async def test_another_process_receives_what_this_one_publishes(nats_url, prefix):
    realtime = await Peer.start("subscribe", nats_url, prefix, "feed.*", "--count", "5")
    batched = await Peer.start(
        "subscribe", nats_url, prefix, "feed.>", "--qos", "batched", "--count", "5"
    )
    assert await realtime.line() == "ready"
    assert await batched.line() == "ready"
    async with NatsBus(nats_url, prefix=prefix, limits=LIMITS) as bus:
        for i in range(5):
            assert await bus.publish("feed.news", ev(i)) == 0
        for peer in (realtime, batched):
            got = await peer.events(5)
            assert [e["seq"] for e in got] == list(range(5))
            assert {e["topic"] for e in got} == {"feed.news"}
            assert await peer.finish() == 0


async def test_this_process_receives_what_another_publishes(nats_url, prefix):
    async with NatsBus(nats_url, prefix=prefix, limits=LIMITS) as bus:
        sub = await bus.subscribe("remote.x", qos=QoS.BATCHED)
        publisher = await Peer.start("publish", nats_url, prefix, "remote.x", "--count", "20")
        assert await publisher.line() == "done"
        assert await publisher.finish() == 0
        got = [await asyncio.wait_for(sub.get(), 5) for _ in range(20)]
        assert [int(e.metadata["seq"]) for _, e in got] == list(range(20))
        assert {e.source for _, e in got} == {"peer"}
        assert bus.stats("remote.x").delivered == 20


async def test_request_reply_with_another_process(nats_url, prefix):
    echo = await Peer.start("echo", nats_url, prefix)
    assert await echo.line() == "ready"
    async with NatsBus(nats_url, prefix=prefix, limits=LIMITS) as bus:
        replies = await bus.subscribe("agent.main.replies")
        for i in range(10):
            request = ev(i).with_metadata({"reply_to": "agent.main.replies"})
            await bus.publish("svc.echo", request)
            _, reply = await asyncio.wait_for(replies.get(), 5)
            assert (reply.type, reply.metadata["seq"], reply.source) == (
                "echo.reply",
                str(i),
                "peer",
            )
    assert await echo.finish() == 0


async def test_killed_subscriber_gets_what_it_missed_on_restart(nats_url, prefix):
    """A durable Batched subscriber killed with SIGKILL loses nothing: restarted under the
    same bus name, it gets every event published while it was gone (at least once)."""
    args = ("subscribe", nats_url, prefix, "work.>", "--qos", "batched", "--name", "worker-1")
    first = await Peer.start(*args, "--count", "1000")
    assert await first.line() == "ready"
    async with NatsBus(nats_url, prefix=prefix, limits=LIMITS) as bus:
        for i in range(5):
            await bus.publish("work.item", ev(i))
        assert [e["seq"] for e in await first.events(5)] == list(range(5))
        first.kill()
        await first.proc.wait()
        for i in range(5, 25):  # published while nobody holds the durable
            await bus.publish("work.item", ev(i))
        again = await Peer.start(*args, "--count", "1000", "--until", "24")
        assert await again.line() == "ready"
        got: list[int] = []
        while not got or got[-1] != 24:
            got.append(json.loads(await again.line())["seq"])
        # An acknowledgement the killed process had not sent yet comes back as a
        # redelivery of one of 0..4, first: at least once, nothing lost, in order.
        redelivered, missed = got[: len(got) - 20], got[len(got) - 20 :]
        assert missed == list(range(5, 25))
        assert redelivered == sorted(set(redelivered))
        assert set(redelivered) <= set(range(5))
        assert await again.finish() == 0
