"""From a validated ``loom.toml`` to the parts of an app, through what the host's plugins
contribute. Resolving builds nothing that holds a resource (no bus, no database): every
problem it finds is reported at once, as an :class:`AppConfigError` naming each key."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loom.app._config import AppConfig, TelemetrySection, telemetry_model, telemetry_settings
from loom.app._errors import AppConfigError
from loom.app._resolve_agents import AgentPlan, AgentResolver, SourcePlan
from loom.app._resolve_capabilities import CapabilityResolver
from loom.app._resolve_models import ModelResolver, describe_models
from loom.contributions import Capability
from loom.host import PluginHost
from loom.models import ProviderEntry

__all__ = ["AgentPlan", "Plan", "SourcePlan", "describe_models", "resolve"]


@dataclass
class Plan:
    """Everything resolved, nothing started.

    Attributes:
        bus_factory, bus_options: the bus backend's factory and options.
        state_factory, state_options: the state store's factory and options.
        state_path: where the state store keeps its files, when it has a ``path``.
        policy: the routing policy.
        models: the router's providers.
        reasoning: one line saying which models reason, for the console.
        capabilities: what the broker registers.
        capability_origins: for each capability name, where it came from.
        agents: the agents, in ``[[agents]]`` order.
        sources: the sources, in ``[[sources]]`` order.
        telemetry_config: a ``loom.telemetry.TelemetryConfig``, or None.
        notes: things worth telling the user (defaults taken, parts not available).
    """

    bus_factory: Callable[..., Any]
    bus_options: dict[str, Any]
    state_factory: Callable[..., Any]
    state_options: dict[str, Any]
    state_path: Path | None
    policy: Any
    models: list[ProviderEntry]
    reasoning: str
    capabilities: list[Capability]
    capability_origins: dict[str, str]
    agents: list[AgentPlan]
    sources: list[SourcePlan]
    telemetry_config: Any
    notes: list[str] = field(default_factory=list)


def resolve(
    config: AppConfig,
    host: PluginHost,
    *,
    source: str,
    base_dir: Path,
    app: object = None,
) -> Plan:
    """Resolve every name in ``config`` against ``host`` and build the agents, sources,
    models and policy (objects that hold no resource until started).

    Args:
        config: the validated configuration.
        host: where the contributions come from.
        source: the configuration's file, for messages.
        base_dir: the directory relative paths and Python references are taken from.
        app: given to agent classes whose constructor takes an ``app`` argument.

    Raises:
        AppConfigError: every problem found, each with its key path.
    """
    return _Resolver(config, host, source, base_dir, app).resolve()


class _Resolver(ModelResolver, CapabilityResolver, AgentResolver):
    def resolve(self) -> Plan:
        config = self.config
        buses = self.host.bus_backends()
        bus = self._named("bus.backend", "bus backend", config.bus.backend, buses)
        state = self._named(
            "state.backend", "state store", config.state.backend, self.host.state_stores()
        )
        state_options, state_path = self._state_options()
        policy = self._policy()
        models, reasoning = self._models()
        capabilities, origins = self._capabilities()
        agents = self._agents()
        sources = self._sources()
        telemetry = self._telemetry()
        self._plugin_sections()
        if self.issues:
            raise AppConfigError(self.source, self.issues)
        assert bus is not None
        assert state is not None
        return Plan(
            bus_factory=bus.factory,
            bus_options=dict(config.bus.options),
            state_factory=state.factory,
            state_options=state_options,
            state_path=state_path,
            policy=policy,
            models=models,
            reasoning=reasoning,
            capabilities=capabilities,
            capability_origins=origins,
            agents=agents,
            sources=sources,
            telemetry_config=telemetry,
            notes=self.notes,
        )

    # -- state ---------------------------------------------------------------------------

    def _state_options(self) -> tuple[dict[str, Any], Path | None]:
        options = dict(self.config.state.options)
        path = options.get("path")
        if path is None and self.config.state.backend == "rocksdb":
            path = Path(".loom-data") / self.config.app.name
        if path is None:
            return options, None
        if not isinstance(path, (str, os.PathLike)):
            self.issue("state.options.path", f"expected a path (a string), got {path!r}")
            return options, None
        resolved = self.base_dir / Path(path)
        options["path"] = str(resolved)
        return options, resolved

    # -- sections of plugins ---------------------------------------------------------------

    def _plugin_sections(self) -> None:
        names = set(self.host.plugin_names())
        for section in self.config.plugin_sections:
            if section not in names:
                loaded = ", ".join(sorted(n for n in names if not self.host.is_builtin(n)))
                self.issue(
                    section,
                    f"unknown section [{section}]: no loaded plugin is named {section!r}, and "
                    f"only a plugin's own section may be added (loaded plugins: "
                    f"{loaded or 'none'})",
                )
        for issue in self.host.app_checks(self.config):
            self.issue(issue.key, issue.message)

    # -- telemetry -----------------------------------------------------------------------

    def _telemetry(self) -> Any:
        if not self.config.telemetry:
            self.notes.append("telemetry: off (no [telemetry] section)")
            return None
        model = telemetry_model()
        if model is TelemetrySection:
            self.notes.append(
                "telemetry: loom.telemetry is not available in this installation; "
                "[telemetry] is ignored"
            )
            return None
        from pydantic import ValidationError

        try:
            return telemetry_settings(self.config)
        except ValidationError as exc:  # parse_config checked it; a model that changed since
            self.issue("telemetry", str(exc))
        return None
