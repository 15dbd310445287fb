"""`loom run` serves the bridge when loom.toml has a [bridge] table."""

from __future__ import annotations

import textwrap

import grpc.aio

from loom.app import App, load_config
from loom.v1 import bridge_pb2
from loom_bridge import plugin as bridge_plugin
from loom_bridge._grpc import bridge_pb2_grpc


def _app(tmp_path, host, bridge: str) -> App:
    path = tmp_path / "loom.toml"
    path.write_text(
        textwrap.dedent(
            """
            [app]
            name = "bridged"
            [state]
            backend = "memory"
            """
        )
        + textwrap.dedent(bridge)
    )
    return App(load_config(path), host=host, config_path=path)


async def test_bridge_table_serves_the_bridge_for_the_app(tmp_path, loom_host, register_plugin):
    register_plugin(bridge_plugin, "bridge")
    app = _app(tmp_path, loom_host, '[bridge]\naddress = "127.0.0.1:0"\n')
    await app.start()
    try:
        server = app.extensions["bridge"]
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = bridge_pb2_grpc.BridgeStub(channel)
            pong = await stub.Heartbeat(bridge_pb2.HeartbeatRequest(timestamp_ms=12345))
            registered = await stub.RegisterAgent(
                bridge_pb2.AgentRegisterRequest(agent_id="remote", subscribed_topics=["t"])
            )
        assert (pong.timestamp_ms, pong.status) == (12345, "ok")
        assert registered.success
    finally:
        report = await app.stop()
    assert report.failures == []
    assert "bridge" not in app.extensions


async def test_no_bridge_table_serves_nothing(tmp_path, loom_host, register_plugin):
    register_plugin(bridge_plugin, "bridge")
    app = _app(tmp_path, loom_host, "")
    await app.start()
    try:
        assert "bridge" not in app.extensions
    finally:
        await app.stop()


async def test_a_bad_bridge_setting_is_reported_and_the_app_runs_on(
    tmp_path, loom_host, register_plugin
):
    register_plugin(bridge_plugin, "bridge")
    app = _app(tmp_path, loom_host, '[bridge]\naddress = "not an address"\n')
    await app.start()
    try:
        assert "bridge" not in app.extensions
        assert any("address" in str(f) for f in app.failures)
    finally:
        await app.stop()
