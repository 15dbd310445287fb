"""Directories: who is there and what they can do.

- :class:`AgentDirectory`: agents by id, by topic (NATS wildcards honoured) and by
  capability. The agent runtime keeps it current: it calls :meth:`~AgentDirectory.register`
  when an agent is created, :meth:`~AgentDirectory.update_topics` after each subscribe or
  unsubscribe, and :meth:`~AgentDirectory.unregister` when the agent is deleted. The bridge
  does the same for remote agents (register on ``RegisterAgent``, unregister when the
  stream ends).
- :class:`CapabilityDirectory`: capability descriptors by name, version and provider kind.
  The ActionBroker registers and unregisters descriptors as providers come and go, or
  rebuilds it from a snapshot with :meth:`~CapabilityDirectory.replace_all`.

Both are plain in-memory indexes for one event loop: every method is synchronous and cheap,
and results are sorted (agents by id, capabilities by name then version) so that they read
the same on every call.

Example:
    >>> agents = AgentDirectory()
    >>> _ = agents.register(AgentRecord("planner", topics={"task.*"}, capabilities={"plan"}))
    >>> [a.agent_id for a in agents.by_topic("task.new")]
    ['planner']
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from loom._action import CapabilityDescriptor, ProviderKind
from loom.errors import AgentNotFoundError
from loom.topics import TopicPattern, validate_pattern, validate_topic

__all__ = [
    "AgentDirectory",
    "AgentRecord",
    "CapabilityDirectory",
]


@dataclass(frozen=True)
class AgentRecord:
    """What the directory knows about one agent.

    Attributes:
        agent_id: the agent's id, unique in the directory.
        topics: the topic patterns it is subscribed to (NATS wildcards allowed).
        capabilities: the names of the capabilities it provides.
        metadata: free-form str to str (agent type, host, version, ...).
    """

    agent_id: str
    topics: frozenset[str] = frozenset()
    capabilities: frozenset[str] = frozenset()
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Accept any iterable (a list, a set) and freeze it, so a record never changes
        # under the directory's indexes.
        object.__setattr__(self, "topics", frozenset(self.topics))
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))
        object.__setattr__(self, "metadata", dict(self.metadata))
        if not isinstance(self.agent_id, str) or not self.agent_id:
            raise ValueError(f"agent_id must be a non-empty str, got {self.agent_id!r}")
        for pattern in self.topics:
            validate_pattern(pattern)


class AgentDirectory:
    """Agents by id, by topic and by capability; see the module docstring for who calls what.

    :meth:`register` upserts: registering an id again replaces its record and its index
    entries (the bridge re-registers a reconnecting agent this way).
    """

    def __init__(self) -> None:
        self._agents: dict[str, AgentRecord] = {}
        self._exact: dict[str, set[str]] = {}  # concrete topic -> agent ids
        self._wild: dict[TopicPattern, set[str]] = {}  # wildcard pattern -> agent ids
        self._by_capability: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._agents)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._agents

    # -- kept current by the runtime ------------------------------------------------------

    def register(self, record: AgentRecord) -> AgentRecord:
        """Add an agent, or replace the record of one with the same id; return the record.

        Raises:
            InvalidTopicError: one of its topics is not a valid pattern (raised when the
                record is built).
        """
        self._remove(record.agent_id)
        self._agents[record.agent_id] = record
        for pattern in record.topics:
            compiled = TopicPattern.compile(pattern)
            if compiled.has_wildcards:
                self._wild.setdefault(compiled, set()).add(record.agent_id)
            else:
                self._exact.setdefault(pattern, set()).add(record.agent_id)
        for name in record.capabilities:
            self._by_capability.setdefault(name, set()).add(record.agent_id)
        return record

    def update(
        self,
        agent_id: str,
        *,
        topics: Iterable[str] | None = None,
        capabilities: Iterable[str] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> AgentRecord:
        """Replace some fields of a registered agent's record and return the new record.

        Raises:
            AgentNotFoundError: no agent has this id.
            InvalidTopicError: a topic is not a valid pattern (the old record stays).
        """
        old = self._agents.get(agent_id)
        if old is None:
            raise AgentNotFoundError(agent_id)
        new = AgentRecord(
            agent_id,
            topics=old.topics if topics is None else frozenset(topics),
            capabilities=old.capabilities if capabilities is None else frozenset(capabilities),
            metadata=old.metadata if metadata is None else metadata,
        )
        return self.register(new)

    def update_topics(self, agent_id: str, topics: Iterable[str]) -> AgentRecord:
        """Set the topic patterns an agent is subscribed to (the whole set, after a change).

        Raises:
            AgentNotFoundError: no agent has this id.
            InvalidTopicError: a topic is not a valid pattern (the old record stays).
        """
        return self.update(agent_id, topics=topics)

    def unregister(self, agent_id: str) -> AgentRecord | None:
        """Remove an agent from every index; return its record, or None if it was not there."""
        return self._remove(agent_id)

    def _remove(self, agent_id: str) -> AgentRecord | None:
        record = self._agents.pop(agent_id, None)
        if record is None:
            return None
        for pattern in record.topics:
            compiled = TopicPattern.compile(pattern)
            if compiled.has_wildcards:
                _discard(self._wild, compiled, agent_id)
            else:
                _discard(self._exact, pattern, agent_id)
        for name in record.capabilities:
            _discard(self._by_capability, name, agent_id)
        return record

    # -- lookups --------------------------------------------------------------------------

    def by_id(self, agent_id: str) -> AgentRecord | None:
        """The agent's record, or None."""
        return self._agents.get(agent_id)

    def get(self, agent_id: str) -> AgentRecord:
        """The agent's record.

        Raises:
            AgentNotFoundError: no agent has this id.
        """
        record = self._agents.get(agent_id)
        if record is None:
            raise AgentNotFoundError(agent_id)
        return record

    def by_topic(self, topic: str) -> list[AgentRecord]:
        """The agents that receive events published to ``topic``, sorted by id.

        An agent subscribed to ``a.*`` or ``a.>`` is found for the topic ``a.b``.

        Raises:
            InvalidTopicError: ``topic`` is not a valid concrete topic (no wildcards).
        """
        validate_topic(topic)
        ids = set(self._exact.get(topic, ()))
        for pattern, agent_ids in self._wild.items():
            if pattern.matches(topic):
                ids.update(agent_ids)
        return self._records(ids)

    def by_capability(self, name: str) -> list[AgentRecord]:
        """The agents that provide the capability ``name``, sorted by id."""
        return self._records(self._by_capability.get(name, ()))

    def all(self) -> list[AgentRecord]:
        """Every registered agent, sorted by id."""
        return [self._agents[i] for i in sorted(self._agents)]

    def _records(self, ids: Iterable[str]) -> list[AgentRecord]:
        return [self._agents[i] for i in sorted(ids)]


