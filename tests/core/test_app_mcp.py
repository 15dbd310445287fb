"""An app's [[mcp.servers]]: started by the loom-mcp plugin's lifecycle hooks, its tools
capabilities of the app's broker, stopped with the app."""

from __future__ import annotations

import asyncio
import json
import textwrap

import pytest

from loom import Event
from loom.app import App, load_config

pytestmark = pytest.mark.mcp

loom_mcp_plugin = pytest.importorskip("loom_mcp.plugin", reason="loom-mcp is not installed")


@pytest.fixture
def time_server() -> str:
    from loom_mcp._peers import find_peer

    path = find_peer("mcp-server-time")
    if path is None:
        pytest.skip("mcp-server-time is not installed (scripts/mcp-peers.sh installs it)")
    return str(path)


def _app(tmp_path, host, servers: str) -> App:
    (tmp_path / "mcp_clock.py").write_text(
        textwrap.dedent(
            """
            import json

            async def ask(ctx, event):
                now = await ctx.tool("time:get_current_time", {"timezone": "Asia/Tokyo"})
                await ctx.emit("answers", "time", json.dumps(now).encode())
            """
        )
    )
    path = tmp_path / "loom.toml"
    path.write_text(
        textwrap.dedent(
            """
            [app]
            name = "clock"
            [state]
            backend = "memory"
            [[agents]]
            id = "asker"
            type = "mcp_clock:ask"
            topics = ["questions"]
            """
        )
        + textwrap.dedent(servers)
    )
    return App(load_config(path), host=host, config_path=path)


async def _until(condition, timeout_s=30.0):
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


async def test_mcp_servers_of_loom_toml_become_capabilities(
    tmp_path, loom_host, register_plugin, time_server
):
    register_plugin(loom_mcp_plugin, "mcp")
    app = _app(
        tmp_path,
        loom_host,
        f"""
        [[mcp.servers]]
        name = "time"
        command = "{time_server}"
        """,
    )
    await app.start()
    try:
        manager = app.extensions["mcp"]
        await _until(lambda: app.broker.describe("time:get_current_time") is not None)
        answers = await app.bus.subscribe("answers")
        await app.bus.publish("questions", Event("question"))
        _, answer = await asyncio.wait_for(answers.get(), 30)
    finally:
        report = await app.stop()
    assert json.loads(answer.payload)["structured"]["timezone"] == "Asia/Tokyo"
    assert report.failures == []
    assert "mcp" not in app.extensions
    assert manager.servers() == []  # stopped with the app


async def test_a_bad_server_entry_is_reported_and_the_app_runs_on(
    tmp_path, loom_host, register_plugin
):
    register_plugin(loom_mcp_plugin, "mcp")
    app = _app(
        tmp_path,
        loom_host,
        """
        [[mcp.servers]]
        name = "time"
        comand = "mcp-server-time"
        """,
    )
    await app.start()
    try:
        [failure] = app.failures
        assert (failure.plugin, failure.hook) == ("mcp", "loom_app_startup")
        assert "mcp.servers[0] ('time'): comand: Extra inputs are not permitted" in failure.error
        assert str(app.config_path) in failure.error
        assert app.phase == "running"
    finally:
        await app.stop()


@pytest.fixture
def everything_server() -> str:
    from loom_mcp._peers import find_peer

    path = find_peer("mcp-server-everything")
    if path is None:
        pytest.skip("server-everything is not installed (scripts/mcp-peers.sh installs it)")
    return str(path)


async def test_sampling_requests_are_answered_by_the_app_router(
    tmp_path, loom_host, register_plugin, everything_server
):
    from loom import ActionCall
    from loom.models import DETERMINISTIC_LABEL

    register_plugin(loom_mcp_plugin, "mcp")
    app = _app(
        tmp_path,
        loom_host,
        f"""
        [[mcp.servers]]
        name = "everything"
        command = "{everything_server}"
        args = ["stdio"]
        allow_sampling = true
        sampling_privacy = "local-only"
        """,
    )
    await app.start()
    try:
        capability = "everything:trigger-sampling-request"
        await _until(lambda: app.broker.describe(capability) is not None)
        decisions = await app.bus.subscribe(app.config.router.topic)
        payload = json.dumps({"prompt": "what time is it?"}).encode()
        result = await app.broker.invoke(ActionCall(capability, payload, timeout_ms=30_000))
        _, decision = await asyncio.wait_for(decisions.get(), 10)
    finally:
        await app.stop()
    assert result.error is None, result.error
    text = json.loads(result.output)["text"]
    sampled = json.loads(text.split("\n", 1)[1])  # "LLM sampling result: \n{...}"
    assert sampled["role"] == "assistant"
    assert sampled["model"].startswith("deterministic")
    assert sampled["content"]["text"].startswith(DETERMINISTIC_LABEL)
    assert (
        "Resource trigger-sampling-request context: what time is it?"
        in (sampled["content"]["text"])
    )
    assert decision.metadata["privacy"] == "local-only"
    assert app.router.stats.decisions["Local"] >= 1


async def test_sampling_is_refused_when_the_app_does_not_allow_it(
    tmp_path, loom_host, register_plugin, everything_server
):
    import sys
    from pathlib import Path

    from loom import ActionCall

    register_plugin(loom_mcp_plugin, "mcp")
    script = Path(__file__).resolve().parents[1] / "mcp" / "servers" / "sampler.py"
    sampler = {"command": sys.executable, "args": [str(script)]}
    app = _app(
        tmp_path,
        loom_host,
        f"""
        [[mcp.servers]]
        name = "everything"
        command = "{everything_server}"
        args = ["stdio"]

        [[mcp.servers]]
        name = "sampler"
        command = "{sampler["command"]}"
        args = {json.dumps(sampler["args"])}
        protocol = "legacy"  # the handshake era, where servers send requests to clients
        """,
    )
    await app.start()
    try:
        await _until(lambda: app.broker.describe("sampler:ask") is not None)
        await _until(lambda: app.broker.describe("everything:echo") is not None)
        payload = json.dumps({"prompt": "spend my budget"}).encode()
        result = await app.broker.invoke(ActionCall("sampler:ask", payload, timeout_ms=30_000))
        # server-everything offers its sampling tool only to clients that declare sampling
        offered = app.broker.describe("everything:trigger-sampling-request")
    finally:
        await app.stop()
    assert result.error is None, result.error
    assert json.loads(result.output)["text"] == "refused (-32600): Sampling not supported"
    assert offered is None
    assert app.router.stats.decisions.total() == 0
