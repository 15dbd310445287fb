"""The whole tool-use loop: ToolOrchestrator → OpenAI-compatible client → a real HTTP server
that answers like a model with tool calls → real capabilities through a real ActionBroker →
results back to the server → the answer. And the same loop with no model at all."""

from __future__ import annotations

import json

import pytest

from loom import ActionStatus
from loom.actions import ActionBroker, NativeProvider, capability
from loom.models import (
    DETERMINISTIC_LABEL,
    DeterministicModel,
    Location,
    ModelRouter,
    OpenAIChatModel,
    ProviderEntry,
    Route,
    RoutingRequest,
    RulePolicy,
)
from loom.models.testing import ChatCompletionsServer, RecordedRequest, Reply
from loom.tools import StopReason, ToolOrchestrator

ROOMS = {"kitchen": 21.5, "attic": 27.0}


@capability("sensor.temperature", description="The temperature of a room in °C")
def temperature(room: str) -> float:
    if room not in ROOMS:
        raise ValueError(f"no sensor in {room!r}")
    return ROOMS[room]


@capability("text.upper", description="Upper-case a text")
async def upper(text: str) -> str:
    return text.upper()


@pytest.fixture
async def broker():
    async with ActionBroker() as b:
        b.register(NativeProvider(temperature))
        b.register(NativeProvider(upper))
        yield b


def _model_like(stream: bool):
    """A responder that behaves like a tool-calling model, from what it is sent: first it
    calls every offered tool (arguments chosen from the tool's name), then it answers with
    the results it got back."""

    def respond(request: RecordedRequest) -> Reply:
        body = request.json()
        messages = body["messages"]
        results = [m for m in messages if m["role"] == "tool"]
        if not results:
            calls = []
            for n, tool in enumerate(body.get("tools", [])):
                name = tool["function"]["name"]
                arguments = {"room": "kitchen"} if "temperature" in name else {"text": "loom"}
                calls.append((f"call_{n}", name, json.dumps(arguments)))
            return Reply.streamed("", calls) if stream else Reply.completion(None, calls)
        answer = "; ".join(f"{m['tool_call_id']}={m['content']}" for m in results)
        return Reply.streamed(answer) if stream else Reply.completion(answer)

    return respond


@pytest.mark.parametrize("stream", [False, True])
async def test_a_full_tool_loop_through_the_client(broker, stream):
    async with ChatCompletionsServer(_model_like(stream)) as server:
        llm = OpenAIChatModel(base_url=server.base_url, model="tool-model", stream=stream)
        orchestrator = ToolOrchestrator(broker, llm)
        result = await orchestrator.run("How warm is the kitchen? And shout 'loom'.")
        await llm.aclose()
    assert result.stop_reason is StopReason.ANSWER and result.steps == 2
    assert sorted(result.answer.split("; ")) == ["call_0=21.5", 'call_1="LOOM"']
    assert [(c.capability, c.status) for c in result.calls] == [
        ("sensor.temperature", ActionStatus.OK),
        ("text.upper", ActionStatus.OK),
    ]
    first, second = (r.json() for r in server.requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["sensor_temperature", "text_upper"]
    assert first["tools"][0]["type"] == "function"
    assert first["tools"][0]["function"]["parameters"]["properties"]["room"]["type"] == "string"
    assistant = second["messages"][1]
    assert assistant["role"] == "assistant"
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == [
        "sensor_temperature",
        "text_upper",
    ]
    assert [m["tool_call_id"] for m in second["messages"][2:]] == ["call_0", "call_1"]


async def test_a_failing_tool_goes_back_to_the_model(broker):
    def respond(request: RecordedRequest) -> Reply:
        messages = request.json()["messages"]
        if messages[-1]["role"] == "tool":
            return Reply.completion(f"The sensor said: {messages[-1]['content']}")
        return Reply.completion(None, [("c1", "sensor_temperature", '{"room": "garage"}')])

    async with ChatCompletionsServer(respond) as server:
        llm = OpenAIChatModel(base_url=server.base_url, model="m")
        result = await ToolOrchestrator(broker, llm).run("garage?")
        await llm.aclose()
    assert result.stop_reason is StopReason.ANSWER
    assert result.calls[0].status is ActionStatus.ERROR
    assert "no sensor in 'garage'" in result.answer


async def test_the_model_failing_mid_loop_is_raised_by_the_orchestrator(broker):
    async with ChatCompletionsServer() as server:
        server.script(
            Reply.completion(None, [("c1", "text_upper", '{"text": "x"}')]),
            Reply.status(500, "model crashed"),
        )
        llm = OpenAIChatModel(base_url=server.base_url, model="m", max_retries=0)
        with pytest.raises(Exception, match="model crashed"):
            await ToolOrchestrator(broker, llm).run("shout x")
        await llm.aclose()


async def test_the_loop_runs_with_no_model_at_all(broker):
    result = await ToolOrchestrator(broker, DeterministicModel()).run(
        'Check sensor.temperature {"room": "attic"} please'
    )
    assert result.stop_reason is StopReason.ANSWER and result.steps == 2
    assert result.calls[0].capability == "sensor.temperature"
    assert result.answer.startswith(DETERMINISTIC_LABEL)
    assert "sensor_temperature -> 27.0" in result.answer


async def test_the_loop_runs_through_the_router(broker):
    async with ChatCompletionsServer(_model_like(stream=False)) as server:
        cloud = OpenAIChatModel(base_url=server.base_url, model="m")
        router = ModelRouter(
            RulePolicy(),
            [
                ProviderEntry(name="local", model=DeterministicModel(), location=Location.LOCAL),
                ProviderEntry(name="cloud", model=cloud, location=Location.CLOUD),
            ],
        )
        public = router.chat_model(RoutingRequest(privacy="public", event_type="chat"))
        result = await ToolOrchestrator(broker, public).run("kitchen warmth, and upper-case loom")
        assert public.last is not None and public.last.decision.route is Route.CLOUD
        assert result.answer is not None and "call_0=21.5" in result.answer
        sent = len(server.requests)

        private = router.chat_model(RoutingRequest(privacy="private", event_type="chat"))
        result = await ToolOrchestrator(broker, private).run("text.upper: secret plans")
        await router.aclose()
    assert len(server.requests) == sent  # nothing private reached the endpoint
    assert private.last is not None and private.last.provider == "local"
    assert result.calls[0].output == b'"SECRET PLANS"'
