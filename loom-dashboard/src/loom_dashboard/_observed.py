"""What the dashboard reads from a running host, as structural protocols.

The dashboard depends on no app class: anything with a ``bus`` (a
:class:`loom.bus.EventBus`) and, optionally, a ``runtime``, a ``broker`` and a ``router``
shaped as below can be watched. :class:`HostParts` bundles loose parts into one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from loom._action import CapabilityDescriptor
    from loom.agents import AgentInfo
    from loom.bus import EventBus
    from loom.directory import AgentDirectory

__all__ = ["BrokerView", "HostParts", "ObservedHost", "RouterView", "RuntimeView"]


class RuntimeView(Protocol):
    """The agent runtime, as the dashboard reads it (:class:`loom.agents.AgentRuntime`)."""

    @property
    def directory(self) -> AgentDirectory:
        """Every agent, local and remote (the bridge lists its agents here)."""
        ...

    def agent_ids(self) -> list[str]:
        """Ids of the local agents."""
        ...

    def info(self, agent_id: str) -> AgentInfo:
        """Status and counters of one local agent."""
        ...


class BrokerView(Protocol):
    """The action broker, as the dashboard reads it (:class:`loom.actions.ActionBroker`).

    ``stats`` has ``ok``, ``failed`` (by error code), ``cache_hits`` and ``joined``.
    """

    @property
    def stats(self) -> Any:
        """The broker's counters."""
        ...

    def list_capabilities(self) -> Sequence[CapabilityDescriptor]:
        """Every registered capability."""
        ...

    def breaker_state(self, name: str, version: str = "") -> Any:
        """The circuit state (an enum) of a capability's provider, or None."""
        ...


class RouterView(Protocol):
    """The model router, as the dashboard reads it (:class:`loom.models.ModelRouter`).

    ``stats`` has ``decisions`` (by route), ``policy_errors``, ``guarded``, ``fallbacks``
    and ``provider_failures``.
    """

    @property
    def stats(self) -> Any:
        """The router's counters."""
        ...


class ObservedHost(Protocol):
    """A running host: its bus, and its runtime and broker when it has them.

    An object may also have a ``router`` (a :class:`RouterView`); the dashboard reads it
    with ``getattr`` so that hosts without a model router need not declare one.
    """

    @property
    def bus(self) -> EventBus:
        """The event bus."""
        ...

    @property
    def runtime(self) -> RuntimeView | None:
        """The agent runtime, if any."""
        ...

    @property
    def broker(self) -> BrokerView | None:
        """The action broker, if any."""
        ...


@dataclass
class HostParts:
    """Loose parts of a host, bundled for :class:`~loom_dashboard.DashboardServer`.

    Example:
        .. code-block:: python

            parts = HostParts(bus, runtime=runtime, broker=broker)
            async with DashboardServer(parts, DashboardSettings(port=0)) as server:
                print(server.url)
    """

    bus: EventBus
    runtime: RuntimeView | None = None
    broker: BrokerView | None = None
    router: RouterView | None = None
