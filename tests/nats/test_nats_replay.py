"""Replay: ``replay_into`` (a handler, another bus, a file), ``loom replay`` with its
errors, and an agent's state rebuilt on a fresh host from its input's history."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loom import Event, QoS
from loom.agents import AgentRuntime, Context
from loom.bus import MemoryBus
from loom.cli import main
from loom.state import RocksDBStateStore
from loom_nats import NatsBus, StreamLimits, replay_into

pytestmark = pytest.mark.nats

LIMITS = StreamLimits(max_age=600, duplicate_window=60)


def line(i: int, topic_kind: str = "line") -> Event:
    return Event(topic_kind, f"#{i}".encode(), source="replay-test", metadata={"i": str(i)})


async def fill(bus: NatsBus) -> None:
    """log.a gets #0, #2, #4; log.b gets #1, #3, #5 (type "mark" for #5)."""
    for i in range(6):
        await bus.publish(f"log.{'ab'[i % 2]}", line(i, "mark" if i == 5 else "line"))


# -- the API ------------------------------------------------------------------------------


async def test_replay_into_a_handler_a_bus_and_a_file(bus: NatsBus, tmp_path: Path) -> None:
    await fill(bus)
    seen: list[tuple[str, str]] = []

    async def handler(topic: str, event: Event) -> None:
        seen.append((topic, event.metadata["i"]))

    assert await replay_into(bus, "log.>", handler, from_seq=1) == 6
    assert seen == [(f"log.{'ab'[i % 2]}", str(i)) for i in range(6)]

    plain: list[str] = []  # a plain function works too
    assert await replay_into(bus, "log.b", lambda t, e: plain.append(e.metadata["i"]), from_seq=1)
    assert plain == ["1", "3", "5"]

    async with MemoryBus() as local:
        sub = await local.subscribe("log.>", qos=QoS.BATCHED)
        assert await replay_into(bus, "log.>", local, from_seq=3, event_types=["line"]) == 3
        got = [sub.get_nowait() for _ in range(3)]
        assert [(t, e.metadata["i"]) for t, e in got] == [
            ("log.a", "2"),
            ("log.b", "3"),
            ("log.a", "4"),
        ]

    path = tmp_path / "history.jsonl"
    assert await replay_into(bus, "log.a", path, from_seq=1, limit=2) == 2
    records = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["topic"] for r in records] == ["log.a", "log.a"]
    assert [base64.b64decode(r["event"]["payload_b64"]) for r in records] == [b"#0", b"#2"]
    assert records[0]["seq"] < records[1]["seq"]

    stream = io.StringIO()
    start = datetime.now(UTC) - timedelta(minutes=5)
    assert await replay_into(bus, "log.*", stream, from_time=start) == 6
    assert len(stream.getvalue().splitlines()) == 6


async def test_replay_into_refuses_bad_targets(bus: NatsBus, nats_url: str) -> None:
    await fill(bus)
    with pytest.raises(ValueError, match="back into the stream"):
        await replay_into(bus, "log.>", bus, from_seq=1)
    async with NatsBus(nats_url, prefix=bus.prefix, limits=LIMITS) as twin:
        with pytest.raises(ValueError, match="back into the stream"):
            await replay_into(bus, "log.>", twin, from_seq=1)
    with pytest.raises(TypeError, match="not int"):
        await replay_into(bus, "log.>", 42, from_seq=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="from_seq"):
        await replay_into(bus, "log.>", lambda t, e: None, from_seq=0)
    # a bad call leaves the bus working
    assert await replay_into(bus, "log.a", lambda t, e: None, from_seq=1) == 3


# -- loom replay ------------------------------------------------------------------------


@pytest.fixture
def loom_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``loom_cli(*args) -> (exit code, stdout, stderr)`` of the real ``loom`` CLI."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_loom_replay_writes_the_history(
    nats_url: str, prefix: str, tmp_path: Path, loom_cli: Callable[..., tuple[int, str, str]]
) -> None:
    async def setup() -> None:
        async with NatsBus(nats_url, prefix=prefix, limits=LIMITS) as bus:
            await fill(bus)

    asyncio.run(setup())
    common = ["--servers", nats_url, "--prefix", prefix]
    code, out, err = loom_cli("replay", "log.>", "--from", "1", *common)
    assert code == 0, err
    records = [json.loads(x) for x in out.splitlines()]
    assert [r["event"]["metadata"]["i"] for r in records] == [str(i) for i in range(6)]
    assert "replayed 6 events" in err

    target = tmp_path / "b.jsonl"
    code, out, err = loom_cli(
        "replay", "log.b", "--from", "10m", "--types", "line", "-o", str(target), *common
    )
    assert (code, out) == (0, "")
    assert [json.loads(x)["event"]["metadata"]["i"] for x in target.read_text().splitlines()] == [
        "1",
        "3",
    ]
    code, out, _ = loom_cli("replay", "log.*", "--from", "2", "--limit", "2", *common)
    assert [json.loads(x)["seq"] for x in out.splitlines()] == [2, 3]
    # past the newest event: nothing, and that is no error
    code, out, err = loom_cli("replay", "log.>", "--from", "1000", *common)
    assert (code, out) == (0, "") and "replayed 0 events" in err


