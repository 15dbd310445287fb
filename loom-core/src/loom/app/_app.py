"""The App: composes the parts a ``loom.toml`` names, runs them, and shuts them down cleanly."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from loom.actions import ActionBroker
from loom.agents import AgentInfo, AgentRuntime
from loom.app._compose import Plan, resolve
from loom.app._config import AppConfig, load_config
from loom.app._describe import describe, shown
from loom.app._errors import AppError
from loom.app._parts import Parts
from loom.app._report import AppStatus, RunReport, StopReason
from loom.app._signals import install_signal_handlers
from loom.bus import EventBus
from loom.host import PluginFailure, PluginHost, create_host
from loom.models import ModelRouter

__all__ = ["App", "current_app"]

log = logging.getLogger("loom.app")

T = TypeVar("T")

_current: contextvars.ContextVar[App | None] = contextvars.ContextVar("loom_app", default=None)


def current_app() -> App:
    """The app running in this task (agents, sources and plugin hooks of an app see it).

    Raises:
        AppError: no app is running here.
    """
    app = _current.get()
    if app is None:
        raise AppError("no app is running here: current_app() works inside a running App")
    return app


class App:
    """An app composed from a ``loom.toml`` through the host's plugins.

    :meth:`start` resolves every name in the configuration (an unknown backend, provider,
    policy, agent type or source is an :class:`AppConfigError` listing what is
    installed), then opens the state store and the bus, registers capabilities with an
    :class:`~loom.actions.ActionBroker`, builds the :class:`~loom.models.ModelRouter`
    and the :class:`~loom.agents.AgentRuntime`, starts telemetry, runs the plugins'
    ``loom_app_startup`` hooks (a failing one is reported in :attr:`failures` and the app
    goes on), starts the agents and last the sources.

    :meth:`run` starts it and waits for the end: :meth:`request_stop` (or SIGINT/SIGTERM
    with ``handle_signals``), ``run_for`` seconds, or every source exhausted and the
    agents idle (mailboxes empty, no handler running). :meth:`stop` then shuts down in
    order: sources stop, mailboxes drain (up to ``app.drain_timeout_s``), agents stop,
    the plugins' ``loom_app_shutdown`` hooks run, the router and broker close, the bus
    shuts down, telemetry flushes, and the state store flushes and closes.

    Args:
        config: the configuration.
        host: the plugin host to compose from (one loading the installed plugins if
            None).
        config_path: the file the configuration came from (for messages and relative
            paths).
        base_dir: where relative paths and Python references are taken from (the
            configuration's directory, else the working directory).
        on_phase: called with a line of text at each step of starting and stopping.

    Attributes:
        config: the configuration.
        host: the plugin host.
        extensions: where plugins keep what they start for this app, by plugin name
            (loom-mcp keeps its session manager under ``"mcp"``).
        notes: things worth telling the user about the composition.
        failures: plugin failures while this app started.
        phase: what the app is doing, in words.

    Example:
        .. code-block:: python

            app = App.from_file("loom.toml")
            report = await app.run(handle_signals=True)
            print(report.detail, report.handled)
    """

    def __init__(
        self,
        config: AppConfig,
        *,
        host: PluginHost | None = None,
        config_path: str | os.PathLike[str] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        on_phase: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.host = host if host is not None else create_host()
        self.config_path = Path(config_path) if config_path is not None else None
        if base_dir is not None:
            self.base_dir = Path(base_dir).resolve()
        elif self.config_path is not None:
            self.base_dir = self.config_path.resolve().parent
        else:
            self.base_dir = Path.cwd()
        self.on_phase = on_phase
        self.extensions: dict[str, Any] = {}
        self.notes: list[str] = []
        self.failures: list[PluginFailure] = []
        self.phase = "created"
        self._plan: Plan | None = None
        self._parts = Parts(self.source, self._set_phase, config.app.stop_timeout_s)
        self._hooks_started = False
        self._started = False
        self._started_at: float | None = None
        self._stop_requested = asyncio.Event()
        self._stop_reason = (StopReason.REQUESTED, "stop requested")
        self._hurry = asyncio.Event()
        self._report: RunReport | None = None
        self._stopping: asyncio.Future[RunReport] | None = None

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        host: PluginHost | None = None,
        on_phase: Callable[[str], None] | None = None,
    ) -> App:
        """An app from a ``loom.toml``.

        Raises:
            AppConfigError: the file is missing, not TOML, or not a valid app.
        """
        return cls(load_config(path), host=host, config_path=path, on_phase=on_phase)

    def __repr__(self) -> str:
        return f"<App {self.name!r} {self.phase}>"

    # -- what it is made of -----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The app's name."""
        return self.config.app.name

    @property
    def source(self) -> str:
        """The configuration's file, for messages (``<config>`` when built in code)."""
        return str(self.config_path) if self.config_path is not None else "<config>"

    @property
    def bus(self) -> EventBus:
        """The event bus (once started)."""
        return _started(self._parts.bus, "bus")

    @property
    def state(self) -> Any:
        """The state store (once started)."""
        return _started(self._parts.state, "state store")

    @property
    def broker(self) -> ActionBroker:
        """The action broker (once started)."""
        return _started(self._parts.broker, "broker")

    @property
    def router(self) -> ModelRouter:
        """The model router (once started)."""
        return _started(self._parts.router, "router")

    @property
    def runtime(self) -> AgentRuntime:
        """The agent runtime (once started)."""
        return _started(self._parts.runtime, "runtime")

    @property
    def telemetry(self) -> Any:
        """The ``loom.telemetry.Telemetry`` in use, or None."""
        return self._parts.telemetry

    @property
    def mcp_servers(self) -> list[dict[str, Any]]:
        """The ``[[mcp.servers]]`` entries, for the loom-mcp plugin."""
        return [dict(server) for server in self.config.mcp.servers]

    def section(self, name: str) -> dict[str, Any]:
        """The top-level table of ``loom.toml`` named ``name``, for the plugin of that name
        (``{}`` when there is none)."""
        if name == "mcp":
            return self.config.mcp.model_dump()
        return dict(self.config.plugin_sections.get(name, {}))

    @property
    def agents(self) -> dict[str, Any]:
        """The agents (and bus participants) by id."""
        return {a.entry.id: a.obj for a in self.plan().agents}

    @property
    def sources(self) -> dict[str, Any]:
        """The event sources by name."""
        return {s.name: s.obj for s in self.plan().sources}

    @property
    def reasoning(self) -> str:
        """Which models reason, in one line."""
        return self.plan().reasoning

    @property
    def state_path(self) -> Path | None:
        """Where the state store keeps its files, when it has a path."""
        return self.plan().state_path

    def plan(self) -> Plan:
        """Resolve the configuration against the host (once; nothing is started).

        Raises:
            AppConfigError: every problem, with its key path.
        """
        if self._plan is None:
            self._plan = resolve(
                self.config, self.host, source=self.source, base_dir=self.base_dir, app=self
            )
            self.notes.extend(self._plan.notes)
        return self._plan

    def describe(self) -> list[tuple[str, str]]:
        """The composition as (part, description) lines, for the console."""
        return describe(self)

    def telemetry_lines(self) -> list[str]:
        """Where traces and metrics can be seen (``telemetry.describe()`` once it started),
        or why there is no telemetry."""
        if self._parts.telemetry is None:
            notes = self.notes + self._parts.notes
            return [n.removeprefix("telemetry: ") for n in notes if n.startswith("telemetry")]
        return list(self._parts.telemetry_lines)

    # -- starting ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Compose and start the app (see the class docstring for the order).

        Raises:
            AppConfigError: the configuration names something not installed or invalid.
            AppError: a part failed to open (the state store, the bus, a source); what
                was started is stopped again.
        """
        if self._started:
            return
        plan = self.plan()
        self._started = True
        _current.set(self)
        failures_before = len(self.host.failures)
        try:
            await self._parts.open(self.config, plan)
            self._set_phase("running the plugins' startup hooks")
            self._hooks_started = True
            await self.host.startup(self)
            await self._parts.start_agents(plan)
        except BaseException:
            self._set_phase("start failed; stopping what was started")
            await self._parts.close([], [], self._shutdown_hooks())
            self.failures.extend(self.host.failures[failures_before:])
            self.phase = "failed"
            raise
        finally:
            self.notes.extend(self._parts.notes)
            self._parts.notes.clear()
        self.failures.extend(self.host.failures[failures_before:])
        self._started_at = time.monotonic()
        self._set_phase("running")

    # -- running -----------------------------------------------------------------------------

    def request_stop(self, reason: StopReason = StopReason.REQUESTED, detail: str = "") -> None:
        """Ask a running :meth:`run` to stop (safe from a signal handler or an agent)."""
        if not self._stop_requested.is_set():
            self._stop_reason = (reason, detail or reason.value)
            self._stop_requested.set()

    async def run(
        self, *, stop: asyncio.Event | None = None, handle_signals: bool = False
    ) -> RunReport:
        """Start the app, wait for the end, stop it, and return the report.

        Args:
            stop: an event that ends the run when set.
            handle_signals: stop on SIGINT and SIGTERM (a second signal skips waiting
                for the mailboxes to drain).

        Raises:
            AppConfigError: see :meth:`start`.
            AppError: see :meth:`start`.
        """
        remove = self.install_signal_handlers() if handle_signals else _nothing
        try:
            await self.start()
            await self._wait(stop)
            reason, detail = self._stop_reason
            return await self.stop(reason, detail)
        finally:
            remove()

    def install_signal_handlers(self) -> Callable[[], None]:
        """Stop on SIGINT and SIGTERM; a second signal skips waiting for the mailboxes.

        Returns:
            A function that removes the handlers again. Where signals cannot be handled
            (not the main thread, or Windows) nothing is installed.
        """

        def on_signal(signum: signal.Signals) -> None:
            if self._stop_requested.is_set():
                self._hurry.set()
                self._set_phase(f"{signum.name} again: stopping without waiting for mailboxes")
                return
            self.request_stop(StopReason.SIGNAL, f"signal {signum.name}")

        return install_signal_handlers(on_signal)

    async def _wait(self, stop: asyncio.Event | None) -> None:
        waits: list[Awaitable[Any]] = [self._stop_requested.wait()]
        if stop is not None:
            waits.append(self._relay(stop))
        if self.config.run_for is not None:
            waits.append(self._run_for(self.config.run_for))
        sources = [obj for _, obj in self._parts.sources]
        finite = all(callable(getattr(s, "wait", None)) for s in sources)
        if sources and finite and self.config.app.end_when_exhausted:
            waits.append(self._exhausted(sources))
        tasks = [asyncio.ensure_future(w) for w in waits]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _relay(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.request_stop(StopReason.REQUESTED, "stop requested")

    async def _run_for(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.request_stop(StopReason.RUN_FOR, f"run_for {seconds:g} s elapsed")

    async def _exhausted(self, sources: list[Any]) -> None:
        await asyncio.gather(*(s.wait() for s in sources))
        self._set_phase("every source is exhausted; waiting for the agents to finish")
        await self._parts.until_idle()
        self.request_stop(StopReason.EXHAUSTED, "every source exhausted and the agents idle")

    def status(self) -> AppStatus:
        """A snapshot for a status line (zeros before the app has started; the last
        counters once its agents are stopped)."""
        elapsed = 0.0 if self._started_at is None else time.monotonic() - self._started_at
        return self._parts.snapshot(self.phase, elapsed)

    # -- stopping ----------------------------------------------------------------------------

    async def stop(self, reason: StopReason = StopReason.REQUESTED, detail: str = "") -> RunReport:
        """Shut the app down in order (see the class docstring) and return the report.

        Idempotent: a second call returns the first one's report. Every step runs even if
        one before it failed; what failed is in :attr:`RunReport.errors`.
        """
        if self._report is not None:
            return self._report
        if self._stopping is not None:
            return await asyncio.shield(self._stopping)
        self._stopping = asyncio.get_running_loop().create_future()
        try:
            report = await self._stop(reason, detail or reason.value)
        except BaseException as exc:
            self._stopping.set_exception(exc)
            self._stopping.exception()  # marked retrieved: this caller gets it now
            raise
        self._report = report
        self._stopping.set_result(report)
        return report

    async def _stop(self, reason: StopReason, detail: str) -> RunReport:
        began = self._started_at if self._started_at is not None else time.monotonic()
        report = RunReport(self.name, reason, detail)
        failures_before = len(self.host.failures)
        errors: list[str] = []
        report.sources = await self._parts.stop_sources(errors)
        report.drained = await self._drain()
        infos: list[AgentInfo] = []
        await self._parts.close(errors, infos, self._shutdown_hooks())
        report.agents = infos
        self._parts.fill(report)
        plan = self._plan
        if plan is not None:
            state = self.config.state.backend
            if plan.state_path is not None:
                state += f" at {shown(plan.state_path)}"
            closed = self._parts.state is not None
            report.state = state + (" (flushed and closed)" if closed else "")
        report.telemetry = self.telemetry_lines()
        report.failures = self.failures + self.host.failures[failures_before:]
        report.errors = errors
        report.duration_s = time.monotonic() - began
        self._set_phase("stopped")
        if _current.get() is self:
            _current.set(None)
        return report

    async def _drain(self) -> bool:
        if self._parts.runtime is None:
            return True
        self._set_phase("draining mailboxes")
        idle = asyncio.ensure_future(self._parts.until_idle())
        hurry = asyncio.ensure_future(self._hurry.wait())
        timeout = self.config.app.drain_timeout_s
        try:
            await asyncio.wait([idle, hurry], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (idle, hurry):
                task.cancel()
            await asyncio.gather(idle, hurry, return_exceptions=True)
        drained = idle.done() and not idle.cancelled()
        if not drained:
            status = self.status()
            log.warning(
                "mailboxes not drained within %.1f s: %d events waiting, %d handlers running",
                timeout,
                status.mailbox,
                status.busy,
            )
        return drained

    def _shutdown_hooks(self) -> Callable[[], Awaitable[None]] | None:
        if not self._hooks_started:
            return None
        self._hooks_started = False
        return lambda: self.host.shutdown(self)

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        log.debug("app %s: %s", self.name, phase)
        if self.on_phase is not None:
            try:
                self.on_phase(phase)
            except Exception:  # a display problem must not stop the app
                log.exception("the on_phase callback failed")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _started(part: T | None, what: str) -> T:
    if part is None:
        raise AppError(f"the app's {what} exists once the app has started")
    return part


def _nothing() -> None:
    return None
