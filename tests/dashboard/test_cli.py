"""``loom dashboard``: the demo host and an app from a ``loom.toml``, each served for real in
a subprocess; bad arguments exit 2 with a message."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx2
import pytest

from loom_dashboard import DemoHost

LOOM = [sys.executable, "-m", "loom.cli"]
_DEMO_AGENTS = {"frontdesk", "worker", "planner", "bidder-fast", "bidder-cheap"}


def _start(*args: str, cwd: Path | None = None) -> tuple[subprocess.Popen[str], str, str]:
    """Start ``loom dashboard ARGS``; return it, the URL it announces and the URL's fragment."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("LOOM_DASHBOARD_TOKEN", None)
    env.pop("LOOM_DASHBOARD_PORT", None)
    proc = subprocess.Popen(
        [*LOOM, "dashboard", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"loom dashboard: serving (http://[^/\s]+/)(\S*)", line)
        if match:
            return proc, match.group(1), match.group(2)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    raise AssertionError("no URL announced:\n" + "".join(lines))


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    # Read through the text stream: communicate() would skip what readline() buffered.
    assert proc.stdout is not None
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    with proc.stdout:
        return code, proc.stdout.read()


@pytest.mark.slow
def test_the_demo_serves_its_agents_and_moving_metrics():
    proc, url, _ = _start("--port", "0", "--run-for", "6", "--rate", "10")
    try:
        with httpx2.Client(base_url=url, timeout=10) as client:
            topology = client.get("/api/topology").json()
            assert {a["id"] for a in topology["agents"]} == _DEMO_AGENTS
            assert {c["name"] for c in topology["capabilities"]} == {"text.upper", "demo.lookup"}
            first = client.get("/api/metrics").json()
            time.sleep(1.5)
            second = client.get("/api/metrics").json()
            assert second["bus"]["published"] > first["bus"]["published"]
            assert second["tools"]["calls"] > first["tools"]["calls"]
            assert sum(second["routing"]["by_route"].values()) > 0
            kinds = {t["kind"] for t in client.get("/api/threads").json()["threads"]}
            assert "request/reply" in kinds
    finally:
        code, out = _finish(proc)
    assert code == 0, out
    assert "demo host with agents frontdesk, worker, planner" in out


@pytest.mark.slow
def test_a_token_is_announced_in_the_fragment_and_required():
    proc, url, fragment = _start("--port", "0", "--run-for", "3", "--token", "t0k")
    try:
        assert url.endswith("/")
        with httpx2.Client(base_url=url, timeout=10) as client:
            assert client.get("/api/metrics").status_code == 401
            ok = client.get("/api/metrics", headers={"Authorization": "Bearer t0k"})
            assert ok.status_code == 200
    finally:
        code, out = _finish(proc)
    assert code == 0, out
    assert fragment == "#token=t0k"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0", "--port", "0"], "dashboard.token: a token is required"),
        (["--port", "99999"], "dashboard.port: expected an integer from 0 to 65535"),
        (["--run-for", "0"], "--run-for must be > 0"),
        (["--rate", "0", "--port", "0"], "--rate must be > 0"),
        (["no-such.toml", "--port", "0"], "no-such.toml: no such file"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args, message):
    result = subprocess.run([*LOOM, "dashboard", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr


@pytest.mark.slow
def test_an_app_from_a_loom_toml(tmp_path):
    pytest.importorskip("loom.app", reason="loom-core without app support")
    (tmp_path / "dash_agents.py").write_text(
        textwrap.dedent(
            """
            from loom.agents import Agent, handles

            class Pinger(Agent):
                async def on_start(self, ctx):
                    await ctx.emit("pings", "ping")

                @handles("ping")
                async def on_ping(self, ctx, event):
                    await ctx.request("pongs", payload={"n": 1}, timeout_s=5)

            class Ponger(Agent):
                async def on_event(self, ctx, event):
                    await ctx.reply(event, {"pong": True})
            """
        )
    )
    (tmp_path / "loom.toml").write_text(
        textwrap.dedent(
            """
            [app]
            name = "cli-dash"

            [state]
            backend = "memory"

            [[agents]]
            id = "pinger"
            type = "dash_agents:Pinger"
            topics = ["pings"]

            [[agents]]
            id = "ponger"
            type = "dash_agents:Ponger"
            topics = ["pongs"]
            """
        )
    )
    # No [dashboard] table: the command serves one all the same.
    proc, url, _ = _start("loom.toml", "--port", "0", "--run-for", "4", cwd=tmp_path)
    try:
        with httpx2.Client(base_url=url, timeout=10) as client:
            agents = {a["id"] for a in client.get("/api/topology").json()["agents"]}
            assert agents == {"pinger", "ponger"}
            deadline = time.monotonic() + 10
            while not client.get("/api/threads").json()["threads"]:
                assert time.monotonic() < deadline, "no collaboration thread appeared"
                time.sleep(0.1)
    finally:
        code, out = _finish(proc)
    assert code == 0, out


async def test_the_demo_host_itself_runs_and_stops():
    demo = DemoHost(rate=20)
    await demo.start()
    try:
        while demo.ticks < 3:
            await asyncio.sleep(0.02)
        assert set(demo.runtime.agent_ids()) == _DEMO_AGENTS
    finally:
        await demo.stop()
    with pytest.raises(ValueError, match="rate must be > 0"):
        DemoHost(rate=0)
