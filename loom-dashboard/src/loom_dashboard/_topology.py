"""Topology: who is there, what they listen to, what they can do, and how they connect."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from loom.errors import AgentNotFoundError
from loom.topics import TopicPattern

if TYPE_CHECKING:
    from loom_dashboard._observed import ObservedHost

__all__ = ["build_topology"]

# Directory metadata the bridge writes on a remote agent's record (loom_bridge._hub).
_REMOTE_KEY = "remote"
_PEER_KEY = "peer"
# Descriptor metadata an MCP tool's capability carries (loom_mcp._provider).
_MCP_SERVER_KEY = "mcp_server"


def build_topology(host: ObservedHost) -> dict[str, Any]:
    """The ``/api/topology`` document.

    Local agents come from the runtime (with status and counters); agents that only the
    directory lists (remote agents the bridge registered) are added with their peer.
    Capabilities come from the broker, each with its provider kind, circuit state and the
    agents that provide it; MCP servers are grouped from their tools' metadata.
    """
    agents: dict[str, dict[str, Any]] = {}
    runtime = host.runtime
    if runtime is not None:
        directory = runtime.directory
        for agent_id in runtime.agent_ids():
            try:
                info = runtime.info(agent_id)
            except AgentNotFoundError:  # deleted between the two calls
                continue
            record = directory.by_id(agent_id)
            agents[agent_id] = {
                "id": agent_id,
                "kind": "local",
                "status": info.status.value,
                "topics": list(info.topics),
                "capabilities": sorted(record.capabilities) if record else [],
                "processed": info.processed,
                "failures": info.failures,
                "restarts": info.restarts,
                "expired": info.expired,
                "mailbox": info.mailbox,
                "last_error": info.last_error,
                "metadata": dict(record.metadata) if record else {},
            }
        for record in directory.all():
            if record.agent_id in agents:
                continue
            remote = record.metadata.get(_REMOTE_KEY, "")
            agents[record.agent_id] = {
                "id": record.agent_id,
                "kind": f"remote:{remote}" if remote else "listed",
                "status": "connected" if remote else "listed",
                "topics": sorted(record.topics),
                "capabilities": sorted(record.capabilities),
                "peer": record.metadata.get(_PEER_KEY, ""),
                "metadata": dict(record.metadata),
            }
    topics: dict[str, list[str]] = {}
    for agent in agents.values():
        for pattern in agent["topics"]:
            topics.setdefault(pattern, []).append(agent["id"])
    capabilities: list[dict[str, Any]] = []
    mcp: dict[str, dict[str, Any]] = {}
    broker = host.broker
    if broker is not None:
        providers_of: dict[str, list[str]] = {}
        for agent in agents.values():
            for name in agent["capabilities"]:
                providers_of.setdefault(name, []).append(agent["id"])
        for d in broker.list_capabilities():
            state = broker.breaker_state(d.name, d.version)
            breaker = str(getattr(state, "value", state) or "")
            md = d.metadata
            entry = {
                "name": d.name,
                "version": d.version,
                "provider": d.provider.name,
                "description": md.get("description") or md.get("desc") or "",
                "breaker": breaker,
                "agents": providers_of.get(d.name, []),
            }
            server = md.get(_MCP_SERVER_KEY)
            if server:
                entry["mcp_server"] = server
                group = mcp.setdefault(server, {"server": server, "tools": 0, "open": 0})
                group["tools"] += 1
                if breaker and breaker != "closed":
                    group["open"] += 1
            capabilities.append(entry)
    bridge = [
        {
            "agent_id": a["id"],
            "peer": a.get("peer", ""),
            "topics": a["topics"],
            "capabilities": a["capabilities"],
        }
        for a in agents.values()
        if a["kind"].startswith("remote:")
    ]
    for group in mcp.values():
        group["state"] = "degraded" if group["open"] else "up"
    return {
        "generated_ms": round(time.time() * 1000.0, 3),
        "agents": list(agents.values()),
        "topics": [
            {"pattern": p, "wildcard": TopicPattern.compile(p).has_wildcards, "agents": ids}
            for p, ids in sorted(topics.items())
        ],
        "capabilities": capabilities,
        "connections": {"bridge": bridge, "mcp": sorted(mcp.values(), key=lambda g: g["server"])},
    }
