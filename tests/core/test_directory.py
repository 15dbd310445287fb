"""AgentDirectory and CapabilityDirectory (UPSTREAM.md §10, AC10.1)."""

from __future__ import annotations

import pytest

from loom import CapabilityDescriptor, InvalidTopicError, LoomError, ProviderKind
from loom.directory import AgentDirectory, AgentRecord, CapabilityDirectory
from loom.errors import AgentNotFoundError


def _ids(records: list[AgentRecord]) -> list[str]:
    return [r.agent_id for r in records]


# -- AgentDirectory ---------------------------------------------------------------------------


def test_ac10_1_by_topic_and_capability() -> None:
    agents = AgentDirectory()
    agents.register(AgentRecord("agent.a", topics=["topic.shared"], capabilities=["echo"]))
    agents.register(AgentRecord("agent.b", topics=["topic.shared"]))
    assert len(agents.by_topic("topic.shared")) == 2
    assert _ids(agents.by_capability("echo")) == ["agent.a"]
    agents.unregister("agent.a")
    assert agents.by_capability("echo") == []
    assert _ids(agents.by_topic("topic.shared")) == ["agent.b"]


def test_by_topic_honours_wildcards() -> None:
    agents = AgentDirectory()
    agents.register(AgentRecord("star", topics={"a.*"}))
    agents.register(AgentRecord("tail", topics={"a.>"}))
    agents.register(AgentRecord("exact", topics={"a.b"}))
    agents.register(AgentRecord("other", topics={"x.*", "a.b.c"}))
    assert _ids(agents.by_topic("a.b")) == ["exact", "star", "tail"]
    assert _ids(agents.by_topic("a.b.c")) == ["other", "tail"]
    assert _ids(agents.by_topic("a")) == []
    assert _ids(agents.by_topic("x.y")) == ["other"]
    with pytest.raises(InvalidTopicError):
        agents.by_topic("a.*")  # a lookup takes a concrete topic


def test_register_upserts_and_reindexes() -> None:
    agents = AgentDirectory()
    agents.register(AgentRecord("a", topics={"old.*"}, capabilities={"old"}, metadata={"v": "1"}))
    agents.register(AgentRecord("a", topics={"new"}, capabilities={"new"}, metadata={"v": "2"}))
    assert len(agents) == 1
    assert agents.by_topic("old.x") == []
    assert agents.by_capability("old") == []
    assert _ids(agents.by_topic("new")) == ["a"]
    assert agents.get("a").metadata == {"v": "2"}


def test_update_topics_follows_subscriptions() -> None:
    agents = AgentDirectory()
    agents.register(AgentRecord("a", topics={"agent.a.replies"}, capabilities={"plan"}))
    record = agents.update_topics("a", ["agent.a.replies", "task.*"])
    assert record.topics == frozenset({"agent.a.replies", "task.*"})
    assert record.capabilities == frozenset({"plan"})
    assert _ids(agents.by_topic("task.new")) == ["a"]
    agents.update_topics("a", ["agent.a.replies"])
    assert agents.by_topic("task.new") == []
    assert _ids(agents.by_topic("agent.a.replies")) == ["a"]


def test_update_other_fields_and_bad_topics_keep_the_old_record() -> None:
    agents = AgentDirectory()
    agents.register(AgentRecord("a", topics={"t"}))
    agents.update("a", capabilities=["x"], metadata={"host": "h1"})
    assert _ids(agents.by_capability("x")) == ["a"]
    assert agents.get("a").metadata == {"host": "h1"}
    with pytest.raises(InvalidTopicError):
        agents.update_topics("a", ["bad..topic"])
    assert agents.get("a").topics == frozenset({"t"})
    assert _ids(agents.by_topic("t")) == ["a"]


def test_unknown_agents() -> None:
    agents = AgentDirectory()
    assert agents.by_id("ghost") is None
    assert agents.unregister("ghost") is None
    assert "ghost" not in agents
    with pytest.raises(AgentNotFoundError, match="agent 'ghost' not found") as caught:
        agents.get("ghost")
    assert isinstance(caught.value, KeyError)
    assert isinstance(caught.value, LoomError)
    with pytest.raises(AgentNotFoundError):
        agents.update_topics("ghost", [])


def test_all_and_by_id() -> None:
    agents = AgentDirectory()
    for agent_id in ["c", "a", "b"]:
        agents.register(AgentRecord(agent_id))
    assert _ids(agents.all()) == ["a", "b", "c"]
    record = agents.by_id("b")
    assert record is not None
    assert record.topics == frozenset()
    assert "b" in agents
    removed = agents.unregister("b")
    assert removed == record
    assert _ids(agents.all()) == ["a", "c"]


