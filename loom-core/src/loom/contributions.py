"""What plugins contribute: one frozen record type per contribution hook.

Every contribution hook in :mod:`loom.hookspecs` returns an iterable of one of these records
(or None). Each record has a ``name``, unique across all plugins for its kind: the host sorts
contributions by name and rejects a second one under a name already taken, naming both
plugins. Records hold factories and callables, never running objects: hooks compose, the
objects they return do the work.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from loom._action import ProviderKind

if TYPE_CHECKING:
    import argparse

    from loom.bench import Figure
    from loom.host import PluginHost

__all__ = [
    "AgentType",
    "BenchScenario",
    "BusBackend",
    "Capability",
    "CliCommand",
    "Contribution",
    "EventSource",
    "ModelProvider",
    "RoutingPolicy",
    "StateStoreBackend",
    "lazy",
]


@dataclass(frozen=True, kw_only=True)
class Contribution:
    """Base of every contribution record.

    Attributes:
        name: unique among contributions of the same kind.
        description: one line for ``loom plugins`` and docs.
    """

    kind: ClassVar[str] = "contribution"

    name: str
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class Capability(Contribution):
    """A capability for the ActionBroker.

    Attributes:
        handler: the callable that runs it (sync or async); it takes the call's input.
        version: the capability's version.
        provider: where it runs.
        input_schema: JSON Schema of the input, if known.
        output_schema: JSON Schema of the output, if known.
        metadata: extra descriptor metadata (str to str).
    """

    kind: ClassVar[str] = "capabilities"

    handler: Callable[..., Any]
    version: str = "1.0"
    provider: ProviderKind = ProviderKind.NATIVE
    input_schema: Mapping[str, Any] | None = None
    output_schema: Mapping[str, Any] | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class BusBackend(Contribution):
    """An event bus implementation (``memory`` in core, ``nats`` in loom-nats).

    Attributes:
        factory: builds the bus from keyword options (e.g. a server URL).
    """

    kind: ClassVar[str] = "bus_backends"

    factory: Callable[..., Any]


@dataclass(frozen=True, kw_only=True)
class StateStoreBackend(Contribution):
    """A state store implementation (``memory`` and ``rocksdb`` in core).

    Attributes:
        factory: builds the store from keyword options (e.g. a path).
    """

    kind: ClassVar[str] = "state_stores"

    factory: Callable[..., Any]


@dataclass(frozen=True, kw_only=True)
class ModelProvider(Contribution):
    """A language-model provider the router can send requests to.

    Attributes:
        factory: builds the provider client from keyword options.
    """

    kind: ClassVar[str] = "model_providers"

    factory: Callable[..., Any]


@dataclass(frozen=True, kw_only=True)
class RoutingPolicy(Contribution):
    """A policy that decides where a model request runs (local, cloud, hybrid).

    Attributes:
        factory: builds the policy from keyword options.
    """

    kind: ClassVar[str] = "routing_policies"

    factory: Callable[..., Any]


@dataclass(frozen=True, kw_only=True)
class EventSource(Contribution):
    """Something that turns the outside world into events (a microphone, MQTT, a timer).

    Attributes:
        factory: builds the source from keyword options.
    """

    kind: ClassVar[str] = "event_sources"

    factory: Callable[..., Any]


@dataclass(frozen=True, kw_only=True)
class AgentType(Contribution):
    """A kind of agent an app can instantiate by name (``AgentConfig.agent_type`` on the wire).

    Attributes:
        factory: builds the agent from keyword options.
    """

    kind: ClassVar[str] = "agent_types"

    factory: Callable[..., Any]


@dataclass(frozen=True, kw_only=True)
class CliCommand(Contribution):
    """A ``loom`` subcommand.

    Attributes:
        configure: adds the command's arguments to its ``argparse`` parser.
        run: runs it with the parsed arguments and the plugin host; returns an exit code
            (None means 0) or an awaitable of one, which the CLI runs in an event loop.
    """

    kind: ClassVar[str] = "cli_commands"

    run: Callable[[argparse.Namespace, PluginHost], int | Awaitable[int | None] | None]
    configure: Callable[[argparse.ArgumentParser], None] = lambda parser: None


@dataclass(frozen=True, kw_only=True)
class BenchScenario(Contribution):
    """A named ``loom bench`` scenario.

    Attributes:
        run: ``run(scale)`` performs one run and returns its figures
            (:class:`loom.bench.Figure`); ``scale`` multiplies the scenario's sizes (1.0 for
            a measurement, small for a smoke test).
        baseline: the name of the scenario this one is judged against, if any.
    """

    kind: ClassVar[str] = "bench_scenarios"

    run: Callable[[float], Awaitable[Sequence[Figure]]]
    baseline: str | None = None


def lazy(module: str, attribute: str) -> Callable[..., Any]:
    """A factory that imports ``module.attribute`` on first call and forwards to it.

    Contribution records built with it cost no import: ``loom plugins`` and the CLI start
    stay fast however heavy the factory's module is.

    Example:
        .. code-block:: python

            BusBackend(name="nats", factory=lazy("loom_nats._bus", "NatsBus"))
    """

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), attribute)(*args, **kwargs)

    call.__qualname__ = call.__name__ = f"{module}.{attribute}"
    return call
