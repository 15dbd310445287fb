"""The tool orchestrator: OpenAI tool format, reversible names, parallel calls, bounds, and
bad tool calls fed back to the model (UPSTREAM.md §6 and its "AC (ours)")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loom import ActionCall, ActionStatus, CapabilityDescriptor, ProviderKind
from loom.actions import ActionBroker, ErrorCode, NativeProvider, Provider, capability
from loom.tools import (
    PERMISSIVE_PARAMETERS,
    ChatModel,
    Message,
    ModelTurn,
    ScriptedModel,
    ScriptExhaustedError,
    StopReason,
    ToolCall,
    ToolNameMap,
    ToolOrchestrator,
    ToolSpec,
    is_tool_name,
)


@capability("weather.get", description="Weather for a city")
async def weather(city: str, days: int = 1) -> dict[str, Any]:
    return {"city": city, "days": days, "sky": "clear"}


class McpLikeProvider(Provider):
    """A provider named the way MCP tools are (``server:tool``), recording its calls."""

    def __init__(self, name: str, schema: str | None = None) -> None:
        metadata = {"desc": f"MCP tool {name}"}
        if schema is not None:
            metadata["input_schema"] = schema
        self.descriptor = CapabilityDescriptor(name, "1.0", ProviderKind.MCP, metadata)
        self.calls: list[ActionCall] = []

    async def invoke(self, call: ActionCall) -> bytes:
        self.calls.append(call)
        return json.dumps({"tool": self.descriptor.name, "args": json.loads(call.payload)}).encode()


def tool_names(tools: Sequence[ToolSpec]) -> list[str]:
    return [t["function"]["name"] for t in tools]


def tool_messages(messages: Sequence[Message]) -> list[Message]:
    return [m for m in messages if m["role"] == "tool"]


@pytest.fixture
async def broker() -> Any:
    async with ActionBroker() as b:
        b.register(NativeProvider(weather))
        yield b


# -- the offer ---------------------------------------------------------------------------------


async def test_tools_are_offered_in_openai_chat_format(broker: ActionBroker) -> None:
    read_file = McpLikeProvider(
        "fs:read_file", '{"type":"object","properties":{"path":{"type":"string"}}}'
    )
    broker.register(read_file)
    broker.register(McpLikeProvider("everything:echo"))  # no schema
    broker.register(McpLikeProvider("broken:schema", "[1, 2]"))  # not an object schema
    model = ScriptedModel([ModelTurn.answer("nothing to do")])
    await ToolOrchestrator(broker, model).run("hi")
    tools = model.requests[0].tools
    assert tools[0] == {
        "type": "function",
        "function": {
            "name": "broken_schema",
            "description": "MCP tool broken:schema",
            "parameters": PERMISSIVE_PARAMETERS,
        },
    }
    assert tools[1]["function"]["name"] == "everything_echo"
    assert tools[1]["function"]["parameters"] == {"type": "object", "properties": {}}
    assert tools[2]["function"]["parameters"]["properties"] == {"path": {"type": "string"}}
    assert tools[3]["function"] == {
        "name": "weather_get",
        "description": "Weather for a city",
        "parameters": weather.input_schema,
    }
    assert all(is_tool_name(n) for n in tool_names(tools))


async def test_offer_takes_newest_version_filters_and_caps(broker: ActionBroker) -> None:
    broker.register(McpLikeProvider("a:one"))
    broker.register(McpLikeProvider("b:two"))
    old = McpLikeProvider("weather.get")
    old.descriptor.version = "0.9"
    broker.register(old)
    tools, _ = ToolOrchestrator(broker, ScriptedModel([ModelTurn()]), max_tools=2).offer()
    assert tool_names(tools) == ["a_one", "b_two"]
    tools, _ = ToolOrchestrator(
        broker, ScriptedModel([ModelTurn()]), capabilities={"weather.get", "nope"}
    ).offer()
    assert tool_names(tools) == ["weather_get"]
    assert tools[0]["function"]["description"] == "Weather for a city"  # 1.0, not 0.9


# -- the loop ----------------------------------------------------------------------------------


async def test_answer_without_tools_stops_at_once(broker: ActionBroker) -> None:
    model = ScriptedModel([ModelTurn.answer("42")])
    result = await ToolOrchestrator(broker, model).run("question", system="be brief")
    assert (result.answer, result.stop_reason, result.steps) == ("42", StopReason.ANSWER, 1)
    assert result.messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "question"},
        {"role": "assistant", "content": "42"},
    ]
    assert result.calls == []
    assert isinstance(model, ChatModel)


async def test_tool_results_go_back_as_tool_messages(broker: ActionBroker) -> None:
    model = ScriptedModel(
        [
            ModelTurn.calls(ToolCall("call_1", "weather_get", '{"city": "Oslo", "days": 2}')),
            ModelTurn.answer("Clear in Oslo."),
        ]
    )
    result = await ToolOrchestrator(broker, model).run([{"role": "user", "content": "Oslo?"}])
    assert result.stop_reason is StopReason.ANSWER and result.steps == 2
    assert result.answer == "Clear in Oslo."
    assistant = result.messages[1]
    assert assistant == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather_get", "arguments": '{"city": "Oslo", "days": 2}'},
            }
        ],
    }
    tool = result.messages[2]
    assert tool["role"] == "tool" and tool["tool_call_id"] == "call_1"
    assert json.loads(tool["content"]) == {"city": "Oslo", "days": 2, "sky": "clear"}
    assert model.requests[1].messages == result.messages[:3]  # the model saw the result
    (record,) = result.calls
    assert (record.step, record.tool, record.capability) == (1, "weather_get", "weather.get")
    assert record.status is ActionStatus.OK and record.error is None


async def test_mcp_and_colliding_names_map_back_to_their_capability(broker: ActionBroker) -> None:
    dotted = McpLikeProvider("web.search")
    plain = McpLikeProvider("web_search")
    mcp = McpLikeProvider("fs:read_file")
    for provider in (dotted, plain, mcp):
        broker.register(provider)
    _, names = ToolOrchestrator(broker, ScriptedModel([ModelTurn()])).offer()
    targets = ["fs:read_file", "web.search", "web_search"]
    calls = [ToolCall(f"c{i}", names[n], f'{{"i": {i}}}') for i, n in enumerate(targets)]
    model = ScriptedModel([ModelTurn.calls(*calls), ModelTurn.answer("done")])
    result = await ToolOrchestrator(broker, model).run("go")
    assert [r.status for r in result.calls] == [ActionStatus.OK] * len(calls)
    assert [r.capability for r in result.calls] == targets
    for provider in (dotted, plain, mcp):
        assert len(provider.calls) == 1
        args = json.loads(provider.calls[0].payload)
        assert calls[args["i"]].name == names[provider.descriptor.name]


async def test_independent_calls_run_in_parallel(broker: ActionBroker) -> None:
    started = {"a": asyncio.Event(), "b": asyncio.Event()}

    def rendezvous(me: str, other: str) -> Any:
        @capability(f"slow.{me}")
        async def slow() -> str:
            started[me].set()
            # Only finishes when the other call has started too: sequential runs would
            # time out here instead.
            await started[other].wait()
            return f"{me} saw {other}"

        return slow

    broker.register(NativeProvider(rendezvous("a", "b")))
    broker.register(NativeProvider(rendezvous("b", "a")))
    model = ScriptedModel(
        [
            ModelTurn.calls(ToolCall("1", "slow_a"), ToolCall("2", "slow_b")),
            ModelTurn.answer("both"),
        ]
    )
    result = await ToolOrchestrator(broker, model, tool_timeout_ms=5_000).run("go")
    assert [r.status for r in result.calls] == [ActionStatus.OK, ActionStatus.OK]
    assert [m["content"] for m in tool_messages(result.messages)] == ['"a saw b"', '"b saw a"']
    assert [m["tool_call_id"] for m in tool_messages(result.messages)] == ["1", "2"]


async def test_sequential_mode_and_parallel_bound(broker: ActionBroker) -> None:
    log: list[str] = []
    active = peak = 0

    def tracked(name: str) -> Any:
        @capability(name)
        async def step() -> str:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            log.append(f"start {name}")
            for _ in range(5):
                await asyncio.sleep(0)
            log.append(f"end {name}")
            active -= 1
            return name

        return step

    for name in ("t1", "t2", "t3"):
        broker.register(NativeProvider(tracked(name)))
    turn = ModelTurn.calls(ToolCall("1", "t1"), ToolCall("2", "t2"), ToolCall("3", "t3"))

    model = ScriptedModel([turn, ModelTurn.answer("ok")])
    await ToolOrchestrator(broker, model, parallel=False).run("go")
    assert log == ["start t1", "end t1", "start t2", "end t2", "start t3", "end t3"]
    assert peak == 1

    log.clear()
    model = ScriptedModel([turn, ModelTurn.answer("ok")])
    result = await ToolOrchestrator(broker, model, max_parallel=2).run("go")
    assert log[:2] == ["start t1", "start t2"] and peak == 2
    assert [r.capability for r in result.calls] == ["t1", "t2", "t3"]  # the model's order


async def test_step_bound(broker: ActionBroker) -> None:
    model = ScriptedModel(
        [ModelTurn.calls(ToolCall("", "weather_get", '{"city": "Oslo"}'), text="thinking")],
        repeat_last=True,
    )
    result = await ToolOrchestrator(broker, model, max_steps=3).run("loop forever")
    assert result.stop_reason is StopReason.MAX_STEPS
    assert result.steps == 3 and len(model.requests) == 3
    assert len(result.calls) == 3 and result.answer == "thinking"
    ids = [r.tool_call_id for r in result.calls]
    assert all(i.startswith("call_") for i in ids) and len(set(ids)) == 3  # ids filled in
    assert [m["tool_call_id"] for m in tool_messages(result.messages)] == ids


async def test_time_budget_stops_a_hanging_model(broker: ActionBroker) -> None:
    async def never(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> ModelTurn:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    model = ScriptedModel([never])
    result = await ToolOrchestrator(broker, model, time_budget_s=0.1).run("hello")
    assert result.stop_reason is StopReason.TIME_BUDGET
    assert result.steps == 0 and result.answer is None


async def test_time_budget_caps_a_hanging_tool(broker: ActionBroker) -> None:
    @capability("stuck")
    async def stuck() -> str:
        await asyncio.Event().wait()
        return "never"

    broker.register(NativeProvider(stuck))
    model = ScriptedModel([ModelTurn.calls(ToolCall("1", "stuck"))], repeat_last=True)
    orchestrator = ToolOrchestrator(broker, model, time_budget_s=0.15, tool_timeout_ms=60_000)
    result = await orchestrator.run("go")
    assert result.stop_reason is StopReason.TIME_BUDGET
    (record,) = result.calls
    assert record.status is ActionStatus.TIMEOUT
    assert record.error is not None and record.error.code == ErrorCode.TIMEOUT
    content = json.loads(tool_messages(result.messages)[0]["content"])
    assert content == {
        "error": {"status": "TIMEOUT", "code": "TIMEOUT", "message": "Action timed out"}
    }


async def test_model_failure_is_raised() -> None:
    async def broken(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> ModelTurn:
        raise ConnectionError("model server down")

    async with ActionBroker() as b:
        with pytest.raises(ConnectionError, match="model server down"):
            await ToolOrchestrator(b, ScriptedModel([broken])).run("hi")
        with pytest.raises(ScriptExhaustedError, match="turn 2; the script has 1"):
            await ToolOrchestrator(
                b, ScriptedModel([ModelTurn.calls(ToolCall("1", "nothing"))])
            ).run("hi")


# -- bad tool calls are fed back, not raised ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "arguments", "code", "words"),
    [
        ("weather_get", "{not json", ErrorCode.INVALID_PARAMS, "not valid JSON"),
        ("weather_get", "[1, 2]", ErrorCode.INVALID_PARAMS, "must be a JSON object, not list"),
        ("weather_get", '{"days": 2}', ErrorCode.INVALID_PARAMS, "$.city: Field required"),
        ("weather_get", '{"city": 5}', ErrorCode.INVALID_PARAMS, "$.city"),
        ("weather.get", "{}", ErrorCode.NOT_FOUND, "no tool named 'weather.get'"),
        ("delete_everything", "{}", ErrorCode.NOT_FOUND, "offered: weather_get"),
    ],
)
async def test_bad_tool_calls_are_fed_back_to_the_model(
    broker: ActionBroker, name: str, arguments: str, code: str, words: str
) -> None:
    model = ScriptedModel(
        [ModelTurn.calls(ToolCall("x", name, arguments)), ModelTurn.answer("sorry")]
    )
    result = await ToolOrchestrator(broker, model).run("go")
    assert result.stop_reason is StopReason.ANSWER and result.answer == "sorry"
    (record,) = result.calls
    assert record.status is ActionStatus.ERROR
    assert record.error is not None and record.error.code == code
    assert words in record.error.message
    error = json.loads(model.requests[1].messages[-1]["content"])["error"]
    assert (error["status"], error["code"]) == ("ERROR", code)
    assert words in error["message"]


async def test_arguments_as_an_object_and_empty_arguments(broker: ActionBroker) -> None:
    @capability("now")
    async def now() -> str:
        return "noon"

    broker.register(NativeProvider(now))
    model = ScriptedModel(
        [
            ModelTurn.calls(
                ToolCall("1", "weather_get", {"city": "Rome"}), ToolCall("2", "now", "")
            ),
            ModelTurn.answer("ok"),
        ]
    )
    result = await ToolOrchestrator(broker, model).run("go")
    assert [r.status for r in result.calls] == [ActionStatus.OK, ActionStatus.OK]
    sent = result.messages[1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent) == {"city": "Rome"}  # the transcript carries JSON text


async def test_calls_carry_correlation_and_a_capped_timeout(broker: ActionBroker) -> None:
    provider = McpLikeProvider("srv:tool")
    broker.register(provider)
    model = ScriptedModel([ModelTurn.calls(ToolCall("1", "srv_tool", "{}")), ModelTurn.answer("")])
    await ToolOrchestrator(broker, model, tool_timeout_ms=1_234).run("go", correlation_id="c")
    (call,) = provider.calls
    assert call.headers["correlation_id"] == "c" == call.correlation_id
    assert call.timeout_ms == 1_234 and call.id.startswith("call_") and call.version == ""


async def test_long_and_binary_results_are_bounded(broker: ActionBroker) -> None:
    @capability("big")
    async def big() -> str:
        return "x" * 100

    @capability("blob")
    async def blob() -> bytes:
        return b"\xff\xfe\x00"

    broker.register(NativeProvider(big))
    broker.register(NativeProvider(blob))
    model = ScriptedModel(
        [ModelTurn.calls(ToolCall("1", "big"), ToolCall("2", "blob")), ModelTurn.answer("")]
    )
    result = await ToolOrchestrator(broker, model, max_result_chars=30).run("go")
    big_msg, blob_msg = (m["content"] for m in tool_messages(result.messages))
    assert big_msg == '"' + "x" * 29 + "… [72 more characters cut]"
    assert blob_msg == "<3 bytes of binary output>"


def test_orchestrator_refuses_bad_bounds() -> None:
    with pytest.raises(ValueError, match="max_steps must be > 0"):
        ToolOrchestrator(ActionBroker(), ScriptedModel([ModelTurn()]), max_steps=0)
    with pytest.raises(ValueError, match="at least one step"):
        ScriptedModel([])


# -- the name map ------------------------------------------------------------------------------


def test_name_map_keeps_valid_names_and_is_readable() -> None:
    names = ToolNameMap(["web_search", "web.search", "fs:read_file", "a" * 70, "ünïcode"])
    assert names["web_search"] == "web_search"
    assert names["fs:read_file"] == "fs_read_file"
    assert names["web.search"].startswith("web_search_") and len(names["web.search"]) == 19
    assert len(names["a" * 70]) == 64
    assert names["ünïcode"] == "_n_code"
    assert names.capability("unknown") is None


NAMES = st.text(min_size=0, max_size=90)
COLLIDING = st.text(alphabet="ab._:-/ é", min_size=1, max_size=70)


@given(st.sets(st.one_of(NAMES, COLLIDING), max_size=40))
def test_name_map_round_trip_property(names: set[str]) -> None:
    mapping = ToolNameMap(names)
    tools = [mapping[n] for n in names]
    assert all(is_tool_name(t) for t in tools)
    assert len(set(tools)) == len(names)  # no collisions
    assert all(mapping.capability(mapping[n]) == n for n in names)
    assert dict(ToolNameMap(sorted(names, reverse=True))) == dict(mapping)  # order-free
