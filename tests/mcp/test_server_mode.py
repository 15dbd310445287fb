"""Server mode: the broker's capabilities as MCP tools, seen by real MCP clients (the SDK's
own, in process and against ``loom mcp serve`` over stdio and HTTP, and the TypeScript
inspector CLI)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import mcp_types
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from loom._action import ActionCall, CapabilityDescriptor, ProviderKind
from loom.actions import ActionBroker, NativeProvider, Provider
from loom_mcp import LoomMcpServer

from .conftest import PLUGINS, ROOT, python_server

sys.path.insert(0, str(PLUGINS))
import mcp_test_plugin

LOOM = [sys.executable, "-m", "loom.cli"]


class Shout(Provider):
    """A capability whose input is a JSON string, not an object."""

    descriptor = CapabilityDescriptor(
        "text.shout",
        provider=ProviderKind.WASM,
        metadata={"input_schema": '{"type": "string"}', "description": "Shout a string"},
    )

    async def invoke(self, call: ActionCall) -> bytes:
        return json.dumps(json.loads(call.payload).upper() + "!").encode()


@asynccontextmanager
async def served():
    # Not a fixture: the SDK client's task groups must be entered and left by one task.
    async with ActionBroker() as broker:
        broker.register(NativeProvider(mcp_test_plugin.upper))
        broker.register(NativeProvider(mcp_test_plugin.divide))
        broker.register(Shout())
        server = LoomMcpServer(broker, name="loom-test")
        async with Client(server.server, cache=None) as client:
            yield client


async def test_capabilities_are_tools_with_their_schemas():
    async with served() as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"math.divide", "text.shout", "text.upper"}
    upper = tools["text.upper"]
    assert upper.description == "Upper-case a text"
    assert upper.input_schema["properties"]["text"]["type"] == "string"
    assert upper.input_schema["required"] == ["text"]
    assert upper.output_schema is None  # a string output: not an object schema
    assert upper.meta["loom/capability"] == "text.upper"
    shout = tools["text.shout"]
    assert shout.input_schema == {
        "type": "object",
        "properties": {"input": {"type": "string"}},
        "required": ["input"],
    }
    assert shout.meta["loom/provider"] == "WASM"


async def test_calls_go_through_the_broker_and_errors_are_results():
    async with served() as client:
        await _calls(client)


async def _calls(served):
    upper = await served.call_tool("text.upper", {"text": "loud"})
    assert (upper.is_error, upper.content[0].text) == (False, '"LOUD"')
    shout = await served.call_tool("text.shout", {"input": "hey"})
    assert shout.content[0].text == '"HEY!"'

    by_zero = await served.call_tool("math.divide", {"a": 1, "b": 0})
    assert by_zero.is_error
    assert by_zero.content[0].text.startswith("CAPABILITY_ERROR: ")
    assert by_zero.meta["loom/error"]["code"] == "CAPABILITY_ERROR"

    bad = await served.call_tool("text.upper", {"text": 3})
    assert bad.is_error and bad.content[0].text.startswith("INVALID_PARAMS: ")
    assert bad.meta["loom/error"]["details"]["field"] == "$.text"

    with pytest.raises(MCPError) as caught:
        await served.call_tool("no.such.tool", {})
    assert caught.value.error.code == mcp_types.INVALID_PARAMS


def _serve_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOM_")}
    env["PYTHONPATH"] = os.pathsep.join([str(PLUGINS), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    return env


@pytest.fixture
def front_config(tmp_path, everything_bin):
    path = tmp_path / "front.toml"
    path.write_text(
        f'[[mcp.servers]]\nname = "everything"\ncommand = "{everything_bin}"\nargs = ["stdio"]\n'
    )
    return path


@pytest.mark.mcp
async def test_loom_mcp_serve_over_stdio_fronts_another_server(front_config):
    params = StdioServerParameters(
        command=LOOM[0],
        args=[*LOOM[1:], "mcp", "serve", str(front_config), "--plugin", "mcp_test_plugin"],
        env=_serve_env(),
        cwd=str(ROOT),
    )
    async with Client(params, cache=None) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"text.upper", "math.divide", "everything__echo"} <= names
        native = await client.call_tool("text.upper", {"text": "abc"})
        assert native.content[0].text == '"ABC"'
        echo = await client.call_tool("everything__echo", {"message": "round trip"})
        assert echo.content[0].text == "Echo: round trip"
        image = await client.call_tool("everything__get-tiny-image", {})
        assert [block.type for block in image.content] == ["text", "image", "text"]
        weather = await client.call_tool(
            "everything__get-structured-content", {"location": "Chicago"}
        )
        assert set(weather.structured_content) == {"temperature", "conditions", "humidity"}


async def _start_http(*extra):
    process = await asyncio.create_subprocess_exec(
        *LOOM,
        "mcp",
        "serve",
        "--plugin",
        "mcp_test_plugin",
        "--http",
        "0",
        *extra,
        env=_serve_env(),
        cwd=str(ROOT),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    lines = []
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        lines.append(line)
        assert line, f"loom mcp serve ended: {''.join(lines)}"
        if " tools at http" in line:
            return process, line.split(" tools at ")[1].split()[0]


async def _stop(process):
    process.terminate()
    assert await asyncio.wait_for(process.wait(), 20) == 0


async def test_loom_mcp_serve_over_http_requires_its_token():
    process, url = await _start_http("--token", "s3cret")
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
        async with httpx2.AsyncClient() as http:
            refused = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            assert refused.status_code == 401
            wrong = await http.post(
                url,
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={"Authorization": "Bearer nope"},
            )
            assert wrong.status_code == 401
        headers = {"Authorization": "Bearer s3cret"}
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            Client(_transport(url, http), cache=None) as client,
        ):
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"text.upper", "math.divide"} <= names
            result = await client.call_tool("math.divide", {"a": 1, "b": 4})
            assert result.content[0].text == "0.25"
    finally:
        await _stop(process)


def _transport(url, http):
    from mcp.client.streamable_http import streamable_http_client

    return streamable_http_client(url, http_client=http)


def _inspector(inspector_bin, *args):
    # The inspector wants a package.json in its working directory's parent.
    cwd = inspector_bin.parent.parent
    result = subprocess.run(
        [str(inspector_bin), "--cli", *args],
        cwd=cwd,
        env=_serve_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.mcp
def test_the_inspector_cli_lists_and_calls_over_stdio(inspector_bin):
    serve = [LOOM[0], *LOOM[1:], "mcp", "serve", "--plugin", "mcp_test_plugin"]
    listing = _inspector(inspector_bin, *serve, "--method", "tools/list")
    assert {"text.upper", "math.divide"} <= {tool["name"] for tool in listing["tools"]}
    called = _inspector(
        inspector_bin,
        *serve,
        "--method",
        "tools/call",
        "--tool-name",
        "text.upper",
        "--tool-arg",
        "text=inspected",
    )
    assert called["content"] == [{"type": "text", "text": '"INSPECTED"'}]
    assert called["isError"] is False


@pytest.mark.mcp
async def test_the_inspector_cli_lists_and_calls_over_http(inspector_bin):
    process, url = await _start_http()
    try:
        listing = await asyncio.to_thread(
            _inspector, inspector_bin, url, "--transport", "http", "--method", "tools/list"
        )
        assert "text.upper" in {tool["name"] for tool in listing["tools"]}
        called = await asyncio.to_thread(
            _inspector,
            inspector_bin,
            url,
            "--transport",
            "http",
            "--method",
            "tools/call",
            "--tool-name",
            "text.upper",
            "--tool-arg",
            "text=over http",
        )
        assert called["content"][0]["text"] == '"OVER HTTP"'
    finally:
        await _stop(process)


@pytest.mark.mcp
def test_loom_mcp_tools_and_call(tmp_path, everything_bin, time_bin):
    config = tmp_path / "servers.toml"
    config.write_text(
        f'[[servers]]\nname = "everything"\ncommand = "{everything_bin}"\nargs = ["stdio"]\n\n'
        f'[[servers]]\nname = "time"\ncommand = "{time_bin}"\n\n'
        '[[servers]]\nname = "ghost"\ncommand = "/nonexistent/ghost"\n'
    )

    def loom(*args):
        return subprocess.run(
            [*LOOM, "mcp", *args], capture_output=True, text=True, env=_serve_env(), timeout=120
        )

    tools = loom("tools", str(config), "--json")
    assert tools.returncode == 1  # the ghost failed
    document = json.loads(tools.stdout)
    names = {c["name"] for c in document["capabilities"]}
    assert {"everything:echo", "time:get_current_time"} <= names
    assert "cannot start '/nonexistent/ghost'" in document["failures"]["ghost"]
    assert {s["name"]: s["protocol_version"] for s in document["servers"]} == {
        "everything": "2025-11-25",
        "time": "2026-07-28",
    }

    called = loom("call", str(config), "everything:echo", '{"message": "from the cli"}')
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["text"] == "Echo: from the cli"
    refused = loom("call", str(config), "time:get_current_time", '{"tz": "UTC"}')
    assert refused.returncode == 1
    assert "INVALID_PARAMS: $.timezone" in refused.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_loom_mcp_serve_stops_on_a_signal_and_ends_its_servers(tmp_path, sig):
    config = tmp_path / "loom.toml"
    dynamic = python_server("dynamic")
    config.write_text(
        f'[[mcp.servers]]\nname = "dyn"\ncommand = "{dynamic["command"]}"\n'
        f"args = {json.dumps(dynamic['args'])}\n"
    )
    process = await asyncio.create_subprocess_exec(
        *LOOM,
        "mcp",
        "serve",
        str(config),
        env=_serve_env(),
        stdin=subprocess.PIPE,  # held open: only the signal can end it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    while b"tools over stdio" not in await asyncio.wait_for(process.stderr.readline(), 30):
        pass
    children = {
        int(pid)
        for task in Path(f"/proc/{process.pid}/task").iterdir()
        for pid in (task / "children").read_text().split()
    }
    assert len(children) == 1
    process.send_signal(sig)
    assert await asyncio.wait_for(process.wait(), 20) == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in children)
