"""server-everything (npm) over stdio: tools as capabilities, content shapes, resources,
prompts, subscriptions, progress, sampling and roots, all through the real peer."""

from __future__ import annotations

import asyncio
import base64
import json

import mcp_types
import pytest

from loom import ActionCall, ActionStatus, ProviderKind
from loom_mcp import McpRequestError, McpSessionManager

from .conftest import wait_for

pytestmark = pytest.mark.mcp


def everything(binary, **extra):
    return {"name": "everything", "command": str(binary), "args": ["stdio"], **extra}


async def invoke(broker, capability, arguments=None, **kwargs):
    payload = b"" if arguments is None else json.dumps(arguments).encode()
    return await broker.invoke(ActionCall(capability, payload, **kwargs))


def output(result):
    assert result.status is ActionStatus.OK, result.error
    return json.loads(result.output)


async def test_tools_become_capabilities_named_server_colon_tool(broker, manager, everything_bin):
    session = await manager.add_server(everything(everything_bin))
    names = {d.name for d in broker.list_capabilities()}
    assert {"everything:echo", "everything:get-sum", "everything:get-structured-content"} <= names
    assert names == {f"everything:{tool}" for tool in session.tools}
    echo = broker.describe("everything:echo")
    assert echo.provider is ProviderKind.MCP
    tool = session.tools["echo"]
    assert json.loads(echo.metadata["input_schema"]) == tool.input_schema
    assert echo.metadata["description"] == tool.description == "Echoes back the input string"
    assert (echo.metadata["mcp_server"], echo.metadata["mcp_tool"]) == ("everything", "echo")
    structured = broker.describe("everything:get-structured-content")
    assert json.loads(structured.metadata["output_schema"])["required"] == [
        "temperature",
        "conditions",
        "humidity",
    ]
    status = manager.servers()[0]
    assert (status.state, status.transport, status.protocol_version) == (
        "connected",
        "stdio",
        "2025-11-25",
    )
    assert status.server_info.startswith("mcp-servers/everything")


