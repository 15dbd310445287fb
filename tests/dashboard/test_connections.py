"""Live connections in the topology, for real: a remote agent over the loom.v1 gRPC bridge
(loom-bridge) and an MCP server over stdio (loom-mcp), each sharing the host's bus, broker
and directory."""

from __future__ import annotations

import sys

import pytest

from loom.actions import capability

from .conftest import wait_for


@capability("remote.shout")
def shout(text: str) -> str:
    """Shout, remotely."""
    return text.upper() + "!"


async def test_a_remote_agent_over_the_bridge(host, client):
    bridge = pytest.importorskip("loom_bridge", reason="loom-bridge is not installed")
    server = bridge.BridgeServer(
        host.bus,
        host.broker,
        directory=host.runtime.directory,
        config=bridge.BridgeConfig(address="127.0.0.1:0"),
    )
    await server.start()
    agent = bridge.RemoteAgent(
        "remote-shouter",
        lambda ctx, event: None,
        topics=["shout.requests"],
        capabilities=[shout],
        config=bridge.ClientConfig(address=f"127.0.0.1:{server.port}"),
    )
    try:
        await agent.start()
        await wait_for(lambda: host.broker.describe("remote.shout") is not None)
        topology = (await client.get("/api/topology")).json()
        remote = {a["id"]: a for a in topology["agents"]}["remote-shouter"]
        assert remote["kind"] == "remote:grpc" and remote["status"] == "connected"
        assert remote["topics"] == ["agent.remote-shouter.replies", "shout.requests"]
        assert remote["peer"]
        capability_entry = {c["name"]: c for c in topology["capabilities"]}["remote.shout"]
        assert capability_entry["provider"] == "GRPC"
        assert capability_entry["agents"] == ["remote-shouter"]
        [link] = topology["connections"]["bridge"]
        assert (link["agent_id"], link["capabilities"]) == ("remote-shouter", ["remote.shout"])
        topics = {t["pattern"]: t["agents"] for t in topology["topics"]}
        assert topics["shout.requests"] == ["remote-shouter"]
        await agent.stop()
        await wait_for(lambda: host.runtime.directory.by_id("remote-shouter") is None)
        after = (await client.get("/api/topology")).json()
        assert after["connections"]["bridge"] == []
        assert "remote-shouter" not in {a["id"] for a in after["agents"]}
    finally:
        await agent.stop()
        await server.stop()


async def test_an_mcp_server_and_its_tools(host, client):
    mcp = pytest.importorskip("loom_mcp", reason="loom-mcp is not installed")
    from loom import ActionCall

    async with mcp.McpSessionManager(host.broker) as manager:
        await manager.add_server(
            {"name": "echoer", "command": sys.executable, "args": ["-m", "loom_mcp._echo_server"]}
        )
        result = await host.broker.invoke(ActionCall("echoer:echo", b'{"message": "hi"}'))
        assert result.error is None
        topology = (await client.get("/api/topology")).json()
        echo = {c["name"]: c for c in topology["capabilities"]}["echoer:echo"]
        assert (echo["provider"], echo["mcp_server"], echo["breaker"]) == (
            "MCP",
            "echoer",
            "closed",
        )
        assert echo["description"] == "Echoes back the input string"
        assert topology["connections"]["mcp"] == [
            {"server": "echoer", "tools": 1, "open": 0, "state": "up"}
        ]
        metrics = (await client.get("/api/metrics")).json()
        rows = {r["capability"]: r for r in metrics["tools"]["by_capability"]}
        if rows:  # when the broker counts per capability
            assert rows["echoer:echo"]["calls"] == 1 and rows["echoer:echo"]["errors"] == 0
    topology = (await client.get("/api/topology")).json()
    assert topology["connections"]["mcp"] == []
