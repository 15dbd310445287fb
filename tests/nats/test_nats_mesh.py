"""Three Loom host processes on one NATS server: the agent directory, capability calls and
collaboration across hosts, and a host killed and restarted (mesh_host.py is each host)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.nats

HOST = str(Path(__file__).with_name("mesh_host.py"))


class Host:
    """A mesh_host.py process, driven by one JSON command per line."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc

    @classmethod
    async def start(cls, url: str, prefix: str, name: str) -> Host:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            HOST,
            url,
            prefix,
            name,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        host = cls(name, proc)
        assert await host.read() == {"ready": name}
        return host

    async def read(self, timeout: float = 30.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            assert self.proc.stderr is not None
            error = (await self.proc.stderr.read()).decode()
            raise AssertionError(f"host {self.name} exited ({self.proc.returncode}): {error}")
        data: dict[str, Any] = json.loads(raw)
        assert "error" not in data, f"host {self.name}: {data['error']}"
        return data

    async def ask(self, cmd: str, **fields: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}).encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.read()

    async def finish(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return await asyncio.wait_for(self.proc.wait(), 20)

    def kill(self) -> None:
        self.proc.kill()


@pytest.fixture
async def hosts(nats_url, prefix):
    started: list[Host] = []

    async def start(name: str) -> Host:
        host = await Host.start(nats_url, prefix, name)
        started.append(host)
        return host

    yield start
    for host in started:
        if host.proc.returncode is None:
            host.kill()
            await host.proc.wait()


async def test_three_hosts_share_agents_capabilities_and_collaboration(hosts):
    a, b, c = [await hosts(name) for name in "abc"]
    for host, others in ((a, ["b", "c"]), (b, ["a", "c"]), (c, ["a", "b"])):
        assert (await host.ask("peers", want=others))["peers"] == others

    # The directory of each host lists every host's agents, with where they run.
    directory = await c.ask("directory")
    assert directory["agents"] == {
        "bidder-a": "a",
        "bidder-b": "b",
        "critic-a": "a",
        "critic-b": "b",
        "critic-c": "local",
        "echo-a": "a",
    }
    assert directory["capabilities"] == {
        "calc.add": ["a"],
        "calc.div": ["a"],
        "text.upper": ["b"],
    }
    assert (await a.ask("directory"))["capabilities"]["text.upper"] == ["b"]

    # A capability registered on one host runs there when invoked from another.
    got = await c.ask("invoke", capability="calc.add", params={"a": 2, "b": 3})
    assert got == {"status": "OK", "output": {"sum": 5, "host": "a"}, "code": None, "message": None}
    got = await a.ask("invoke", capability="text.upper", params={"text": "hi"})
    assert got["output"] == {"text": "HI", "host": "b"}
    got = await b.ask("invoke", capability="calc.add", params={"a": 40, "b": 2})
    assert got["output"] == {"sum": 42, "host": "a"}

    # Failures keep their codes and messages across the wire.
    got = await c.ask("invoke", capability="calc.div", params={"a": 1, "b": 0})
    assert (got["status"], got["code"]) == ("ERROR", "CAPABILITY_ERROR")
    assert "division by zero" in got["message"]
    got = await c.ask("invoke", capability="calc.add", params={"a": "two", "b": 3})
    assert (got["status"], got["code"]) == ("ERROR", "INVALID_PARAMS")
    got = await c.ask("invoke", capability="calc.nothing", params={})
    assert got["code"] == "NOT_FOUND"

    # Request/reply, fanout and contract net between agents on different hosts.
    got = await c.ask("request", topic="svc.echo", payload={"text": "ping"})
    assert got == {
        "source": "agent.echo-a",
        "payload": {"echoed_by": "a", "got": {"text": "ping"}},
    }
    got = await b.ask("fanout", topics=["review.a", "review.b", "review.c"])
    assert got["replies"] == ["a", "b", "c"]
    got = await c.ask("contract_net", thread="job", bidders=2)
    assert got["winners"] == ["agent.bidder-b"]
    assert got["scores"] == [0.9, 0.4]
    assert got["results"] == [{"done_by": "b"}]

    stats = await a.ask("stats")
    # add from c and from b, div; the bad input was refused by the caller's broker, which
    # checks the input schema the announcement carried, without a round trip.
    assert stats["calls_served"] == 3
    for host in (a, b, c):
        assert await host.finish() == 0


async def test_a_killed_host_is_dropped_and_comes_back(hosts):
    a, b, c = [await hosts(name) for name in "abc"]
    assert (await c.ask("peers", want=["a", "b"]))["peers"] == ["a", "b"]
    assert (await c.ask("invoke", capability="calc.add", params={"a": 1, "b": 1}))["status"] == "OK"

    a.kill()  # no goodbye: the others notice it went quiet
    await a.proc.wait()
    assert (await c.ask("peers", want=["b"]))["peers"] == ["b"]
    directory = await c.ask("directory")
    assert "echo-a" not in directory["agents"] and "calc.add" not in directory["capabilities"]
    got = await c.ask("invoke", capability="calc.add", params={"a": 1, "b": 1})
    assert got["code"] == "NOT_FOUND"
    assert (await b.ask("peers", want=["c"]))["peers"] == ["c"]
    assert (await b.ask("stats"))["hosts_lost"] == 1

    again = await hosts("a")  # restarted under the same name: back in the mesh
    assert (await c.ask("peers", want=["a", "b"]))["peers"] == ["a", "b"]
    got = await c.ask("invoke", capability="calc.add", params={"a": 1, "b": 2})
    assert got["output"] == {"sum": 3, "host": "a"}, got
    for host in (again, b, c):
        assert await host.finish() == 0


# -- bad input, in one process with two meshes on the real server ------------------------


def test_bad_settings_are_refused_naming_them() -> None:
    from loom.actions import ActionBroker
    from loom.bus import MemoryBus
    from loom_nats._remote_caps import CapabilityMesh

    bus, broker = MemoryBus(), ActionBroker()
    for host_id in ("a.b", "", "a b", "*"):
        with pytest.raises(ValueError, match="host_id"):
            CapabilityMesh(bus, broker, host_id=host_id)
    with pytest.raises(ValueError, match="max_pending_calls"):
        CapabilityMesh(bus, broker, host_id="a", max_pending_calls=0)
    with pytest.raises(ValueError, match="expire_after_s"):
        CapabilityMesh(bus, broker, host_id="a", announce_interval_s=2, expire_after_s=1)


async def test_garbage_on_mesh_topics_is_counted_and_the_mesh_goes_on(nats_url, prefix):
    from loom import ActionCall, Event
    from loom.actions import ActionBroker, NativeProvider, capability
    from loom_nats import NatsBus, StreamLimits
    from loom_nats._remote_caps import MESH_ANNOUNCE_TOPIC, CapabilityMesh, call_topic

    @capability("twice")
    async def twice(n: int) -> int:
        return 2 * n

    @capability("twice")
    async def local_twice(n: int) -> int:
        return -n

    limits = StreamLimits(max_age=600, duplicate_window=60)
    async with (
        NatsBus(nats_url, prefix=prefix, limits=limits) as bus_x,
        NatsBus(nats_url, prefix=prefix, limits=limits) as bus_y,
        ActionBroker() as broker_x,
        ActionBroker() as broker_y,
    ):
        broker_x.register(NativeProvider(twice))
        x = CapabilityMesh(bus_x, broker_x, host_id="x", announce_interval_s=0.2)
        y = CapabilityMesh(bus_y, broker_y, host_id="y", announce_interval_s=0.2)
        async with x, y:
            await bus_y.publish(MESH_ANNOUNCE_TOPIC, Event("mesh.announce", b"{no", source="z"))
            await bus_y.publish(
                MESH_ANNOUNCE_TOPIC,
                Event("mesh.announce", b'{"host": "other"}', source="z"),
            )
            await bus_y.publish(
                call_topic("x"), Event("mesh.call", b"\xff\x00", metadata={"reply_to": "r.y"})
            )
            while "twice" not in {d.name for d in broker_y.list_capabilities()}:
                await asyncio.sleep(0.02)
            result = await broker_y.invoke(ActionCall("twice", b'{"n": 21}'))
            assert result.output == b"42"
            # both read both bad announcements; x also the bad call
            assert y.stats.malformed == 2 and x.stats.malformed == 3
            assert y.peers == ["x"]  # "z" never joined

            # A capability of this host wins over another host's of the same name.
            broker_y.register(NativeProvider(local_twice))
            await asyncio.sleep(0.5)  # announcements keep coming meanwhile
            assert (await broker_y.invoke(ActionCall("twice", b'{"n": 21}'))).output == b"-21"
            # ... and is not announced back as x's: x still runs its own.
            assert (await broker_x.invoke(ActionCall("twice", b'{"n": 1}'))).output == b"2"
        # x said goodbye on close; y dropped what it had from x.
        assert y.peers == [] and x.peers == []