async def test_text_structured_image_and_resource_results(broker, manager, everything_bin):
    await manager.add_server(everything(everything_bin))
    echo = output(await invoke(broker, "everything:echo", {"message": "hi"}))
    assert echo == {"content": [{"type": "text", "text": "Echo: hi"}], "text": "Echo: hi"}

    total = output(await invoke(broker, "everything:get-sum", {"a": 2, "b": 40}))
    assert "42" in total["text"]

    weather = output(
        await invoke(broker, "everything:get-structured-content", {"location": "Chicago"})
    )
    assert set(weather["structured"]) == {"temperature", "conditions", "humidity"}
    assert json.loads(weather["text"]) == weather["structured"]

    image = output(await invoke(broker, "everything:get-tiny-image"))
    [picture] = [block for block in image["content"] if block["type"] == "image"]
    assert picture["mimeType"] == "image/png"
    assert base64.b64decode(picture["data"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "structured" not in image

    reference = output(
        await invoke(
            broker, "everything:get-resource-reference", {"resourceType": "Text", "resourceId": 3}
        )
    )
    [embedded] = [block for block in reference["content"] if block["type"] == "resource"]
    assert embedded["resource"]["uri"] == "demo://resource/dynamic/text/3"
    assert "Resource 3" in embedded["resource"]["text"]


async def test_bad_arguments_are_refused_with_the_field_named(broker, manager, everything_bin):
    await manager.add_server(everything(everything_bin))
    wrong_type = await invoke(broker, "everything:echo", {"message": 5})
    assert (wrong_type.status, wrong_type.error.code) == (ActionStatus.ERROR, "INVALID_PARAMS")
    assert wrong_type.error.details["field"] == "$.message"
    missing = await invoke(broker, "everything:get-sum", {"a": 1})
    assert missing.error.details["field"] == "$.b"
    not_an_object = await broker.invoke(ActionCall("everything:echo", b"[1, 2]"))
    assert not_an_object.error.code == "INVALID_PARAMS"
    # The server is still fine afterwards.
    assert output(await invoke(broker, "everything:echo", {"message": "ok"}))["text"] == "Echo: ok"


async def test_resources_templates_and_prompts(manager, everything_bin):
    await manager.add_server(everything(everything_bin))
    resources = await manager.list_resources("everything")
    assert any(r.uri.startswith("demo://resource/static/document/") for r in resources)
    templates = await manager.list_resource_templates("everything")
    assert "demo://resource/dynamic/text/{resourceId}" in {t.uri_template for t in templates}

    [text] = await manager.read_resource("everything", "demo://resource/dynamic/text/2")
    assert isinstance(text, mcp_types.TextResourceContents)
    assert text.text.startswith("Resource 2")
    [blob] = await manager.read_resource("everything", "demo://resource/dynamic/blob/2")
    assert isinstance(blob, mcp_types.BlobResourceContents)
    assert base64.b64decode(blob.blob)

    prompts = {p.name: p for p in await manager.list_prompts("everything")}
    assert {"simple-prompt", "args-prompt"} <= set(prompts)
    assert [a.name for a in prompts["args-prompt"].arguments] == ["city", "state"]
    rendered = await manager.get_prompt("everything", "args-prompt", {"city": "Lyon"})
    assert "Lyon" in rendered.messages[0].content.text

    with pytest.raises(McpRequestError) as caught:
        await manager.get_prompt("everything", "no-such-prompt")
    assert caught.value.code == mcp_types.INVALID_PARAMS
    assert caught.value.server == "everything"


async def test_resource_updates_and_progress_become_bus_events(broker, bus, everything_bin):
    updates = await bus.subscribe("mcp.everything.resource_updated")
    progress = await bus.subscribe("mcp.everything.progress")
    async with McpSessionManager(broker, bus=bus) as manager:
        await manager.add_server(everything(everything_bin))
        uri = "demo://resource/dynamic/text/1"
        await manager.subscribe("everything", uri)
        await invoke(broker, "everything:toggle-subscriber-updates")
        topic, event = await asyncio.wait_for(updates.get(), 10)
        assert (topic, event.type, event.source) == (
            "mcp.everything.resource_updated",
            "mcp.resource_updated",
            "mcp:everything",
        )
        assert json.loads(event.payload) == {"uri": uri}

        call = ActionCall(
            "everything:trigger-long-running-operation", b'{"duration": 0.3, "steps": 3}'
        )
        assert (await broker.invoke(call)).status is ActionStatus.OK
        seen = []
        while len(seen) < 3:
            _, event = await asyncio.wait_for(progress.get(), 10)
            seen.append(json.loads(event.payload))
        assert [p["progress"] for p in seen] == [1, 2, 3]
        assert {p["call_id"] for p in seen} == {call.id}
        assert seen[0]["total"] == 3
        assert seen[0]["capability"] == "everything:trigger-long-running-operation"


async def test_sampling_is_refused_unless_the_app_allows_it(broker, manager, everything_bin):
    session = await manager.add_server(everything(everything_bin))
    await wait_for(lambda: "simulate-research-query" in session.tools, what="conditional tools")
    assert "trigger-sampling-request" not in session.tools  # we declared no sampling


async def test_sampling_requests_are_answered_by_the_app(broker, everything_bin):
    asked = []

    async def sample(server, params):
        asked.append((server, params.messages[0].content.text, params.max_tokens))
        return mcp_types.CreateMessageResult(
            role="assistant",
            content=mcp_types.TextContent(type="text", text="forty-two"),
            model="loom-test-model",
        )

    async with McpSessionManager(broker, sampling=sample) as manager:
        session = await manager.add_server(everything(everything_bin, allow_sampling=True))
        await wait_for(lambda: "trigger-sampling-request" in session.tools, what="sampling tool")
        await wait_for(lambda: broker.describe("everything:trigger-sampling-request"))
        result = output(
            await invoke(
                broker,
                "everything:trigger-sampling-request",
                {"prompt": "what is six times seven?", "maxTokens": 20},
            )
        )
    assert "forty-two" in result["text"] and "loom-test-model" in result["text"]
    [(server, text, max_tokens)] = asked
    assert server == "everything" and "what is six times seven?" in text and max_tokens == 20


async def test_roots_are_offered_to_the_server(broker, manager, everything_bin, tmp_path):
    session = await manager.add_server(everything(everything_bin, roots=[str(tmp_path)]))
    await wait_for(lambda: "get-roots-list" in session.tools, what="the roots tool")
    await wait_for(lambda: broker.describe("everything:get-roots-list"))
    listing = output(await invoke(broker, "everything:get-roots-list"))
    assert tmp_path.resolve().as_uri() in listing["text"]
