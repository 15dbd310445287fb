"""Bench scenarios of the collaboration primitives, each through real agents on a MemoryBus.

- ``collab.request_reply``: one agent awaits ``ctx.request`` to another, which replies;
  round-trip time per request. Judged against ``baseline.asyncio_queue``'s
  ``mailbox_future_rtt`` (a request on an ``asyncio.Queue`` mailbox answered through a
  future).
- ``collab.fanout10_first_k``: ``ctx.fanout`` to 10 responder agents with ``first_k(5)``;
  time per fanout and fanouts per second (the 5 replies that come after each fanout are
  dropped as late, and that work is included).
- ``collab.contract_net10``: rounds of ``ctx.contract_net`` with 10 bidder agents (the
  window closes once all 10 bid), one award, and the winner's result collected; time per
  round.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from loom._event import Event
from loom.agents import AgentRuntime, Context
from loom.bench import BENCH_PAYLOAD, Figure, percentile
from loom.bus import MemoryBus
from loom.collab._strategy import first_k

__all__ = ["contract_net10", "fanout10_first_k", "request_reply"]

_FANOUT = 10
_BIDDERS = 10
_THREAD = "bench"


async def _drive(
    runtime: AgentRuntime, bus: MemoryBus, loop_body: Callable[[Context, Event], Awaitable[None]]
) -> None:
    """Run ``loop_body`` inside the handler of a driver agent, as an app would."""
    done = asyncio.get_running_loop().create_future()

    async def driver(ctx: Context, event: Event) -> None:
        try:
            await loop_body(ctx, event)
        except BaseException as exc:
            done.set_exception(exc)
            raise
        done.set_result(None)

    await runtime.spawn("driver", driver, topics=["bench.go"])
    await bus.publish("bench.go", Event("bench.go"))
    await done


def _latency_figures(latencies: list[float]) -> list[Figure]:
    latencies.sort()
    return [
        Figure("p50_us", percentile(latencies, 0.50), "us"),
        Figure("p99_us", percentile(latencies, 0.99), "us"),
    ]


async def request_reply(scale: float) -> list[Figure]:
    """Sequential ``ctx.request`` round trips between two agents (20,000 at scale 1)."""
    n = max(100, int(20_000 * scale))
    latencies: list[float] = []
    async with MemoryBus() as bus:
        runtime = AgentRuntime(bus)

        async def server(ctx: Context, event: Event) -> None:
            await ctx.reply(event, "bench.reply", event.payload)

        await runtime.spawn("server", server, topics=["bench.server"])

        async def client(ctx: Context, event: Event) -> None:
            thread = ctx.thread(event)
            clock = time.perf_counter_ns
            request = ctx.request
            for _ in range(n):
                start = clock()
                await request("bench.server", "bench.request", BENCH_PAYLOAD, thread=thread)
                latencies.append((clock() - start) / 1000)

        await _drive(runtime, bus, client)
        await runtime.shutdown()
    return _latency_figures(latencies)


async def fanout10_first_k(scale: float) -> list[Figure]:
    """``ctx.fanout`` to 10 responders with ``first_k(5)`` (4,000 fanouts at scale 1)."""
    n = max(50, int(4_000 * scale))
    latencies: list[float] = []
    async with MemoryBus() as bus:
        runtime = AgentRuntime(bus)

        async def responder(ctx: Context, event: Event) -> None:
            await ctx.reply(event, "bench.reply", event.payload)

        topics = [f"bench.fan.{i}" for i in range(_FANOUT)]
        for i, topic in enumerate(topics):
            await runtime.spawn(f"responder{i}", responder, topics=[topic])
        strategy = first_k(5)
        elapsed = 0.0

        async def client(ctx: Context, event: Event) -> None:
            nonlocal elapsed
            thread = ctx.thread(event)
            clock = time.perf_counter_ns
            began = time.perf_counter()
            for _ in range(n):
                start = clock()
                await ctx.fanout(
                    topics, "bench.request", BENCH_PAYLOAD, strategy=strategy, thread=thread
                )
                latencies.append((clock() - start) / 1000)
            elapsed = time.perf_counter() - began

        await _drive(runtime, bus, client)
        await runtime.shutdown()
    return [*_latency_figures(latencies), Figure("throughput", n / elapsed, "fanouts/s")]


async def contract_net10(scale: float) -> list[Figure]:
    """Contract-net rounds with 10 bidders, 1 award and its result (2,000 at scale 1)."""
    n = max(30, int(2_000 * scale))
    latencies: list[float] = []
    async with MemoryBus() as bus:
        runtime = AgentRuntime(bus)
        broadcast = f"thread.{_THREAD}.broadcast"

        def bidder(score: float) -> Callable[[Context, Event], Awaitable[None]]:
            async def bid(ctx: Context, event: Event) -> None:
                if event.type == "collab.cfp":
                    await ctx.propose(event, score, event.payload)
                elif event.type == "collab.award" and event.metadata["award_to"] == ctx.sender:
                    await ctx.reply(event, "collab.reply", b"done")

            return bid

        for i in range(_BIDDERS):
            await runtime.spawn(f"bidder{i}", bidder(i / _BIDDERS), topics=[broadcast])

        async def manager(ctx: Context, event: Event) -> None:
            clock = time.perf_counter_ns
            for _ in range(n):
                start = clock()
                await ctx.contract_net(
                    _THREAD, BENCH_PAYLOAD, window_s=5.0, bidders=_BIDDERS, result_timeout_s=5.0
                )
                latencies.append((clock() - start) / 1000)

        await _drive(runtime, bus, manager)
        await runtime.shutdown()
    return [Figure("p50_us", percentile(sorted(latencies), 0.50), "us")]
