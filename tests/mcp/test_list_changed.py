"""tools/list_changed: a real SDK server adds and removes tools at run time, on both
protocol eras, and the broker follows (a removed tool is unregistered)."""

from __future__ import annotations

import json

import pytest

from loom import ActionCall, ActionStatus

from .conftest import python_server, wait_for


@pytest.mark.parametrize(("protocol", "era"), [("legacy", "2025-11-25"), ("auto", "2026-07-28")])
async def test_tools_follow_list_changed(broker, manager, protocol, era):
    session = await manager.add_server(
        {"name": "dyn", "protocol": protocol, **python_server("dynamic")}
    )
    assert session.protocol_version == era
    assert broker.describe("dyn:greet") is None

    added = await broker.invoke(
        ActionCall("dyn:add_tool", json.dumps({"name": "greet", "text": "hello"}).encode())
    )
    assert added.status is ActionStatus.OK, added.error
    await wait_for(lambda: broker.describe("dyn:greet") is not None, what="dyn:greet registered")
    assert broker.describe("dyn:greet").metadata["description"] == "answers 'hello'"
    greeting = await broker.invoke(ActionCall("dyn:greet"))
    assert json.loads(greeting.output)["text"] == "hello"

    removed = await broker.invoke(
        ActionCall("dyn:remove_tool", json.dumps({"name": "greet"}).encode())
    )
    assert removed.status is ActionStatus.OK
    await wait_for(lambda: broker.describe("dyn:greet") is None, what="dyn:greet unregistered")
    assert "greet" not in session.tools
    gone = await broker.invoke(ActionCall("dyn:greet"))
    assert gone.error.code == "NOT_FOUND"
    assert {d.name for d in manager.capabilities()} == {
        "dyn:add_tool",
        "dyn:progress",
        "dyn:remove_tool",
    }


async def test_include_and_exclude_filter_the_tools(broker, manager):
    await manager.add_server(
        {
            "name": "dyn",
            "protocol": "legacy",
            "include_tools": ["*_tool", "greet*"],
            "exclude_tools": ["remove_*"],
            **python_server("dynamic"),
        }
    )
    assert {d.name for d in broker.list_capabilities()} == {"dyn:add_tool"}
    await broker.invoke(
        ActionCall("dyn:add_tool", json.dumps({"name": "greeter", "text": "hi"}).encode())
    )
    await wait_for(lambda: broker.describe("dyn:greeter") is not None)
    await broker.invoke(
        ActionCall("dyn:add_tool", json.dumps({"name": "other", "text": "no"}).encode())
    )
    await broker.invoke(
        ActionCall("dyn:add_tool", json.dumps({"name": "greet2", "text": "hi"}).encode())
    )
    await wait_for(lambda: broker.describe("dyn:greet2") is not None)
    assert broker.describe("dyn:other") is None
