"""Fixtures of the dashboard tests: a real host (memory bus, broker, runtime, router, and
two agents doing request/reply), a dashboard serving it over real HTTP on 127.0.0.1 on an
ephemeral port, and an HTTP client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx2
import pytest

from loom import Event
from loom.actions import ActionBroker, CapabilityError, ErrorCode, NativeProvider, capability
from loom.agents import Agent, AgentRuntime, Context, handles
from loom.bus import MemoryBus
from loom.collab import COLLAB_REQUEST, json_payload
from loom.models import DeterministicModel, Location, ModelRouter, ProviderEntry, RulePolicy
from loom_dashboard import DashboardServer, DashboardSettings

TIMEOUT = 10.0


@capability("text.upper")
def upper(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


@capability("text.fail")
def fail(text: str) -> str:
    """Always fails, with CAPABILITY_ERROR."""
    raise CapabilityError(ErrorCode.CAPABILITY_ERROR, f"cannot handle {text!r}")


class Asker(Agent):
    """On each ``go``: asks the answerer (request/reply) and counts the replies."""

    topics = ("ask.go",)

    def __init__(self) -> None:
        self.replies = 0

    @handles("go")
    async def on_go(self, ctx: Context, event: Event) -> None:
        reply = await ctx.request("answer.q", COLLAB_REQUEST, {"text": "hi"}, timeout_s=5.0)
        assert json_payload(reply)["text"] == "HI"
        self.replies += 1


class Answerer(Agent):
    """Answers each request through ``text.upper`` (and calls ``text.fail`` too)."""

    topics = ("answer.q",)

    @handles(COLLAB_REQUEST)
    async def on_request(self, ctx: Context, event: Event) -> None:
        text = await ctx.tool("text.upper", {"text": json_payload(event)["text"]})
        await ctx.invoke("text.fail", {"text": "x"})
        await ctx.reply(event, {"text": text})


@dataclass
class Host:
    """A running host: what the dashboard watches."""

    bus: MemoryBus
    runtime: AgentRuntime
    broker: ActionBroker
    router: ModelRouter
    asker: Asker

    async def exchange(self, n: int = 1) -> None:
        """Make ``n`` request/reply exchanges and wait for their replies."""
        want = self.asker.replies + n
        for _ in range(n):
            await self.bus.publish("ask.go", Event("go", b"{}"))
        await wait_for(lambda: self.asker.replies >= want, what=f"{n} replies")


async def wait_for(
    predicate: Callable[[], object], timeout: float = TIMEOUT, what: str = ""
) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    bus = MemoryBus()
    broker = ActionBroker(default_timeout_ms=5_000)
    broker.register(NativeProvider(upper))
    broker.register(NativeProvider(fail))
    runtime = AgentRuntime(bus, broker=broker)
    router = ModelRouter(
        RulePolicy(),
        [
            ProviderEntry(name="local", model=DeterministicModel("local"), location=Location.LOCAL),
            ProviderEntry(name="cloud", model=DeterministicModel("cloud"), location=Location.CLOUD),
        ],
        bus=bus,
    )
    asker = Asker()
    await runtime.spawn("asker", asker)
    await runtime.spawn("answerer", Answerer())
    yield Host(bus, runtime, broker, router, asker)
    await runtime.shutdown()
    await broker.aclose()
    await router.aclose()
    await bus.shutdown()


@pytest.fixture
def settings() -> DashboardSettings:
    """Ephemeral port, a fast stream tick: override in a test module to change them."""
    return DashboardSettings(port=0, tick_s=0.05)


@pytest.fixture
async def dashboard(host: Host, settings: DashboardSettings) -> AsyncIterator[DashboardServer]:
    async with DashboardServer(host, settings) as server:
        yield server


@pytest.fixture
async def client(dashboard: DashboardServer) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=dashboard.url, timeout=TIMEOUT) as client:
        yield client
