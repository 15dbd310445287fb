"""Every hook a Loom plugin can implement.

Hooks compose the system at startup; none runs per event. A plugin is any module or object
whose ``loom_*`` functions are marked with :data:`loom.hookimpl` (unmarked functions with
the ``loom_`` prefix are accepted too). Installed plugins are found through entry points in
the group ``loom``.

Contribution hooks take no arguments and return an iterable of records from
:mod:`loom.contributions` (or None for nothing). The host calls each implementation on its
own, so one failing plugin is reported and the others still contribute; the host flattens
the records, sorts them by name, and rejects a duplicate name with an error naming both
plugins. Contribution hooks must not return awaitables.

Lifecycle hooks receive the running app and may return an awaitable, which the host awaits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any

import pluggy

from loom.contributions import (
    AgentType,
    BenchScenario,
    BusBackend,
    Capability,
    CliCommand,
    EventSource,
    ModelProvider,
    RoutingPolicy,
    StateStoreBackend,
)

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

#: The pluggy project name; also the entry-point group plugins register under.
PROJECT_NAME = "loom"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marks a function or method as the implementation of a Loom hook.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------------------------------
# Contribution: called while the app is composed, and by `loom plugins` to list what a
# plugin offers. Return an iterable of records, or None.
# ---------------------------------------------------------------------------------------


@hookspec
def loom_capabilities() -> Iterable[Capability] | None:
    """Contribute capabilities to the ActionBroker.

    Called once when an app composes its broker, and by ``loom plugins``.

    Returns:
        :class:`~loom.contributions.Capability` records, or None.

    Example:
        .. code-block:: python

            @hookimpl
            def loom_capabilities():
                return [Capability(name="text.upper", handler=lambda text: text.upper())]

    .. versionadded:: 0.1
    """


@hookspec
def loom_bus_backends() -> Iterable[BusBackend] | None:
    """Contribute event bus backends, selected by name in an app's configuration.

    Core contributes ``memory``; loom-nats contributes ``nats``.

    Returns:
        :class:`~loom.contributions.BusBackend` records, or None.

    Example:
        .. code-block:: python

            @hookimpl
            def loom_bus_backends():
                return [BusBackend(name="redis", factory=RedisBus)]

    .. versionadded:: 0.1
    """


@hookspec
def loom_state_stores() -> Iterable[StateStoreBackend] | None:
    """Contribute state store backends for agents' persistent state.

    Core contributes ``memory`` and ``rocksdb`` (the embedded default).

    Returns:
        :class:`~loom.contributions.StateStoreBackend` records, or None.

    Example:
        .. code-block:: python

            @hookimpl
            def loom_state_stores():
                return [StateStoreBackend(name="sqlite", factory=SqliteStore)]

    .. versionadded:: 0.1
    """


@hookspec
def loom_model_providers() -> Iterable[ModelProvider] | None:
    """Contribute language-model providers that the model router can choose from.

    Returns:
        :class:`~loom.contributions.ModelProvider` records, or None.

    Example:
        .. code-block:: python

            @hookimpl
            def loom_model_providers():
                return [ModelProvider(name="vllm-local", factory=OpenAICompatible)]

    .. versionadded:: 0.1
    """


@hookspec
def loom_routing_policies() -> Iterable[RoutingPolicy] | None:
    """Contribute routing policies that decide between local, cloud and hybrid models.

    Returns:
        :class:`~loom.contributions.RoutingPolicy` records, or None.

    Example:
        .. code-block:: python

            @hookimpl
            def loom_routing_policies():
                return [RoutingPolicy(name="cheapest", factory=CheapestFirst)]

    .. versionadded:: 0.1
    """


@hookspec
def loom_event_sources() -> Iterable[EventSource] | None:
    """Contribute event sources: things that publish events from outside (mic, MQTT, timers).

    Returns:
        :class:`~loom.contributions.EventSource` records, or None.

    Example:
        .. code-block:: python

            @hookimpl
            def loom_event_sources():
                return [EventSource(name="timer", factory=TimerSource)]

    .. versionadded:: 0.1
    """


@hookspec
def loom_agent_types() -> Iterable[AgentType] | None:
    """Contribute agent types that an app can instantiate by name.

    Returns:
        :class:`~loom.contributions.AgentType` records, or None.

    Example:
        .. code-block:: python

            @hookimpl
            def loom_agent_types():
                return [AgentType(name="echo", factory=EchoAgent)]

    .. versionadded:: 0.1
    """


@hookspec
def loom_cli_commands() -> Iterable[CliCommand] | None:
    """Contribute ``loom`` subcommands (``loom bridge serve``, ``loom audio devices``, ...).

    Called each time the ``loom`` CLI starts, so keep the plugin module light: import heavy
    dependencies inside the command's ``run``.

    Returns:
        :class:`~loom.contributions.CliCommand` records, or None.

    Example:
        .. code-block:: python

            @hookimpl
            def loom_cli_commands():
                return [CliCommand(name="hi", run=lambda args, host: print("hi"))]

    .. versionadded:: 0.1
    """


@hookspec
def loom_bench_scenarios() -> Iterable[BenchScenario] | None:
    """Contribute ``loom bench`` scenarios, each named and tied to the baseline it is judged by.

    Returns:
        :class:`~loom.contributions.BenchScenario` records, or None.

    Example:
        .. code-block:: python

            @hookimpl
            def loom_bench_scenarios():
                return [BenchScenario(name="mcp.stdio", run=bench, baseline="baseline.mcp_sdk")]

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------------------
# Lifecycle: called once per app run. May return an awaitable, which the host awaits.
# ---------------------------------------------------------------------------------------


@hookspec
def loom_app_check(config: Any) -> Iterable[Any] | None:
    """Called when an app's configuration is resolved (``loom run --check``, and before
    every start), before anything starts: a plugin checks its own table of ``loom.toml``.

    Implementations are called one by one; a failing one is reported with the plugin's name
    and the app is resolved without its checks.

    Args:
        config: the validated :class:`loom.app.AppConfig` (``config.plugin_sections``).

    Returns:
        The problems found, as :class:`loom.app.ConfigIssue` records (each naming its key
        path, such as ``nats.mesh.expire_after_s``); None or empty when there are none.

    Example:
        .. code-block:: python

            @hookimpl
            def loom_app_check(config):
                table = config.plugin_sections.get("myplugin", {})
                if "port" in table and not isinstance(table["port"], int):
                    return [ConfigIssue("myplugin.port", "expected an integer")]
                return None

    .. versionadded:: 0.1
    """


@hookspec
def loom_app_startup(app: Any) -> Awaitable[None] | None:
    """Called once when an app starts, after its bus and broker exist, before agents run.

    Implementations are called one by one; a failure is reported with the plugin's name and
    the other plugins still start.

    Args:
        app: the app being started (its bus, broker, state store and agents).

    Returns:
        None, or an awaitable the host awaits before calling the next plugin.

    Example:
        .. code-block:: python

            @hookimpl
            async def loom_app_startup(app):
                await connect_to_broker()

    .. versionadded:: 0.1
    """


@hookspec
def loom_app_shutdown(app: Any) -> Awaitable[None] | None:
    """Called once when an app stops, after its agents stopped, in reverse start order.

    Args:
        app: the app being stopped.

    Returns:
        None, or an awaitable the host awaits before calling the next plugin.

    Example:
        .. code-block:: python

            @hookimpl
            async def loom_app_shutdown(app):
                await close_connections()

    .. versionadded:: 0.1
    """
