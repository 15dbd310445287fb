"""The plugin: light to import, listed by ``loom plugins``, and the app lifecycle hooks
(a real PluginHost calling them; a real ``loom.app.App`` from a ``loom.toml``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import httpx2
import pytest

import loom_dashboard.plugin as plugin
from loom import create_host
from loom_dashboard import DashboardServer
from loom_dashboard._lifecycle import running

from .conftest import TIMEOUT, wait_for

HEAVY = (
    "starlette",
    "uvicorn",
    "httpx2",
    "anyio",
    "asyncio",
    "pydantic",
    "loom.bus",
    "loom.agents",
)


def _modules_after(code: str) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_importing_the_plugin_and_the_package_stays_light():
    for code in ("import loom_dashboard.plugin", "import loom_dashboard"):
        modules = _modules_after(code)
        heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
        assert heavy == [], f"{code} pulled {heavy}"


def test_loom_plugins_lists_the_dashboard():
    out = subprocess.run(
        [sys.executable, "-m", "loom.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    document = json.loads(out.stdout)
    plugins = document["plugins"] if isinstance(document, dict) else document
    entry = next(p for p in plugins if p["name"] == "dashboard")
    assert entry["distribution"] == "loom-dashboard"
    assert {"loom_app_startup", "loom_app_shutdown", "loom_cli_commands"} <= set(entry["hooks"])
    assert entry["contributions"]["cli_commands"] == ["dashboard"]


def _app(host, table):
    config = SimpleNamespace(dashboard=table) if table is not None else SimpleNamespace()
    return SimpleNamespace(
        bus=host.bus,
        runtime=host.runtime,
        broker=host.broker,
        router=host.router,
        config=config,
        extensions={},
    )


async def test_the_startup_hook_serves_an_enabled_dashboard_and_shutdown_stops_it(host):
    plugins = create_host(load_entrypoints=False, plugins=[plugin])
    app = _app(host, {"enabled": True, "port": 0})
    await plugins.startup(app)
    assert plugins.failures == []
    server = running(app)
    assert isinstance(server, DashboardServer) and app.extensions["dashboard"] is server
    async with httpx2.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client:
        await host.exchange(1)
        topology = (await client.get("/api/topology")).json()
        assert {a["id"] for a in topology["agents"]} == {"asker", "answerer"}
    await plugins.shutdown(app)
    assert running(app) is None and "dashboard" not in app.extensions
    assert not server.started
    with pytest.raises(httpx2.ConnectError):
        async with httpx2.AsyncClient(timeout=2) as client:
            await client.get(server.url + "api/health")


@pytest.mark.parametrize("table", [None, {"enabled": False}, {}])
async def test_no_dashboard_unless_enabled(host, table):
    plugins = create_host(load_entrypoints=False, plugins=[plugin])
    app = _app(host, table)
    await plugins.startup(app)
    assert running(app) is None and plugins.failures == []
    await plugins.shutdown(app)


async def test_a_bad_dashboard_table_is_reported_and_the_app_goes_on(host):
    plugins = create_host(load_entrypoints=False, plugins=[plugin])
    app = _app(host, {"enabled": True, "host": "0.0.0.0", "port": 0})
    await plugins.startup(app)
    [failure] = plugins.failures
    assert failure.hook == "loom_app_startup"
    assert "dashboard.token: a token is required" in failure.error
    assert running(app) is None
    await host.exchange(1)  # the host goes on
    await plugins.shutdown(app)


async def test_a_real_app_with_a_dashboard_table(tmp_path):
    app_module = pytest.importorskip("loom.app", reason="loom-core without app support")
    (tmp_path / "dash_agents.py").write_text(
        textwrap.dedent(
            """
            from loom.agents import Agent, handles
            from loom.collab import COLLAB_REQUEST

            class Asker(Agent):
                async def on_start(self, ctx):
                    await ctx.emit("ticks", "tick")

                @handles("tick")
                async def on_tick(self, ctx, event):
                    await ctx.request("answer.q", COLLAB_REQUEST, {"n": 1}, timeout_s=5)

            class Answerer(Agent):
                @handles(COLLAB_REQUEST)
                async def on_request(self, ctx, event):
                    await ctx.reply(event, {"ok": True})
            """
        )
    )
    (tmp_path / "loom.toml").write_text(
        textwrap.dedent(
            """
            [app]
            name = "dash-test"

            [state]
            backend = "memory"

            [dashboard]
            enabled = true
            port = 0

            [[agents]]
            id = "asker"
            type = "dash_agents:Asker"
            topics = ["ticks"]

            [[agents]]
            id = "answerer"
            type = "dash_agents:Answerer"
            topics = ["answer.q"]
            """
        )
    )
    app = app_module.App.from_file(tmp_path / "loom.toml")
    await app.start()
    try:
        server = running(app)
        assert server is not None, app.failures
        async with httpx2.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client:
            topology = (await client.get("/api/topology")).json()
            assert {"asker", "answerer"} <= {a["id"] for a in topology["agents"]}
            await wait_for(lambda: len(server.tap.threads.summaries(5, collab_only=True)) > 0)
            threads = (await client.get("/api/threads")).json()["threads"]
            assert threads[0]["lanes"][:2] == ["agent.asker", "agent.answerer"]
            metrics = (await client.get("/api/metrics")).json()
            assert metrics["routing"]["source"] == "router"
    finally:
        await app.stop()
    assert running(app) is None and not server.started
