"""A small host to look at: agents on a memory bus doing request/reply, contract net,
capability calls (some failing) and model routing, at a steady pace.

``loom dashboard`` without a configuration runs it beside the dashboard. Tests and the
bench use it as a real host with real traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from typing import Any

from loom._event import Event
from loom.actions import ActionBroker, CapabilityError, ErrorCode, NativeProvider, capability
from loom.agents import Agent, AgentRuntime, Context, handles
from loom.bus import MemoryBus
from loom.collab import COLLAB_AWARD, COLLAB_CFP, COLLAB_REQUEST, CollabTimeout, json_payload
from loom.models import (
    DeterministicModel,
    Location,
    ModelRouter,
    Privacy,
    ProviderEntry,
    RoutingRequest,
    RulePolicy,
)

__all__ = ["DEMO_AGENTS", "DemoHost"]

#: The demo's agents, by id.
DEMO_AGENTS = ("frontdesk", "worker", "planner", "bidder-fast", "bidder-cheap")

_TICKS = "demo.ticks"
_WORK = "demo.work"
_PLAN = "demo.plan"
_PRIVACY = (Privacy.PUBLIC, Privacy.SENSITIVE, Privacy.PRIVATE, Privacy.LOCAL_ONLY)


@capability("text.upper")
def upper(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


@capability("demo.lookup")
def lookup(key: str) -> dict[str, str]:
    """Look a key up in a flaky store: one call in four fails (to show error rates)."""
    if random.random() < 0.25:
        raise CapabilityError(ErrorCode.CAPABILITY_ERROR, f"the store lost {key!r}")
    return {"key": key, "value": key[::-1]}


class Frontdesk(Agent):
    """On each tick: asks the worker (request/reply); every fourth tick, asks the planner,
    who runs a contract net among the bidders."""

    topics = (_TICKS,)

    @handles("demo.tick")
    async def on_tick(self, ctx: Context, event: Event) -> None:
        n = int(json_payload(event)["n"])
        with contextlib.suppress(CollabTimeout):
            await ctx.request(_WORK, COLLAB_REQUEST, {"text": f"job {n}"}, timeout_s=2.0)
        if n % 4 == 0:
            with contextlib.suppress(CollabTimeout):
                await ctx.request(_PLAN, COLLAB_REQUEST, {"job": n}, timeout_s=3.0)


class Worker(Agent):
    """Answers work requests through two capabilities."""

    topics = (_WORK,)

    @handles(COLLAB_REQUEST)
    async def on_request(self, ctx: Context, event: Event) -> None:
        text = str(json_payload(event)["text"])
        shouted = await ctx.tool("text.upper", {"text": text})
        found = await ctx.invoke("demo.lookup", {"key": text})
        await ctx.reply(event, {"result": shouted, "lookup_ok": found.error is None})


class Planner(Agent):
    """Answers plan requests by running a contract net among the bidders."""

    topics = (_PLAN,)

    @handles(COLLAB_REQUEST)
    async def on_request(self, ctx: Context, event: Event) -> None:
        job = json_payload(event)["job"]
        try:
            round_ = await ctx.contract_net(
                None, {"job": job}, window_s=0.5, bidders=2, result_timeout_s=1.0
            )
            winner: Any = round_.winners[0] if round_.winners else None
        except CollabTimeout:
            winner = None
        await ctx.reply(event, {"job": job, "winner": winner})


class Bidder(Agent):
    """Bids on every call for proposals; delivers when awarded."""

    topics = ("thread.*.broadcast",)

    def __init__(self, score: float) -> None:
        self.score = score

    @handles(COLLAB_CFP)
    async def on_cfp(self, ctx: Context, event: Event) -> None:
        await ctx.propose(event, self.score + random.random() * 0.2, {"eta_s": 1})

    @handles(COLLAB_AWARD)
    async def on_award(self, ctx: Context, event: Event) -> None:
        if event.metadata.get("award_to") == ctx.sender:
            await ctx.reply(event, "job.result", {"by": ctx.agent_id})


class DemoHost:
    """A running demo: :attr:`bus`, :attr:`runtime`, :attr:`broker`, :attr:`router`.

    Args:
        rate: ticks per second (each tick makes a request/reply and a routing decision).
    """

    def __init__(self, rate: float = 2.0) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        self.rate = rate
        self.bus = MemoryBus()
        self.broker = ActionBroker(default_timeout_ms=2000)
        self.runtime = AgentRuntime(self.bus, broker=self.broker)
        local, cloud = DeterministicModel("local-model"), DeterministicModel("cloud-model")
        self.router = ModelRouter(
            RulePolicy(),
            [
                ProviderEntry(name="local-model", model=local, location=Location.LOCAL),
                ProviderEntry(name="cloud-model", model=cloud, location=Location.CLOUD),
            ],
            bus=self.bus,
        )
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the bus, the capabilities, the agents and the ticker."""
        await self.bus.start()
        for fn in (upper, lookup):
            self.broker.register(NativeProvider(fn))
        await self.runtime.spawn("frontdesk", Frontdesk())
        await self.runtime.spawn("worker", Worker())
        await self.runtime.spawn("planner", Planner())
        await self.runtime.spawn("bidder-fast", Bidder(0.7))
        await self.runtime.spawn("bidder-cheap", Bidder(0.5))
        self._task = asyncio.create_task(self._tick(), name="loom-dashboard-demo")

    async def _tick(self) -> None:
        for n in itertools.count(1):
            self.ticks = n
            await self.bus.publish(
                _TICKS, Event("demo.tick", f'{{"n": {n}}}'.encode(), source="demo")
            )
            await self.router.route(
                RoutingRequest(privacy=_PRIVACY[n % len(_PRIVACY)], event_type="demo.tick")
            )
            await asyncio.sleep(1.0 / self.rate)

    async def stop(self) -> None:
        """Stop the ticker, the agents, the broker and the bus."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.runtime.shutdown()
        await self.broker.aclose()
        await self.router.aclose()
        await self.bus.shutdown()