def test_record_validation_and_immutability() -> None:
    with pytest.raises(InvalidTopicError):
        AgentRecord("a", topics={"a.>.b"})
    with pytest.raises(ValueError, match="agent_id"):
        AgentRecord("")
    metadata = {"k": "v"}
    record = AgentRecord("a", topics=["t"], metadata=metadata)
    metadata["k"] = "changed"
    assert record.metadata == {"k": "v"}
    assert isinstance(record.topics, frozenset)
    assert hash(record) == hash(AgentRecord("a", topics=["t"], metadata={"k": "v"}))


def test_unregister_cleans_every_index() -> None:
    agents = AgentDirectory()
    agents.register(AgentRecord("a", topics={"x.*", "y"}, capabilities={"c"}))
    agents.unregister("a")
    assert agents._wild == {}
    assert agents._exact == {}
    assert agents._by_capability == {}


# -- CapabilityDirectory ----------------------------------------------------------------------


def test_ac10_1_refresh_with_three_providers() -> None:
    caps = CapabilityDirectory()
    caps.register(CapabilityDescriptor("stale"))
    caps.replace_all(
        [
            CapabilityDescriptor("echo", "1.0"),
            CapabilityDescriptor("echo", "2.0", ProviderKind.WASM),
            CapabilityDescriptor("weather", "1.0", ProviderKind.MCP),
        ]
    )
    assert len(caps.all()) == 3
    assert len(caps) == 3
    assert len(caps.by_name("echo")) == 2
    exact = caps.get("echo", "2.0")
    assert exact is not None
    assert exact.provider is ProviderKind.WASM
    assert caps.get("stale") is None


def test_versions_order_numerically() -> None:
    caps = CapabilityDirectory()
    for version in ["1.9", "1.10", "1.2", "0.9-beta"]:
        caps.register(CapabilityDescriptor("tool", version))
    assert caps.versions("tool") == ["0.9-beta", "1.2", "1.9", "1.10"]
    newest = caps.get("tool")
    assert newest is not None
    assert newest.version == "1.10"
    assert caps.get("tool", "") == newest  # "" takes any version, as in an ActionCall
    assert caps.get("tool", "3.0") is None
    assert caps.get("missing") is None


def test_by_provider_and_all_are_sorted() -> None:
    caps = CapabilityDirectory()
    caps.register(CapabilityDescriptor("b", provider=ProviderKind.MCP))
    caps.register(CapabilityDescriptor("a", provider=ProviderKind.MCP))
    caps.register(CapabilityDescriptor("c", provider=ProviderKind.NATIVE))
    assert [d.name for d in caps.by_provider(ProviderKind.MCP)] == ["a", "b"]
    assert [d.name for d in caps.by_provider(ProviderKind.GRPC)] == []
    assert [d.name for d in caps.all()] == ["a", "b", "c"]


def test_register_replaces_same_version_and_keeps_a_copy() -> None:
    caps = CapabilityDirectory()
    descriptor = CapabilityDescriptor("echo", "1.0", metadata={"schema": "{}"})
    caps.register(descriptor)
    descriptor.metadata["schema"] = "changed"
    stored = caps.get("echo", "1.0")
    assert stored is not None
    assert stored.metadata == {"schema": "{}"}
    caps.register(CapabilityDescriptor("echo", "1.0", ProviderKind.GRPC))
    assert len(caps) == 1
    stored = caps.get("echo")
    assert stored is not None
    assert stored.provider is ProviderKind.GRPC
    with pytest.raises(ValueError, match="name"):
        caps.register(CapabilityDescriptor(""))


def test_unregister_one_version_or_all() -> None:
    caps = CapabilityDirectory()
    for version in ["1.0", "2.0", "3.0"]:
        caps.register(CapabilityDescriptor("echo", version))
    assert [d.version for d in caps.unregister("echo", "2.0")] == ["2.0"]
    assert caps.unregister("echo", "9.9") == []
    assert caps.versions("echo") == ["1.0", "3.0"]
    assert [d.version for d in caps.unregister("echo")] == ["1.0", "3.0"]
    assert "echo" not in caps
    assert caps.unregister("echo") == []
    caps.register(CapabilityDescriptor("solo", "1.0"))
    caps.unregister("solo", "1.0")
    assert "solo" not in caps
