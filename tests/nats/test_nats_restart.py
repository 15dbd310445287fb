"""A NATS server restarted under a running bus: the bus reconnects, its subscriptions
resume, JetStream loses nothing, and publishes wait out the outage within their bound.

Each test runs its own server through scripts/nats-server.sh on a free port (its store
and pid file under the test's temporary directory), so stopping it disturbs nobody.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from loom import Event, QoS
from loom.bus import Backpressure
from loom_nats import CONNECTION_TOPIC, NatsBus, NatsUnavailableError, StreamLimits

from .conftest import SCRIPT, free_port, nats_server_binary

pytestmark = pytest.mark.nats

LIMITS = StreamLimits(max_age=600, duplicate_window=60)


class ScriptServer:
    """The server scripts/nats-server.sh starts on one port, with stop and start."""

    def __init__(self, state: Path) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LOOM_NATS_STATE": str(state)}

    def _script(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), "--no-install", "--port", str(self.port), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )

    def start(self) -> None:
        done = self._script()
        assert done.returncode == 0, done.stderr
        assert "ready on" in done.stderr or "answers on" in done.stderr

    def stop(self) -> None:
        done = self._script("--stop")
        assert done.returncode == 0 and "stopped" in done.stderr, done.stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ScriptServer]:
    if nats_server_binary() is None:
        pytest.skip("no nats-server binary (scripts/nats-server.sh installs Debian's)")
    server = ScriptServer(tmp_path)
    server.start()
    yield server
    server._script("--stop")


def ev(seq: int) -> Event:
    return Event("t.event", b"x", metadata={"seq": str(seq)})


async def until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_script_is_idempotent_and_stops_only_its_own(server: ScriptServer):
    again = server._script()
    assert again.returncode == 0 and "answers on" in again.stderr
    bad = subprocess.run(["bash", str(SCRIPT), "--port", "x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--port takes a number" in bad.stderr
    other = ScriptServer(Path(server.env["LOOM_NATS_STATE"]))
    nothing = other._script("--stop")
    assert nothing.returncode == 0 and "no server started by this script" in nothing.stderr


async def test_server_restart_mid_stream(server: ScriptServer):
    bus = NatsBus(server.url, prefix="rs", limits=LIMITS, reconnect_wait=0.1, outage_timeout=30)
    publisher = NatsBus(
        server.url, prefix="rs", limits=LIMITS, reconnect_wait=0.1, publish_mode="core"
    )
    await bus.start()
    await publisher.start()
    try:
        realtime = await bus.subscribe("m.>")
        batched = await bus.subscribe("m.>", qos=QoS.BATCHED)
        news = await bus.subscribe(CONNECTION_TOPIC)
        for i in range(3):
            assert await bus.publish("m.x", ev(i)) == 2
        await bus.settle()
        assert realtime.qsize() == batched.qsize() == 3

        server.stop()
        await until(lambda: not bus.nats_stats().connected)
        waiting = asyncio.ensure_future(bus.publish("m.x", ev(3)))  # ack mode: waits
        await publisher.publish("m.x", ev(4))  # core mode: into the client's buffer
        await asyncio.sleep(0.5)
        assert not waiting.done()

        server.start()  # the same store: the stream and its consumer are back
        assert await asyncio.wait_for(waiting, 30) == 2
        await until(lambda: bus.nats_stats().connected and publisher.nats_stats().connected)
        for i in range(5, 8):
            await bus.publish("m.x", ev(i))
        got = []
        while len(got) < 8:
            _, event = await asyncio.wait_for(batched.get(), 10)
            got.append(int(event.metadata["seq"]))
        assert sorted(got) == list(range(8))  # JetStream: nothing lost
        assert got[:3] == [0, 1, 2] and got[-3:] == [5, 6, 7]
        await bus.settle()
        live = [
            int(e.metadata["seq"])
            for _, e in [realtime.get_nowait() for _ in range(realtime.qsize())]
        ]
        assert live[:3] == [0, 1, 2] and live[-3:] == [5, 6, 7]  # Realtime resumed
        stats = bus.nats_stats()
        assert stats.disconnects >= 1 and stats.reconnects >= 1
        assert stats.outage_seconds > 0.4
        # The outage reported to the bus's own subscribers, as events.
        reports = [news.get_nowait()[1] for _ in range(news.qsize())]
        assert [e.type for e in reports][:2] == ["bus.disconnected", "bus.reconnected"]
        assert reports[0].metadata["server"] == server.url
        assert float(reports[1].metadata["outage_s"]) > 0.4
    finally:
        await publisher.shutdown()
        await bus.shutdown()


async def test_publish_fails_clearly_when_the_outage_outlasts_its_bound(server: ScriptServer):
    bus = NatsBus(
        server.url,
        prefix="ro",
        limits=LIMITS,
        reconnect_wait=0.1,
        outage_timeout=0.3,
        max_waiting_publishes=2,
    )
    await bus.start()
    try:
        sub = await bus.subscribe("o.x", qos=QoS.BATCHED)
        server.stop()
        await until(lambda: not bus.nats_stats().connected)
        with pytest.raises(NatsUnavailableError, match=r"unreachable for 0\.3 s"):
            await bus.publish("o.x", ev(0))
        waiting = [asyncio.ensure_future(bus.publish("o.x", ev(i))) for i in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(NatsUnavailableError, match="2 publishes already wait"):
            await bus.publish("o.x", ev(3))
        for task in waiting:
            with pytest.raises(NatsUnavailableError):
                await task
        with pytest.raises(NatsUnavailableError, match=r"subscribe to 'ro\.o\.y'"):
            await bus.subscribe("o.y", qos=QoS.BATCHED)
        server.start()
        await until(lambda: bus.nats_stats().connected)
        assert await bus.publish("o.x", ev(4)) == 1  # the bus goes on
        _, event = await asyncio.wait_for(sub.get(), 10)
        assert event.metadata["seq"] == "4"
    finally:
        await bus.shutdown()


async def test_consumers_are_recreated_when_the_server_forgets_them(server: ScriptServer):
    """A memory-stored stream does not survive a restart: the bus makes it again, and its
    consumers too, and goes on delivering."""
    memory = StreamLimits(max_age=600, duplicate_window=60, storage="memory")
    async with NatsBus(server.url, prefix="rm", limits=memory, reconnect_wait=0.1) as bus:
        sub = await bus.subscribe("k.x", qos=QoS.BATCHED)
        await bus.publish("k.x", ev(0))
        assert (await asyncio.wait_for(sub.get(), 5))[1].metadata["seq"] == "0"
        server.stop()
        await until(lambda: not bus.nats_stats().connected)
        server.start()
        await until(lambda: bus.nats_stats().connected)
        await until(lambda: bus.nats_stats().consumers_recreated >= 1)
        assert await bus.publish("k.x", ev(1)) == 1
        _, event = await asyncio.wait_for(sub.get(), 10)
        assert event.metadata["seq"] == "1"


async def test_realtime_loss_during_an_outage_is_counted(server: ScriptServer):
    """A publisher that comes back before the subscriber publishes into the subscriber's
    outage: JetStream keeps all of it, and the subscriber's Realtime loss is counted
    (stats, metrics' drop reason, an event) as exactly what it published but never got."""
    subscriber = NatsBus(server.url, prefix="rl", limits=LIMITS, reconnect_wait=3.0)
    publisher = NatsBus(
        server.url, prefix="rl", limits=LIMITS, reconnect_wait=0.05, publish_mode="core"
    )
    await subscriber.start()
    await publisher.start()
    try:
        realtime = await subscriber.subscribe("m.>", backpressure=Backpressure(queue_size=1000))
        typed = await subscriber.subscribe("m.>", event_types=["other.type"])
        batched = await subscriber.subscribe(
            "m.>", qos=QoS.BATCHED, backpressure=Backpressure(queue_size=1000)
        )
        news = await subscriber.subscribe(CONNECTION_TOPIC)
        published = 0
        for i in range(3):
            await publisher.publish("m.x", ev(i))
            published += 1
        await publisher.flush()
        await subscriber.settle()
        assert realtime.qsize() == 3

        server.stop()
        await until(lambda: not subscriber.nats_stats().connected)
        await until(lambda: not publisher.nats_stats().connected)
        server.start()
        await until(lambda: publisher.nats_stats().connected)
        away_throughout = not subscriber.nats_stats().connected
        for i in range(3, 53):  # the subscriber is (most likely) still away
            await publisher.publish("m.y" if i % 2 else "m.x", ev(i))
            published += 1
        await publisher.flush()
        away_throughout = away_throughout and not subscriber.nats_stats().connected

        await until(lambda: subscriber.nats_stats().outages_counted >= 1, timeout=20)
        for i in range(53, 56):
            await publisher.publish("m.x", ev(i))
            published += 1
        await publisher.flush()
        await subscriber.settle()

        received = realtime.qsize()
        stats = subscriber.nats_stats()
        missed = sum(stats.realtime_missed.values())
        assert missed == published - received
        if away_throughout:
            assert missed == 50
            assert stats.realtime_missed == {"rl.m.x": 25, "rl.m.y": 25}
        # Per topic, as drops of the subscriptions that missed them (the typed one takes
        # none of these events, so it missed none): what metrics report.
        x, y = subscriber.stats("m.x"), subscriber.stats("m.y")
        assert x is not None and y is not None
        outage_drops = x.dropped_by_reason.get("OUTAGE", 0) + y.dropped_by_reason.get("OUTAGE", 0)
        assert outage_drops == missed
        assert typed.qsize() == 0
        # JetStream lost nothing.
        got = [int(batched.get_nowait()[1].metadata["seq"]) for _ in range(batched.qsize())]
        assert sorted(got) == list(range(published))
        # The outage reported as events: down, back, and what it cost.
        reports = [news.get_nowait()[1] for _ in range(news.qsize())]
        assert [e.type for e in reports] == [
            "bus.disconnected",
            "bus.reconnected",
            "bus.realtime_missed",
        ]
        assert reports[2].metadata["missed"] == str(missed)
        assert reports[2].metadata["deliveries"] == str(outage_drops)
    finally:
        await publisher.shutdown()
        await subscriber.shutdown()
