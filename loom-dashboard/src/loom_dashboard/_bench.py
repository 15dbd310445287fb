"""``loom bench`` scenarios of the dashboard (registered by ``loom_dashboard.plugin``).

- ``dashboard.tapped_publish``: one publisher and one Batched subscriber that reads, as in
  ``bus.publish_1sub`` and ``baseline.asyncio_queue``'s 1->1 figure; measured on a bare
  bus, then on a bus with a dashboard (its tap on ``>``) and one viewer streaming, in the
  same run, and on a bus with a plain reader on ``>`` (what any extra subscriber costs).
  Figures: ``throughput`` (with the dashboard), ``untapped_throughput``, ``overhead_pct``,
  ``plain_subscriber_throughput`` and ``tap_dropped`` (events the tap's drop-oldest queue
  let go). The viewer reads in its own process, as a browser would.
- ``dashboard.api_metrics``: ``GET /api/metrics`` round trips over HTTP on 127.0.0.1
  against the demo host: ``p50_us``, ``p99_us``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

from loom._action import QoS
from loom.bench import Figure, bench_event, percentile
from loom.bus import MemoryBus, Subscription
from loom_dashboard._observed import HostParts
from loom_dashboard._server import DashboardServer
from loom_dashboard._settings import DashboardSettings

__all__ = ["api_metrics", "tapped_publish"]

_TOPIC = "bench.dashboard.tick"


def _count(full: int, scale: float, minimum: int = 200) -> int:
    return max(minimum, int(full * scale))


async def _read(sub: Subscription, n: int) -> None:
    got = 0
    async for _ in sub:
        got += 1
        if got == n:
            return


async def _publish(bus: MemoryBus, n: int) -> float:
    sub = await bus.subscribe(_TOPIC, qos=QoS.BATCHED)
    reader = asyncio.create_task(_read(sub, n))
    await asyncio.sleep(0)
    publish = bus.publish
    start = time.perf_counter()
    for i in range(n):
        await publish(_TOPIC, bench_event(i))
    await reader
    elapsed = time.perf_counter() - start
    await sub.close()
    return n / elapsed


# The viewer runs in its own process, as a browser would: it reads the stream and counts.
_VIEWER = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port))
s.sendall(b"GET /api/stream HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
while s.recv(65536):
    pass
"""


async def _viewer(port: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", _VIEWER, "127.0.0.1", str(port), stdout=asyncio.subprocess.DEVNULL
    )


async def tapped_publish(scale: float) -> list[Figure]:
    """Publish throughput without and with a dashboard (and a viewer) on the bus."""
    n = _count(300_000, scale)
    async with MemoryBus() as bus:
        bare = await _publish(bus, n)
    async with MemoryBus() as bus:
        # What any second subscriber on ``>`` costs: a Realtime reader that does nothing.
        extra = await bus.subscribe(">", qos=QoS.REALTIME)
        drain = asyncio.create_task(_read(extra, 2**62))
        plain = await _publish(bus, n)
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain
    async with MemoryBus() as bus:
        settings = DashboardSettings(port=0, tick_s=0.1)
        async with DashboardServer(HostParts(bus), settings) as dashboard:
            viewer = await _viewer(dashboard.port)
            try:
                while dashboard.hub.joined == 0 and viewer.returncode is None:
                    await asyncio.sleep(0.01)
                tapped = await _publish(bus, n)
                dropped = dashboard.tap.dropped
            finally:
                with contextlib.suppress(ProcessLookupError):
                    viewer.kill()
                await viewer.wait()
    return [
        Figure("throughput", tapped, "events/s"),
        Figure("untapped_throughput", bare, "events/s"),
        Figure("overhead_pct", (bare - tapped) / bare * 100.0, "%"),
        Figure("plain_subscriber_throughput", plain, "events/s"),
        Figure("tap_dropped", float(dropped), "count"),
    ]


async def api_metrics(scale: float) -> list[Figure]:
    """``GET /api/metrics`` round trips against the demo host (its agents running)."""
    import httpx2

    from loom_dashboard._demo import DemoHost

    n = _count(2000, scale, minimum=20)
    demo = DemoHost(rate=20.0)
    await demo.start()
    try:
        async with (
            DashboardServer(demo, DashboardSettings(port=0)) as dashboard,
            httpx2.AsyncClient(base_url=dashboard.url, timeout=10.0) as client,
        ):
            await client.get("api/metrics")  # connection and first sample
            times: list[float] = []
            for _ in range(n):
                start = time.perf_counter()
                response = await client.get("api/metrics")
                times.append((time.perf_counter() - start) * 1e6)
                response.raise_for_status()
    finally:
        await demo.stop()
    times.sort()
    return [
        Figure("p50_us", percentile(times, 0.50), "us"),
        Figure("p99_us", percentile(times, 0.99), "us"),
    ]
