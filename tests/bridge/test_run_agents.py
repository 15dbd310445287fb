"""Several remote agents in one process: ``run_agents`` and side-by-side ``run()`` share one
set of SIGINT/SIGTERM handlers and put back the ones that were there. A real bridge here, the
agents in a real child process (agents_child.py), real signals."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from loom import Event, QoS
from loom.agents import Agent
from loom_bridge import BridgeServer, NotConnectedError, RemoteAgent, run_agents

CHILD = Path(__file__).with_name("agents_child.py")
TIMEOUT = 30.0  # a guard against a hang, not a speed check


class Child:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def read_until(self, text: str) -> None:
        assert self.process.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            while text not in self.lines:
                line = await self.process.stdout.readline()
                if not line:
                    raise AssertionError(f"child ended before {text!r}; it printed {self.lines}")
                self.lines.append(line.decode().rstrip("\n"))

    async def finish(self) -> tuple[int, list[str], str]:
        async with asyncio.timeout(TIMEOUT):
            out, err = await self.process.communicate()
        self.lines += out.decode().splitlines()
        assert self.process.returncode is not None
        return self.process.returncode, self.lines, err.decode()


@pytest.fixture
async def child():
    children: list[Child] = []

    async def start(mode: str, address: str) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(CHILD), mode, address,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        children.append(Child(process))
        return children[-1]

    yield start
    for item in children:
        if item.process.returncode is None:
            item.process.kill()
            await item.process.communicate()


async def _ping(bus, name: str, payload: bytes) -> None:
    sub = await bus.subscribe(f"rs.{name}", qos=QoS.BATCHED)
    try:
        await bus.publish(f"rq.{name}", Event("ping", payload))
        _, event = await asyncio.wait_for(sub.get(), TIMEOUT)
        assert (event.type, event.payload, event.sender) == ("pong", payload, f"agent.{name}")
    finally:
        await sub.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_run_agents_runs_two_agents_and_one_signal_stops_both(
    bridge: BridgeServer, bus, child, until, sig
):
    proc = await child("together", bridge.address)
    await proc.read_until("started")
    await until(lambda: {s.agent_id for s in bridge.hub.sessions()} == {"alpha", "beta"})
    await _ping(bus, "alpha", b"a")
    await _ping(bus, "beta", b"b")
    byes = await bus.subscribe("rs.*", qos=QoS.BATCHED)
    proc.process.send_signal(sig)
    code, lines, err = await proc.finish()
    assert code == 0, (lines, err)
    assert lines[-1] == "stopped"
    # Both agents stopped cleanly: their on_stop ran and what it sent was flushed.
    got = {(await asyncio.wait_for(byes.get(), TIMEOUT))[1].sender for _ in range(2)}
    assert got == {"agent.alpha", "agent.beta"}
    await until(lambda: not bridge.hub.sessions())


async def test_a_signal_while_connecting_stops_at_once(child):
    # Nothing listens there: the agents keep trying (connect timeout 30 s) until the signal.
    proc = await child("together", "127.0.0.1:9")
    await proc.read_until(f"pid {proc.process.pid}")
    await asyncio.sleep(0.5)  # the handlers are installed before the first connection try
    proc.process.send_signal(signal.SIGINT)
    code, lines, err = await proc.finish()
    assert code == 0, (lines, err)
    assert lines[-1] == "stopped before connecting"
    assert "Traceback" not in err


async def test_side_by_side_runs_survive_one_ending(bridge: BridgeServer, bus, child, raw, until):
    proc = await child("side_by_side", bridge.address)
    await proc.read_until("started")
    # Another connection takes alpha's id: alpha's run() ends for good (REPLACED)...
    client = raw()
    response = await client.register("alpha")
    assert response.success
    stream = client.stream()
    await stream.ack("alpha")
    await proc.read_until("alpha ended: LinkClosed")
    # ...and beta, still running, keeps the shared handlers: SIGTERM stops it cleanly
    # (before, alpha's end removed them and SIGTERM killed the process).
    await _ping(bus, "beta", b"still here")
    proc.process.send_signal(signal.SIGTERM)
    code, lines, err = await proc.finish()
    assert code == 0, (lines, err)
    assert lines[-1] == "stopped"


async def test_the_handlers_that_were_there_come_back(bridge: BridgeServer, child):
    proc = await child("restore", bridge.address)
    await proc.read_until("started")
    proc.process.send_signal(signal.SIGTERM)
    code, lines, err = await proc.finish()
    assert code == 0, (lines, err)
    assert lines[-3:] == [
        "app handler ran during the run: False",
        "SIGINT handler back: True",
        "SIGTERM handler back: True",
    ]


# -- in this process, without signals ------------------------------------------------------


async def test_run_agents_refuses_no_agents_and_duplicate_ids(client_config):
    with pytest.raises(ValueError, match="no agents"):
        await run_agents()
    one = RemoteAgent("twin", Agent(), config=client_config)
    two = RemoteAgent("twin", Agent(), config=client_config)
    with pytest.raises(ValueError, match="given twice: twin"):
        await run_agents(one, two)
    assert not one.connected and not two.connected


async def test_a_refused_start_stops_the_others_and_raises(make_bridge, client_config, until):
    server = await make_bridge(token="right")
    good = RemoteAgent(
        "good", Agent(), config=client_config.replace(address=server.address, token="right")
    )
    bad = RemoteAgent(
        "bad", Agent(), config=client_config.replace(address=server.address, token="wrong")
    )
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(NotConnectedError, match="agent 'bad': UNAUTHENTICATED"):
            await run_agents(good, bad)
    assert not good.connected and not bad.connected
    await until(lambda: not server.hub.sessions())
