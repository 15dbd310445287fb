"""What an app reports: a live status while it runs, and a report when it has stopped."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from loom.agents import AgentInfo
from loom.host import PluginFailure

__all__ = ["AppStatus", "RunReport", "StopReason"]


class StopReason(enum.StrEnum):
    """Why an app stopped."""

    #: SIGINT or SIGTERM.
    SIGNAL = "signal"
    #: ``run_for`` seconds passed.
    RUN_FOR = "run_for"
    #: Every source was exhausted and the agents went idle.
    EXHAUSTED = "exhausted"
    #: :meth:`~loom.app.App.request_stop` or :meth:`~loom.app.App.stop` was called.
    REQUESTED = "requested"
    #: It failed to start.
    FAILED = "failed"


@dataclass(frozen=True)
class AppStatus:
    """A snapshot of a running app, for a status line.

    Attributes:
        phase: what the app is doing (``running``, ``draining``, ...).
        elapsed_s: seconds since it started.
        published: events published on the bus.
        dropped: deliveries dropped by the bus.
        handled: events the agents handled.
        busy: handlers running now.
        mailbox: events waiting in mailboxes.
        agent_failures: handler failures.
        actions_ok: capability calls that succeeded.
        actions_failed: capability calls that failed.
        decisions: routing decisions.
        sources_done: sources that have published everything.
        sources: sources in all.
    """

    phase: str
    elapsed_s: float
    published: int
    dropped: int
    handled: int
    busy: int
    mailbox: int
    agent_failures: int
    actions_ok: int
    actions_failed: int
    decisions: int
    sources_done: int
    sources: int


@dataclass
class RunReport:
    """How a run went, once the app has stopped.

    Attributes:
        app: the app's name.
        reason: why it stopped.
        detail: the reason in words (``signal SIGTERM``, ``run_for 10 s elapsed``).
        duration_s: from start to the end of shutdown.
        drained: whether the mailboxes were empty when the agents were stopped.
        agents: each agent's counters at the end.
        sources: each source's ``status()`` (or its name) at the end.
        published: events published on the bus.
        delivered: deliveries made.
        dropped: deliveries dropped (by reason in ``dropped_by_reason``).
        actions_ok: capability calls that succeeded.
        actions_failed: failed capability calls by error code.
        decisions: routing decisions by route.
        provider_failures: failed model calls by provider.
        state: where the state went (``rocksdb at ...``).
        telemetry: where traces and metrics can be seen.
        failures: plugin failures during this run (startup and shutdown hooks).
        errors: what went wrong while stopping (each part still stopped).
    """

    app: str
    reason: StopReason
    detail: str
    duration_s: float = 0.0
    drained: bool = True
    agents: list[AgentInfo] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    published: int = 0
    delivered: int = 0
    dropped: int = 0
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    actions_ok: int = 0
    actions_failed: dict[str, int] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)
    provider_failures: dict[str, int] = field(default_factory=dict)
    state: str = ""
    telemetry: list[str] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        """Events the agents handled."""
        return sum(info.processed for info in self.agents)
