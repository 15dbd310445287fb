"""The flagship demo, run as the README runs it: `loom run examples/flagship/loom.toml`.

It senses (a file source of sensor readings), reasons (the model router: the deterministic
local provider with no model configured, the OPENAI_BASE_URL endpoint when set) and acts
(capabilities through the broker), with state in RocksDB, and ends by itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from loom.models.testing import ChatCompletionsServer, RecordedRequest, Reply
from loom.state import RocksDBStateStore

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = ROOT / "examples" / "flagship"
LOOM = Path(sys.executable).with_name("loom")


@pytest.fixture
def flagship(tmp_path) -> Path:
    """A copy of the demo, so its state lands in tmp_path."""
    target = tmp_path / "flagship"
    shutil.copytree(FLAGSHIP, target, ignore=shutil.ignore_patterns(".loom-data", "__pycache__"))
    return target


async def _run(folder: Path, **env: str) -> tuple[int, str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("LOOM_", "OPENAI_"))}
    environment.update(env)
    command = [str(LOOM)] if LOOM.exists() else [sys.executable, "-m", "loom.cli"]
    process = await asyncio.create_subprocess_exec(
        *command,
        "run",
        str(folder / "loom.toml"),
        "--console",
        "plain",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    try:
        # "It ends by itself within a minute."
        out, err = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _state(folder: Path) -> dict[str, dict[str, bytes]]:
    async with RocksDBStateStore(folder / ".loom-data" / "flagship") as store:
        state: dict[str, dict[str, bytes]] = {}
        for agent in ("monitor", "caretaker"):
            state[agent] = {k: v async for k, v in store.for_agent(agent).scan()}
        return state


async def test_with_no_model_it_senses_reasons_and_acts_and_says_so(flagship):
    code, out, err = await _run(flagship)
    assert code == 0, out + err
    lines = out.splitlines()
    # What it is made of, and that no LLM is configured, said plainly.
    assert "loom run: app 'flagship'" in out
    assert "no model configured ([[models]] empty, OPENAI_BASE_URL unset)" in out
    assert any(line.startswith("caretaker  no model configured") for line in lines)
    # Sense.
    assert "monitor    first run: every reading's statistics go to RocksDB" in lines
    assert "monitor    north temperature 22.4 C: fine" in lines
    assert "monitor    south temperature 31.6 C: above the limit of 30, alert raised" in lines
    assert "monitor    east temperature 10.8 C: below the limit of 12, alert raised" in lines
    assert "monitor    east humidity 88.5 %: above the limit of 85, alert raised" in lines
    # Reason: the router decides, the deterministic model answers and labels itself.
    routes = [line for line in lines if line.startswith("router ")]
    assert len(routes) == 3
    assert all("-> 'deterministic', local" in line for line in routes)
    assert "no cloud provider" in routes[0]
    assert any(
        line.startswith("caretaker  model says: [deterministic model, no LLM configured]")
        for line in lines
    )
    # Act: the actuators, through the broker.
    for action in (
        "actuator   south vents open 60 %",
        "actuator   east heater on, target 16.0 C",
        "actuator   east vents open 40 %",
        "actuator   south vents closed",
        "actuator   east heater off",
        "actuator   east vents closed",
    ):
        assert action in lines
    assert "caretaker  called greenhouse.vent: ok" in lines
    assert (
        "caretaker  3 alerts handled this run (model calls: deterministic x6); 6 model-driven "
        "actions in all, kept in RocksDB" in lines
    )
    # One trace, from the sensor reading to the actuator.
    trace = [line for line in lines if line.startswith("trace ")]
    assert trace[0].startswith("trace      the first alert, from sensor reading to actuators (")
    assert re.match(r"trace\s+loom\.publish greenhouse\.south\.temperature \(", trace[1])
    assert any("loom.handle agent caretaker" in line for line in trace)
    assert any("loom.capability greenhouse.vent" in line for line in trace)
    # Where traces and metrics can be seen, and a clean end.
    assert re.search(r"telemetry +metrics: Prometheus scrapes http://127\.0\.0\.1:\d+/metrics", out)
    assert "every source exhausted and the agents idle" in out
    assert "loom: app 'flagship' stopped cleanly after" in out
    assert "  agent        monitor: 12 handled, stopped" in lines
    assert "  actions      9 ok, 0 failed" in lines
    # State: in RocksDB, flushed.
    state = await _state(flagship)
    assert state["monitor"]["seen"] == b"12"
    assert state["monitor"]["runs"] == b"1"
    south = json.loads(state["monitor"]["sensor.south.temperature"])
    assert (south["count"], south["last"]) == (3, 27.9)
    assert state["caretaker"]["actions"] == b"6"


async def test_a_second_run_remembers_the_first(flagship):
    assert (await _run(flagship))[0] == 0
    code, out, err = await _run(flagship)
    assert code == 0, out + err
    assert "monitor    run 2: 12 readings remembered from earlier runs" in out.splitlines()
    assert "monitor    12 readings this run, 24 in all, kept in RocksDB" in out.splitlines()
    state = await _state(flagship)
    assert (state["monitor"]["seen"], state["monitor"]["runs"]) == (b"24", b"2")


def _scripted_model(request: RecordedRequest) -> Reply:
    """Answers like a model that follows the prompt: a tool call, then a short answer."""
    body = request.json()
    if any(m["role"] == "tool" for m in body["messages"]):
        return Reply.completion(text="Handled by the scripted model.")
    prompt = body["messages"][-1]["content"]
    zone = re.match(r"Zone (\w+):", prompt).group(1)
    arguments = json.dumps({"message": f"scripted model: {zone} needs care"})
    return Reply.completion(tool_calls=[(f"call_{zone}", "greenhouse_notify", arguments)])


async def test_it_uses_the_endpoint_openai_base_url_names(flagship):
    async with ChatCompletionsServer(_scripted_model) as server:
        code, out, err = await _run(flagship, OPENAI_BASE_URL=server.base_url)
    assert code == 0, out + err
    lines = out.splitlines()
    endpoint = f"{server.base_url}/chat/completions"
    assert f"OPENAI_BASE_URL is set, so the router can use 'openai' (cloud at {endpoint})" in out
    routes = [line for line in lines if line.startswith("router ")]
    assert len(routes) == 3
    assert all(line.startswith("router     route Cloud -> 'openai', cloud") for line in routes)
    assert "notify     scripted model: south needs care" in lines
    assert "caretaker  model says: Handled by the scripted model." in lines
    assert any("(model calls: openai x6)" in line for line in lines)
    assert "[deterministic model" not in out
    # Every request went to the endpoint with the actuators offered as tools.
    assert len(server.requests) == 6
    first = server.requests[0]
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    offered = {tool["function"]["name"] for tool in first.json()["tools"]}
    assert offered == {"greenhouse_heat", "greenhouse_mist", "greenhouse_notify", "greenhouse_vent"}
    assert first.json()["messages"][0]["role"] == "system"


async def test_an_endpoint_answering_garbage_degrades_to_the_local_model(flagship):
    async with ChatCompletionsServer(lambda request: Reply.raw(b"<html>bad gateway</html>")) as (
        server
    ):
        code, out, err = await _run(flagship, OPENAI_BASE_URL=server.base_url)
    assert code == 0, out + err
    routes = [line for line in out.splitlines() if line.startswith("router ")]
    assert len(routes) == 3
    assert all("-> 'deterministic' (its fallback), local" in line for line in routes)
    assert "model calls: deterministic x6" in out
    assert "model calls  failed: openai 6" in out
    assert len(server.requests) == 6
    assert "provider 'openai' failed" in err
