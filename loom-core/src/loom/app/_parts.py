"""The running pieces of an app: opened in order, closed in reverse, counted on the way."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from loom.actions import ActionBroker
from loom.agents import Agent, AgentInfo, AgentRuntime
from loom.app._activity import Activity
from loom.app._errors import AppConfigError, AppError
from loom.app._report import AppStatus, RunReport
from loom.bus import EventBus
from loom.models import ModelRouter

if TYPE_CHECKING:
    from loom.app._compose import Plan
    from loom.app._config import AppConfig

__all__ = ["Parts"]

log = logging.getLogger("loom.app")


class Parts:
    """What one app opened: state store, bus, broker, router, runtime, telemetry, the
    participants and the sources.

    Args:
        source: the configuration's file, for messages.
        set_phase: told each step of opening and closing.
        stop_timeout_s: how long each part gets to stop.
    """

    def __init__(
        self, source: str, set_phase: Callable[[str], None], stop_timeout_s: float
    ) -> None:
        self.source = source
        self.set_phase = set_phase
        self.stop_timeout_s = stop_timeout_s
        self.activity = Activity()
        self.state: Any = None
        self.bus: EventBus | None = None
        self.broker: ActionBroker | None = None
        self.router: ModelRouter | None = None
        self.runtime: AgentRuntime | None = None
        self.telemetry: Any = None
        #: ``telemetry.describe()`` once it started (it says "shut down" afterwards).
        self.telemetry_lines: list[str] = []
        self.participants: list[tuple[str, Any]] = []
        self.sources: list[tuple[str, Any]] = []
        self.notes: list[str] = []
        self._bus_started = False
        self._bus_closed = False
        self._state_closed = False
        self._bus_totals: tuple[int, int, int, dict[str, int]] | None = None
        self._final: AppStatus | None = None

    # -- opening ---------------------------------------------------------------------------

    async def open(self, config: AppConfig, plan: Plan) -> None:
        """Open the state store and the bus, then build the broker (with the plan's
        capabilities), the router, the runtime and telemetry.

        Raises:
            AppConfigError: a factory refused its options.
            AppError: the store or the bus could not open.
        """
        state, bus = config.state.backend, config.bus.backend
        self.set_phase(f"opening the {state} state store")
        what = f"state store {state!r}"
        self.state = self._make(what, "state.options", plan.state_factory, plan.state_options)
        self.set_phase(f"starting the {bus} bus")
        what = f"bus backend {bus!r}"
        self.bus = self._make(what, "bus.options", plan.bus_factory, plan.bus_options)
        try:
            await self.bus.start()
        except Exception as exc:
            raise AppError(f"bus backend {bus!r} could not start: {exc}") from exc
        self._bus_started = True
        broker = self.broker = ActionBroker()
        for record in plan.capabilities:
            broker.register_contribution(record)
        self.router = ModelRouter(plan.policy, plan.models, bus=self.bus, topic=config.router.topic)
        self.runtime = AgentRuntime(self.bus, state_store=self.state, broker=broker)
        self._start_telemetry(plan)

    async def start_agents(self, plan: Plan) -> None:
        """Spawn the agents, start the participants, then the sources.

        Each is listed before it starts, so that one failing half-way is stopped too.

        Raises:
            AppError: a participant or a source could not start.
        """
        assert self.runtime is not None and self.bus is not None  # noqa: PT018  # opened
        for agent in plan.agents:
            if agent.kind == "agent":
                obj: Agent = agent.obj
                self.activity.track(agent.entry.id, obj)
                await self.runtime.spawn(agent.entry.id, obj, topics=agent.entry.topics)
        for agent in plan.agents:
            if agent.kind == "participant":
                self.participants.append((agent.entry.id, agent.obj))
                await _call(f"agent {agent.entry.id!r}", agent.obj.start(self.bus))
        for item in plan.sources:
            self.set_phase(f"starting source {item.name!r}")
            self.sources.append((item.name, item.obj))
            await _call(f"source {item.name!r}", item.obj.start(self.bus))

    def _make(
        self, what: str, key: str, factory: Callable[..., Any], options: dict[str, Any]
    ) -> Any:
        try:
            return factory(**options)
        except TypeError as exc:  # options the factory does not take: the file's problem
            raise AppConfigError.one(
                self.source, key, f"{what} refused these options: {exc}"
            ) from exc
        except Exception as exc:
            raise AppError(f"{what} could not open: {type(exc).__name__}: {exc}") from exc

    def _start_telemetry(self, plan: Plan) -> None:
        if plan.telemetry_config is None:
            return
        try:
            from loom.telemetry import configure  # type: ignore[import-not-found,unused-ignore]

            telemetry = configure(plan.telemetry_config)
            telemetry.instrument(
                bus=self.bus, runtime=self.runtime, broker=self.broker, router=self.router
            )
        except Exception as exc:  # noqa: BLE001  # an app runs without telemetry rather than not at all
            log.error("telemetry could not start: %s: %s", type(exc).__name__, exc)
            self.notes.append(f"telemetry: could not start ({type(exc).__name__}: {exc})")
            return
        self.telemetry = telemetry
        try:
            self.telemetry_lines = [str(line) for line in telemetry.describe()]
        except Exception as exc:  # noqa: BLE001  # a description is not worth a crash
            self.telemetry_lines = [f"describe() failed: {type(exc).__name__}: {exc}"]

    # -- while running -----------------------------------------------------------------------

    async def until_idle(self) -> None:
        """Return once the agents are idle (see :class:`Activity`)."""
        if self.runtime is not None and self.bus is not None:
            await self.activity.until_idle(self.runtime, self.bus)

    def snapshot(self, phase: str, elapsed_s: float) -> AppStatus:
        """The counters now (the last ones once the agents are stopped)."""
        if self._final is not None:
            return dataclasses.replace(self._final, phase=phase, elapsed_s=elapsed_s)
        published = dropped = handled = mailbox = failures = 0
        if self.bus is not None and self._bus_started:
            for stats in self.bus.all_stats().values():
                published += stats.published
                dropped += stats.dropped
        if self.runtime is not None:
            for agent_id in self.runtime.agent_ids():
                info = self.runtime.info(agent_id)
                handled += info.processed
                mailbox += info.mailbox
                failures += info.failures
        broker, router = self.broker, self.router
        return AppStatus(
            phase=phase,
            elapsed_s=elapsed_s,
            published=published,
            dropped=dropped,
            handled=handled,
            busy=self.activity.busy,
            mailbox=mailbox,
            agent_failures=failures,
            actions_ok=broker.stats.ok if broker is not None else 0,
            actions_failed=sum(broker.stats.failed.values()) if broker is not None else 0,
            decisions=sum(router.stats.decisions.values()) if router is not None else 0,
            sources_done=sum(1 for _, s in self.sources if _finished(s)),
            sources=len(self.sources),
        )

    # -- closing ---------------------------------------------------------------------------

    async def stop_sources(self, errors: list[str]) -> list[dict[str, Any]]:
        """Stop every source (idempotent); returns their statuses."""
        for name, source in reversed(self.sources):
            self.set_phase(f"stopping source {name!r}")
            await _step(errors, f"source {name!r}", source.stop(), self.stop_timeout_s)
        return [_source_status(name, source) for name, source in self.sources]

    async def close(
        self,
        errors: list[str],
        infos: list[AgentInfo],
        shutdown_hooks: Callable[[], Awaitable[None]] | None,
    ) -> None:
        """Stop and close what was opened, in order: sources, participants, agents (their
        counters go to ``infos``), the plugins' shutdown hooks, router, broker, bus,
        telemetry, state store. Every step runs; what fails is added to ``errors``."""
        timeout = self.stop_timeout_s
        await self.stop_sources(errors)
        for agent_id, participant in reversed(self.participants):
            self.set_phase(f"stopping {agent_id!r}")
            await _step(errors, f"agent {agent_id!r}", participant.stop(), timeout)
        runtime = self.runtime
        if runtime is not None:
            self.set_phase("stopping the agents")
            ids = runtime.agent_ids()
            stops = asyncio.gather(*(runtime.stop(i, timeout=timeout) for i in ids))
            await _step(errors, "agents", stops, timeout * 2)
            infos.extend(runtime.info(i) for i in ids)
            self._final = self.snapshot("", 0.0)
            await _step(errors, "agent runtime", runtime.shutdown(), timeout * 2)
        if shutdown_hooks is not None:
            self.set_phase("running the plugins' shutdown hooks")
            await _step(errors, "plugin shutdown hooks", shutdown_hooks(), timeout * 4)
        if self.router is not None:
            await _step(errors, "model router", self.router.aclose(), timeout)
        if self.broker is not None:
            await _step(errors, "action broker", self.broker.aclose(), timeout)
        if self.bus is not None and not self._bus_closed:
            self.set_phase("shutting the bus down")
            if self._bus_started:
                self._bus_totals = _bus_totals(self.bus)
            await _step(errors, "bus", self.bus.shutdown(), timeout)
            self._bus_started, self._bus_closed = False, True
        if self.telemetry is not None:
            self.set_phase("flushing telemetry")
            await _step(errors, "telemetry", self.telemetry.shutdown(), timeout)
        if self.state is not None and not self._state_closed:
            self.set_phase("flushing and closing the state store")
            await _step(errors, "state store flush", self.state.flush(), timeout)
            await _step(errors, "state store close", self.state.close(), timeout)
            self._state_closed = True

    def fill(self, report: RunReport) -> None:
        """Put the bus, broker and router counters into ``report``."""
        if self._bus_totals is not None:
            totals = self._bus_totals
            report.published, report.delivered, report.dropped, report.dropped_by_reason = totals
        if self.broker is not None:
            report.actions_ok = self.broker.stats.ok
            report.actions_failed = dict(self.broker.stats.failed)
        if self.router is not None:
            report.decisions = dict(self.router.stats.decisions)
            report.provider_failures = dict(self.router.stats.provider_failures)


async def _call(what: str, awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception as exc:
        raise AppError(f"{what} could not start: {exc}") from exc


async def _step(errors: list[str], what: str, awaitable: Awaitable[Any], timeout: float) -> None:
    try:
        await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        errors.append(f"{what}: did not stop within {timeout:g} s")
        log.error("%s did not stop within %g s", what, timeout)
    except Exception as exc:  # noqa: BLE001  # each part is stopped whatever the others did
        errors.append(f"{what}: {type(exc).__name__}: {exc}")
        log.error("stopping %s failed: %s: %s", what, type(exc).__name__, exc)


def _bus_totals(bus: EventBus) -> tuple[int, int, int, dict[str, int]]:
    published = delivered = dropped = 0
    by_reason: dict[str, int] = {}
    for stats in bus.all_stats().values():
        published += stats.published
        delivered += stats.delivered
        dropped += stats.dropped
        for reason, count in stats.dropped_by_reason.items():
            by_reason[reason] = by_reason.get(reason, 0) + count
    return published, delivered, dropped, by_reason


def _finished(source: Any) -> bool:
    is_set = getattr(getattr(source, "finished", None), "is_set", None)
    return bool(callable(is_set) and is_set())


def _source_status(name: str, source: Any) -> dict[str, Any]:
    status = getattr(source, "status", None)
    if callable(status):
        try:
            value = status()
            if isinstance(value, dict):
                return {"name": name, **value}
        except Exception as exc:  # noqa: BLE001  # a status is not worth a failed shutdown
            return {"name": name, "error": f"{type(exc).__name__}: {exc}"}
    return {"name": name}