def test_loom_replay_errors(
    nats_url: str, prefix: str, loom_cli: Callable[..., tuple[int, str, str]]
) -> None:
    async def setup() -> None:
        async with NatsBus(nats_url, prefix=prefix, limits=LIMITS) as bus:
            await fill(bus)

    asyncio.run(setup())
    common = ["--servers", nats_url, "--prefix", prefix]
    code, _, err = loom_cli("replay", "log.>", "--from", "yesterday", *common)
    assert code == 2 and "--from takes a stream sequence" in err and "'yesterday'" in err
    code, _, err = loom_cli("replay", "log..x", "--from", "1", *common)
    assert code == 2 and "log..x" in err
    with pytest.raises(SystemExit) as exit_info:  # argparse: usage error
        loom_cli("replay", "log.>", "--from", "1", "--limit", "0", *common)
    assert exit_info.value.code == 2

    code, _, err = loom_cli("replay", "nothing.here", "--from", "1", *common)
    assert code == 1 and f"stream {prefix.upper()!r} holds no event on 'nothing.here'" in err
    code, _, err = loom_cli(
        "replay", "log.>", "--from", "1", "--servers", nats_url, "--prefix", "nosuch"
    )
    assert code == 1 and "no JetStream stream 'NOSUCH'" in err
    code, _, err = loom_cli("replay", "log.>", "--from", "1", "--servers", "nats://127.0.0.1:9")
    assert code == 1 and "cannot connect to NATS at nats://127.0.0.1:9" in err


# -- rebuilding an agent's state ---------------------------------------------------------


class Ledger:
    """Folds ``ledger.tx`` events into balances kept in the agent's state store."""

    def __init__(self) -> None:
        self.handled = 0

    async def __call__(self, ctx: Context, event: Event) -> None:
        tx = json.loads(event.payload)
        key = f"balance/{tx['account']}"
        old = int((await ctx.state.get(key) or b"0").decode())
        await ctx.state.put(key, str(old + tx["amount"]).encode())
        count = int((await ctx.state.get("count") or b"0").decode())
        await ctx.state.put("count", str(count + 1).encode())
        self.handled += 1


async def snapshot(store: RocksDBStateStore, agent_id: str) -> dict[str, bytes]:
    return {key: value async for key, value in store.for_agent(agent_id).scan()}


async def wait_handled(ledger: Ledger, n: int) -> None:
    async def until() -> None:
        while ledger.handled < n:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(until(), 20)


async def test_replaying_an_agents_input_rebuilds_its_state(
    nats_url: str, prefix: str, tmp_path: Path
) -> None:
    transactions = [{"account": f"acct{i % 3}", "amount": (i * 37) % 101 - 50} for i in range(60)]
    # The first host: the ledger agent runs on the NATS bus with a RocksDB store.
    async with NatsBus(nats_url, prefix=prefix, name="ledger-host", limits=LIMITS) as bus:
        store = RocksDBStateStore(tmp_path / "first")
        runtime = AgentRuntime(bus, state_store=store)
        ledger = Ledger()
        await runtime.spawn("ledger", ledger, topics=["ledger.>"])
        async with NatsBus(nats_url, prefix=prefix, limits=LIMITS) as teller:
            for i, tx in enumerate(transactions):
                await teller.publish(
                    f"ledger.{tx['account']}", Event("tx", json.dumps(tx).encode(), source="teller")
                )
                if i == 30:  # other traffic in the stream is not the ledger's input
                    await teller.publish("audit.note", Event("note", b"halfway"))
        await wait_handled(ledger, len(transactions))
        await runtime.shutdown()
        original = await snapshot(store, "ledger")
        await store.close()
    expected = {}
    for tx in transactions:
        key = f"balance/{tx['account']}"
        expected[key] = expected.get(key, 0) + tx["amount"]
    assert {k: int(v) for k, v in original.items()} == {**expected, "count": 60}

    # The host is gone with its store. A fresh host, a fresh store, a fresh agent: the
    # history of its input topic, replayed from the start, rebuilds the same state.
    async with NatsBus(nats_url, prefix=prefix, limits=LIMITS) as source, MemoryBus() as local:
        fresh = RocksDBStateStore(tmp_path / "second")
        assert await snapshot(fresh, "ledger") == {}
        runtime = AgentRuntime(local, state_store=fresh)
        rebuilt = Ledger()
        await runtime.spawn("ledger", rebuilt, topics=["ledger.>"])
        assert await replay_into(source, "ledger.>", local, from_seq=1) == 60
        await wait_handled(rebuilt, 60)
        await runtime.shutdown()
        assert await snapshot(fresh, "ledger") == original
        await fresh.close()


async def test_replay_reads_batches_of_core_publishes(nats_url: str, prefix: str) -> None:
    options: dict[str, Any] = {"publish_mode": "core", "realtime_batch": 16}
    async with NatsBus(nats_url, prefix=prefix, limits=LIMITS, **options) as bus:
        for i in range(40):  # one loop turn: the first alone, then batches of 16, 16 and 7
            await bus.publish("log.burst", line(i))
        assert await bus.settle()
        assert (await bus.stream_info()).state.messages == 4
        seen: list[tuple[int, str]] = []

        def handler(topic: str, event: Event) -> None:
            seen.append((0, event.metadata["i"]))

        assert await replay_into(bus, "log.burst", handler, from_seq=1) == 40
        assert [i for _, i in seen] == [str(i) for i in range(40)]
        stream = io.StringIO()
        assert await replay_into(bus, "log.burst", stream, from_seq=2, limit=20) == 20
        records = [json.loads(x) for x in stream.getvalue().splitlines()]
        assert [r["event"]["metadata"]["i"] for r in records] == [str(i) for i in range(1, 21)]
        assert [r["seq"] for r in records] == [2] * 16 + [3] * 4  # a batch shares its sequence
