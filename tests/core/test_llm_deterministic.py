"""The deterministic provider: reproducible, labelled answers, and tool calls on request."""

from __future__ import annotations

import json

import pytest

from loom.models import DETERMINISTIC_LABEL, DeterministicModel, Location, TurnAssembler
from loom.tools import ChatModel


def tool(name, properties=None, required=()):
    return {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {
                "type": "object",
                "properties": properties or {},
                "required": list(required),
            },
        },
    }


WEATHER = tool(
    "weather_get", {"city": {"type": "string"}, "units": {"type": "string", "default": "C"}}
)
UPPER = tool("text_upper", {"text": {"type": "string"}}, ["text"])
CLOCK = tool(
    "clock_now", {"tz": {"type": "string", "default": "UTC"}, "precise": {"type": "boolean"}}
)


def user(text):
    return [{"role": "user", "content": text}]


@pytest.fixture
def model():
    return DeterministicModel()


def test_it_is_a_local_chat_model(model):
    assert isinstance(model, ChatModel) and model.location is Location.LOCAL


async def test_same_prompt_same_answer_different_prompt_different_answer(model):
    a1 = await model.complete(user("What is Loom?"))
    a2 = await DeterministicModel().complete(user("What is Loom?"))
    b = await model.complete(user("What is Loom? "))
    assert a1 == a2
    assert a1.text != b.text
    assert a1.text.startswith(DETERMINISTIC_LABEL) and "What is Loom?" in a1.text
    assert a1.finish_reason == "stop" and a1.provider == "deterministic"


async def test_no_tool_call_when_no_tool_is_named(model):
    turn = await model.complete(user("just chat"), [WEATHER, UPPER])
    assert turn.tool_calls == () and turn.text.startswith(DETERMINISTIC_LABEL)


async def test_a_named_tool_with_json_arguments(model):
    turn = await model.complete(user('please weather_get {"city": "Oslo"} now'), [WEATHER, UPPER])
    [call] = turn.tool_calls
    assert call.name == "weather_get" and json.loads(call.arguments) == {"city": "Oslo"}
    assert turn.finish_reason == "tool_calls" and turn.text is None


async def test_call_syntax_and_dotted_names(model):
    turn = await model.complete(user('weather.get({"city": "Lima"})'), [WEATHER])
    assert json.loads(turn.tool_calls[0].arguments) == {"city": "Lima"}


async def test_a_single_string_parameter_takes_the_text_after_the_name(model):
    turn = await model.complete(user("text.upper: make this loud"), [UPPER])
    assert json.loads(turn.tool_calls[0].arguments) == {"text": "make this loud"}


async def test_schema_defaults_fill_the_rest(model):
    turn = await model.complete(user("what does clock_now say"), [CLOCK])
    assert json.loads(turn.tool_calls[0].arguments) == {"tz": "UTC"}


async def test_several_tools_in_the_order_named(model):
    turn = await model.complete(user("first clock_now then text_upper: hi"), [UPPER, CLOCK])
    assert [c.name for c in turn.tool_calls] == ["clock_now", "text_upper"]
    assert len({c.id for c in turn.tool_calls}) == 2
    assert json.loads(turn.tool_calls[1].arguments) == {"text": "hi"}


async def test_a_name_inside_another_word_is_not_a_call(model):
    turn = await model.complete(user("my_text_upper_case is not a tool"), [UPPER])
    assert turn.tool_calls == ()


async def test_after_tool_results_it_answers_with_them(model):
    first = await model.complete(user("text_upper: abc"), [UPPER])
    messages = [
        *user("text_upper: abc"),
        first.to_message(),
        {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": '"ABC"'},
    ]
    turn = await model.complete(messages, [UPPER])
    assert turn.tool_calls == ()
    assert turn.text == f'{DETERMINISTIC_LABEL} Tool results: text_upper -> "ABC"'


async def test_streaming_gives_the_same_turn(model):
    for prompt in ("hello there, model", 'text_upper: x and weather_get {"city": "Rome"}'):
        whole = await model.complete(user(prompt), [UPPER, WEATHER])
        assembler = TurnAssembler(model=whole.model, provider=whole.provider)
        async for piece in model.stream(user(prompt), [UPPER, WEATHER]):
            assembler.add(piece)
        assert assembler.turn() == whole


async def test_bad_input_is_a_clear_error(model):
    with pytest.raises(ValueError, match="at least one message"):
        await model.complete([])
    with pytest.raises(ValueError, match="message 0 is not a mapping with a 'role'"):
        await model.complete([{"content": "x"}])
    with pytest.raises(ValueError, match="tool 1"):
        await model.complete(user("x"), [UPPER, {"type": "function"}])
