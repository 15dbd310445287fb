"""Server mode: agents' state as read-only resources, and Loom's log records forwarded to
clients after ``logging/setLevel``, both against a real ``loom mcp serve`` over stdio."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import textwrap
import warnings
from contextlib import asynccontextmanager

import mcp_types
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from loom.actions import ActionBroker
from loom.state import RocksDBStateStore
from loom_mcp import LoomMcpServer
from loom_mcp._state_resources import RESOURCE_NOT_FOUND

from .conftest import ROOT, wait_for
from .test_server_mode import LOOM, _serve_env

STATE = {
    ("counter", "count"): b"41",
    ("counter", "note"): b"plain words",
    ("counter", "raw"): b"\xff\x00\xfe",
    ("team/b", "a key"): b'{"x": 1}',
    ("hidden", "secret"): b"do not serve",
}


@pytest.fixture
async def app_toml(tmp_path):
    """An app whose RocksDB store already holds the agents' state above."""
    store_path = tmp_path / "state"
    async with RocksDBStateStore(str(store_path)) as store:
        for (agent, key), value in STATE.items():
            await store.for_agent(agent).put(key, value, sync=True)
    (tmp_path / "state_agents.py").write_text("async def idle(ctx, event):\n    pass\n")
    path = tmp_path / "loom.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [app]
            name = "stateful"
            [state]
            backend = "rocksdb"
            options = {{ path = "{store_path}" }}
            [[agents]]
            id = "counter"
            type = "state_agents:idle"
            topics = ["counts"]
            [[agents]]
            id = "fresh"
            type = "state_agents:idle"
            topics = ["counts"]
            """
        )
    )
    return path, store_path


@asynccontextmanager
async def serve(*args, logs=None):
    params = StdioServerParameters(
        command=LOOM[0], args=[*LOOM[1:], "mcp", "serve", *args], env=_serve_env(), cwd=str(ROOT)
    )
    async with Client(params, mode="legacy", cache=None, logging_callback=logs) as client:
        yield client


async def _read(client, uri):
    return (await client.read_resource(uri)).contents


async def test_agent_state_is_listed_and_read(app_toml):
    path, _ = app_toml
    async with serve(str(path), "--agent-state", "--agent-state-include", "[cft]*") as client:
        caps = client.server_capabilities
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
        templates = (await client.list_resource_templates()).resource_templates
        count = await _read(client, "loom://agents/counter/state/count")
        note = await _read(client, "loom://agents/counter/state/note")
        raw = await _read(client, "loom://agents/counter/state/raw")
        other = await _read(client, "loom://agents/team%2Fb/state/a%20key")
        index = await _read(client, "loom://agents/counter/state")
        fresh = await _read(client, "loom://agents/fresh/state")
    assert set(listed) == {
        "loom://agents/counter/state",
        "loom://agents/counter/state/count",
        "loom://agents/counter/state/note",
        "loom://agents/counter/state/raw",
        "loom://agents/fresh/state",  # running, nothing stored yet
        "loom://agents/team%2Fb/state",
        "loom://agents/team%2Fb/state/a%20key",
    }  # "hidden" does not match the include pattern
    assert listed["loom://agents/counter/state/raw"].size == 3
    assert {t.uri_template for t in templates} == {
        "loom://agents/{agent_id}/state",
        "loom://agents/{agent_id}/state/{key}",
    }
    assert (count[0].text, count[0].mime_type) == ("41", "application/json")
    assert (note[0].text, note[0].mime_type) == ("plain words", "text/plain")
    assert base64.b64decode(raw[0].blob) == b"\xff\x00\xfe"
    assert json.loads(other[0].text) == {"x": 1}
    document = json.loads(index[0].text)
    assert [k["key"] for k in document["keys"]] == ["count", "note", "raw"]
    assert document["keys"][0]["uri"] == "loom://agents/counter/state/count"
    assert json.loads(fresh[0].text) == {"agent_id": "fresh", "keys": [], "truncated": False}
    assert caps.resources is not None
    assert (caps.resources.subscribe, caps.resources.list_changed) == (False, False)


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("loom://agents/counter/state/nope", "agent 'counter' has no state key 'nope'"),
        ("loom://agents/tom/state", "no agent 'tom' has state here"),
        ("loom://agents/hidden/state/secret", "the state of agent 'hidden' is not served"),
        ("file:///etc/passwd", "this server serves only loom://agents/"),
        ("loom://agents/counter/memory", "expected loom://agents/{agent_id}/state"),
    ],
)
async def test_an_unknown_uri_is_a_clear_error_and_nothing_can_write(app_toml, uri, why):
    path, store_path = app_toml
    async with serve(str(path), "--agent-state", "--agent-state-include", "[ct]*") as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource(uri)
        assert caught.value.error.code == RESOURCE_NOT_FOUND
        assert why in caught.value.error.message and uri in caught.value.error.message
        # No subscription, no write: the methods that could change anything are unknown.
        request = mcp_types.SubscribeRequest(params=mcp_types.SubscribeRequestParams(uri=uri))
        with pytest.raises(MCPError) as refused:
            await client.session.send_request(request, mcp_types.EmptyResult)
        assert refused.value.error.code == mcp_types.METHOD_NOT_FOUND
        # The server goes on.
        assert (await _read(client, "loom://agents/counter/state/count"))[0].text == "41"
    async with RocksDBStateStore(str(store_path)) as store:
        stored = {}
        async for agent_key, value in store.namespace("agent").scan(""):
            agent, _, key = agent_key.partition("\x00")
            stored[(agent, key)] = value
    assert stored == STATE


async def test_without_agent_state_there_are_no_resources(app_toml):
    path, _ = app_toml
    async with serve(str(path)) as client:
        with pytest.raises(MCPError) as caught:
            await client.list_resources()
        assert caught.value.error.code == mcp_types.METHOD_NOT_FOUND


def test_agent_state_needs_an_app():
    done = subprocess.run(
        [*LOOM, "mcp", "serve", "--agent-state"],
        capture_output=True,
        text=True,
        env=_serve_env(),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--agent-state needs an app's loom.toml" in done.stderr


async def _set_level(client, level):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # logging is deprecated in 2026-07-28
        await client.set_logging_level(level)


async def test_log_records_reach_the_client_at_its_level():
    received: list[mcp_types.LoggingMessageNotificationParams] = []

    async def on_log(params):
        received.append(params)

    def texts():
        return [str(p.data) for p in received]

    async with serve("--plugin", "mcp_test_plugin", logs=on_log) as client:

        async def log(level, message, count=1):
            args = {"level": level, "message": message, "count": count}
            result = await client.call_tool("test.log", args)
            assert not result.is_error, result.content

        await log("warning", "before")
        await _set_level(client, "info")
        await log("info", "one")
        await wait_for(lambda: "one 0" in texts(), what="the info record")
        await _set_level(client, "error")
        await log("warning", "two")
        await log("error", "three")
        await wait_for(lambda: "three 0" in texts(), what="the error record")

        await _set_level(client, "info")
        await log("info", "flood", 5000)

        def notes():
            return [p for p in received if "log records dropped" in str(p.data)]

        def accounted():
            dropped = sum(int(str(p.data).split()[0]) for p in notes())
            return dropped + sum(t.startswith("flood ") for t in texts())

        await wait_for(lambda: accounted() == 5000, what="every record sent or counted")
        flood = [t for t in texts() if t.startswith("flood ")]
        dropped = 5000 - len(flood)
    assert "before 0" not in texts()  # before setLevel: nothing
    assert "two 0" not in texts()  # below the level set
    one = next(p for p in received if p.data == "one 0")
    assert (one.level, one.logger) == ("info", "loom.test.plugin")
    assert {p.level for p in notes()} == {"warning"}
    # The capability runs in a worker thread while the forwarder drains, so more than one
    # buffer's worth gets through; what did not is counted, none is lost unaccounted.
    assert dropped > 0
    assert len(flood) + dropped == 5000
    numbers = [int(t.split()[1]) for t in flood]
    assert numbers == sorted(numbers) and numbers[0] == 0  # in order; new ones dropped


async def test_log_forwarding_stops_when_the_client_leaves():
    loom_logger = logging.getLogger("loom")
    level_before = loom_logger.level
    async with ActionBroker() as broker:
        server = LoomMcpServer(broker)
        async with Client(server.server, mode="legacy", cache=None) as client:
            await _set_level(client, "debug")
            assert server.logs in loom_logger.handlers
            assert loom_logger.level == logging.DEBUG
        logging.getLogger("loom.test").error("after the client left")
        await wait_for(lambda: server.logs not in loom_logger.handlers, what="the detach")
    assert loom_logger.level == level_before