class CapabilityDirectory:
    """Capability descriptors, keyed by ``(name, version)``.

    Versions order numerically where they are dotted numbers (``1.10`` after ``1.9``), so
    :meth:`get` without a version returns the newest one.

    Example:
        >>> caps = CapabilityDirectory()
        >>> caps.register(CapabilityDescriptor("echo", "1.0"))
        >>> caps.register(CapabilityDescriptor("echo", "1.10"))
        >>> caps.get("echo").version
        '1.10'
    """

    def __init__(self) -> None:
        self._by_name: dict[str, dict[str, CapabilityDescriptor]] = {}

    def __len__(self) -> int:
        return sum(len(versions) for versions in self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def register(self, descriptor: CapabilityDescriptor) -> None:
        """Add a descriptor, replacing one with the same name and version.

        The directory keeps a copy, so changing ``descriptor`` afterwards does not change it.

        Raises:
            ValueError: the name is empty.
        """
        if not descriptor.name:
            raise ValueError("a capability needs a name")
        copy = dataclasses.replace(descriptor, metadata=dict(descriptor.metadata))
        self._by_name.setdefault(descriptor.name, {})[descriptor.version] = copy

    def unregister(self, name: str, version: str | None = None) -> list[CapabilityDescriptor]:
        """Remove one version of a capability, or all of them; return what was removed."""
        versions = self._by_name.get(name)
        if versions is None:
            return []
        if version is None:
            del self._by_name[name]
            return _sorted(versions.values())
        removed = versions.pop(version, None)
        if not versions:
            del self._by_name[name]
        return [] if removed is None else [removed]

    def replace_all(self, descriptors: Iterable[CapabilityDescriptor]) -> None:
        """Clear the directory and register ``descriptors`` (a refresh from the broker)."""
        self._by_name.clear()
        for descriptor in descriptors:
            self.register(descriptor)

    def get(self, name: str, version: str | None = None) -> CapabilityDescriptor | None:
        """The descriptor for ``name`` at ``version``, or None.

        Args:
            name: the capability's name.
            version: the exact version; None or "" takes the newest, as an ``ActionCall``
                with an empty version does.
        """
        versions = self._by_name.get(name)
        if not versions:
            return None
        if version:
            return versions.get(version)
        return versions[max(versions, key=_version_key)]

    def by_name(self, name: str) -> list[CapabilityDescriptor]:
        """Every version of the capability ``name``, oldest first."""
        return _sorted(self._by_name.get(name, {}).values())

    def versions(self, name: str) -> list[str]:
        """The versions registered for ``name``, oldest first."""
        return [d.version for d in self.by_name(name)]

    def by_provider(self, provider: ProviderKind) -> list[CapabilityDescriptor]:
        """Every descriptor whose provider kind is ``provider``, by name then version."""
        return [d for d in self.all() if d.provider == provider]

    def all(self) -> list[CapabilityDescriptor]:
        """Every descriptor, by name then version."""
        return [d for name in sorted(self._by_name) for d in self.by_name(name)]


K = TypeVar("K")

_NUMBER = re.compile(r"\d+")


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Order versions part by part: numbers numerically, and before words at the same place."""
    parts = re.split(r"[.\-+]", version)
    return tuple((0, int(p)) if _NUMBER.fullmatch(p) else (1, p) for p in parts)


def _sorted(descriptors: Iterable[CapabilityDescriptor]) -> list[CapabilityDescriptor]:
    return sorted(descriptors, key=lambda d: _version_key(d.version))


def _discard(index: dict[K, set[str]], key: K, agent_id: str) -> None:
    ids = index.get(key)
    if ids is not None:
        ids.discard(agent_id)
        if not ids:
            del index[key]
