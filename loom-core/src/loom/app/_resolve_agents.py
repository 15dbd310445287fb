"""Resolving ``[[agents]]`` and ``[[sources]]``: contributed types and Python references,
instantiated (nothing is started)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Literal

from loom.agents import Agent, FunctionAgent
from loom.app._config import AgentEntry, SourceEntry
from loom.app._refs import ReferenceImportError, import_reference
from loom.app._resolve_base import ResolverBase

__all__ = ["AgentPlan", "AgentResolver", "SourcePlan"]


@dataclass
class AgentPlan:
    """One ``[[agents]]`` entry, instantiated.

    Attributes:
        index: its position in ``[[agents]]``.
        entry: the entry.
        kind: ``agent`` (runs on the agent runtime) or ``participant`` (an object with
            ``start(bus)`` and ``stop()``, such as an audio stage).
        obj: the agent (or participant).
        type_label: what made it (the agent type, or the Python reference).
    """

    index: int
    entry: AgentEntry
    kind: Literal["agent", "participant"]
    obj: Any
    type_label: str


@dataclass
class SourcePlan:
    """One ``[[sources]]`` entry, instantiated."""

    index: int
    entry: SourceEntry
    obj: Any

    @property
    def name(self) -> str:
        """The source's name."""
        return self.entry.label


class AgentResolver(ResolverBase):
    """The agents and the sources."""

    def _agents(self) -> list[AgentPlan]:
        types = {r.name: r for r in self.host.agent_types()}
        plans: list[AgentPlan] = []
        for index, entry in enumerate(self.config.agents):
            key = f"agents[{index}]"
            record = types.get(entry.type)
            if record is not None:
                obj = self._build(
                    f"{key}.params",
                    f"agent type {entry.type!r}",
                    record.factory,
                    **entry.params,
                )
            elif ":" in entry.type:
                obj = self._referenced_agent(entry, key)
            else:
                installed = ", ".join(sorted(types)) or "none"
                self.issue(
                    f"{key}.type",
                    f"unknown agent type {entry.type!r}; installed agent types: {installed}; "
                    "or name a Python object as 'module:attr' (an Agent class or a handler "
                    "function)",
                )
                continue
            if obj is None:
                continue
            plan = self._agent_plan(index, entry, obj, key)
            if plan is not None:
                plans.append(plan)
        return plans

    def _referenced_agent(self, entry: AgentEntry, key: str) -> Any:
        try:
            value = import_reference(entry.type, self.base_dir)
        except ReferenceImportError as exc:
            self.issue(f"{key}.type", str(exc))
            return None
        if isinstance(value, type) and issubclass(value, Agent):
            params = dict(entry.params)
            if "app" not in params and _accepts(value, "app"):
                params["app"] = self.app
            return self._build(f"{key}.params", f"{value.__qualname__}()", value, **params)
        if entry.params:
            self.issue(
                f"{key}.params",
                f"{entry.type!r} is not an Agent class, so it takes no params "
                "(make it an Agent subclass whose __init__ takes them)",
            )
            return None
        if isinstance(value, Agent):
            return value
        if callable(value) and not isinstance(value, type):
            return FunctionAgent(value)
        self.issue(
            f"{key}.type",
            f"{entry.type!r} is a {type(value).__name__}; expected an Agent class, an Agent "
            "instance or a handler function (ctx, event)",
        )
        return None

    def _agent_plan(self, index: int, entry: AgentEntry, obj: Any, key: str) -> AgentPlan | None:
        if isinstance(obj, Agent):
            return AgentPlan(index, entry, "agent", obj, entry.type)
        if _is_participant(obj):
            if entry.topics:
                self.issue(
                    f"{key}.topics",
                    f"agent type {entry.type!r} makes a bus participant that chooses its own "
                    "topics; configure them through params",
                )
                return None
            return AgentPlan(index, entry, "participant", obj, entry.type)
        if callable(obj):
            return AgentPlan(index, entry, "agent", FunctionAgent(obj), entry.type)
        self.issue(
            f"{key}.type",
            f"agent type {entry.type!r} made a {type(obj).__name__}, which is neither an Agent, "
            "a handler function, nor an object with start(bus) and stop()",
        )
        return None

    # -- sources -------------------------------------------------------------------------

    def _sources(self) -> list[SourcePlan]:
        records = {r.name: r for r in self.host.event_sources()}
        plans: list[SourcePlan] = []
        for index, entry in enumerate(self.config.sources):
            key = f"sources[{index}]"
            record = records.get(entry.type)
            if record is None:
                installed = ", ".join(sorted(records)) or "none"
                self.issue(
                    f"{key}.type",
                    f"unknown event source {entry.type!r}; installed: {installed}",
                )
                continue
            options: dict[str, Any] = dict(entry.options)
            path = options.get("path")
            if isinstance(path, str):
                options["path"] = str(self.base_dir / path)
            options["name"] = entry.label
            if entry.topic is not None:
                options["topic"] = entry.topic
            obj = self._build(
                f"{key}.options",
                f"event source {entry.type!r}",
                record.factory,
                **options,
            )
            if obj is None:
                continue
            if not _is_participant(obj):
                self.issue(
                    f"{key}.type",
                    f"event source {entry.type!r} made a {type(obj).__name__} without "
                    "start(bus) and stop()",
                )
                continue
            plans.append(SourcePlan(index, entry, obj))
        return plans


def _accepts(cls: type, parameter: str) -> bool:
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return False
    return parameter in signature.parameters


def _is_participant(obj: object) -> bool:
    start = getattr(obj, "start", None)
    stop = getattr(obj, "stop", None)
    return callable(start) and callable(stop)
