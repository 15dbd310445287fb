"""The OpenAI-compatible client against a real HTTP server on 127.0.0.1 that the tests run.

The server (``loom.models.testing.ChatCompletionsServer``) streams, fails with 5xx and 429,
stalls, drops connections, returns garbage and tool calls, over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time

import pytest

from loom.models import (
    LLMAuthError,
    LLMConfigError,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
    LLMResponseError,
    LLMStatusError,
    LLMTimeoutError,
    ModelTurn,
    OpenAIChatModel,
    OpenAIConfig,
    StreamDelta,
    TurnAssembler,
)
from loom.models.testing import ChatCompletionsServer, Reply, completion_body, stream_chunks
from loom.tools import ChatModel, ToolCall

KEY = "sk-test-0123456789abcdef-never-log-me"
USER = [{"role": "user", "content": "What time is it in Oslo?"}]
CLOCK = {
    "type": "function",
    "function": {
        "name": "clock_now",
        "description": "The time in a zone",
        "parameters": {
            "type": "object",
            "properties": {"tz": {"type": "string"}},
            "required": ["tz"],
        },
    },
}


@pytest.fixture
async def server():
    async with ChatCompletionsServer() as s:
        yield s


def client(server: ChatCompletionsServer, **options) -> OpenAIChatModel:
    defaults = {
        "base_url": server.base_url,
        "model": "test-model",
        "api_key": KEY,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "timeout_s": 2.0,
        "deadline_s": 10.0,
    }
    defaults.update(options)
    return OpenAIChatModel(OpenAIConfig(**defaults))


@pytest.fixture
async def llm(server):
    model = client(server)
    yield model
    await model.aclose()


# -- the happy paths ------------------------------------------------------------------


async def test_it_is_a_chat_model_for_the_tool_loop(llm):
    assert isinstance(llm, ChatModel)


async def test_plain_completion(server, llm):
    server.script(Reply.completion("It is noon."))
    turn = await llm.complete(USER)
    assert isinstance(turn, ModelTurn)
    assert turn.text == "It is noon."
    assert turn.tool_calls == ()
    assert turn.finish_reason == "stop"
    assert turn.provider == "openai" and turn.model == "scripted"
    assert turn.usage is not None and turn.usage.total_tokens == 15


async def test_request_is_the_openai_shape(server, llm):
    server.script(Reply.completion("ok"))
    await llm.complete(
        USER, [CLOCK], tool_choice="clock_now", temperature=0.2, max_tokens=64, extra={"seed": 7}
    )
    request = server.requests[0]
    assert request.method == "POST" and request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["model"] == "test-model"
    assert body["messages"] == USER
    assert body["tools"] == [CLOCK]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "clock_now"}}
    assert body["temperature"] == 0.2 and body["max_tokens"] == 64 and body["seed"] == 7
    assert body["stream"] is False


async def test_tool_choice_strings_and_object_form_pass_through(server, llm):
    server.script(Reply.completion("a"), Reply.completion("b"))
    await llm.complete(USER, [CLOCK], tool_choice="required")
    forced = {"type": "function", "function": {"name": "clock_now"}}
    await llm.complete(USER, [CLOCK], tool_choice=forced)
    assert server.requests[0].json()["tool_choice"] == "required"
    assert server.requests[1].json()["tool_choice"] == forced


async def test_a_bare_function_is_wrapped_in_the_tool_shape(server, llm):
    server.script(Reply.completion("ok"))
    await llm.complete(USER, [CLOCK["function"]])
    assert server.requests[0].json()["tools"] == [CLOCK]


async def test_tool_calls_in_a_completion(server, llm):
    server.script(Reply.completion(None, [("call_1", "clock_now", '{"tz": "Europe/Oslo"}')]))
    turn = await llm.complete(USER, [CLOCK])
    assert turn.text is None
    assert turn.finish_reason == "tool_calls"
    assert turn.tool_calls == (ToolCall("call_1", "clock_now", '{"tz": "Europe/Oslo"}'),)


async def test_streamed_text_is_joined(server, llm):
    server.script(Reply.streamed("The time in Oslo is noon."))
    turn = await llm.complete(USER, stream=True)
    assert turn.text == "The time in Oslo is noon."
    assert turn.finish_reason == "stop"
    assert server.requests[0].json()["stream"] is True


async def test_stream_yields_pieces_as_they_come(server, llm):
    server.script(Reply.streamed("one two three", pieces=3))
    pieces = [d async for d in llm.stream(USER)]
    assert [p.text for p in pieces if p.text] == ["one t", "wo th", "ree"]
    assert pieces[-1].finish_reason == "stop"


async def test_streamed_tool_call_deltas_are_assembled_by_index(server, llm):
    calls = [
        ("call_a", "clock_now", '{"tz": "Europe/Oslo"}'),
        ("call_b", "clock_now", '{"tz": "Asia/Tokyo"}'),
    ]
    server.script(Reply.streamed("", calls))
    turn = await llm.complete(USER, [CLOCK], stream=True)
    assert turn.tool_calls == tuple(ToolCall(*c) for c in calls)
    assert turn.finish_reason == "tool_calls"


async def test_interleaved_tool_call_deltas_still_assemble(server, llm):
    def chunk(delta, finish=None):
        return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def call(index, arguments, call_id=None, name=None):
        function = {"arguments": arguments}
        if name:
            function["name"] = name
        item = {"index": index, "function": function}
        if call_id:
            item["id"] = call_id
        return chunk({"tool_calls": [item]})

    server.script(
        Reply.stream(
            [
                call(0, "", "c0", "clock_now"),
                call(1, '{"tz":', "c1", "clock_now"),
                call(0, '{"tz": "UTC"}'),
                call(1, ' "CET"}'),
                chunk({}, "tool_calls"),
            ]
        )
    )
    turn = await llm.complete(USER, [CLOCK], stream=True)
    assert [(c.id, c.arguments) for c in turn.tool_calls] == [
        ("c0", '{"tz": "UTC"}'),
        ("c1", '{"tz": "CET"}'),
    ]


async def test_stream_usage_is_asked_for_and_read(server):
    llm = client(server, stream_usage=True, stream=True)
    chunks = [
        *stream_chunks("hi"),
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}},
    ]
    server.script(Reply.stream(chunks))
    turn = await llm.complete(USER)
    await llm.aclose()
    assert server.requests[0].json()["stream_options"] == {"include_usage": True}
    assert turn.usage is not None and turn.usage.total_tokens == 4


async def test_a_server_that_ignores_stream_true_still_works(server, llm):
    server.script(Reply.completion("whole", [("c", "clock_now", "{}")]))
    turn = await llm.complete(USER, [CLOCK], stream=True)
    assert turn.text == "whole" and turn.tool_calls[0].name == "clock_now"


async def test_sse_comments_crlf_and_split_events(server, llm):
    chunk = json.dumps({"choices": [{"index": 0, "delta": {"content": "x"}}]})
    done = json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    server.script(Reply.stream([": keep-alive", f"data: {chunk}", f"data: {done}"]))
    turn = await llm.complete(USER, stream=True)
    assert turn.text == "x"


async def test_keep_alive_reuses_the_connection(server, llm):
    server.script(Reply.completion("a"), Reply.completion("b"), Reply.streamed("c"))
    for _ in range(2):
        await llm.complete(USER)
    await llm.complete(USER, stream=True)
    assert len(server.requests) == 3


# -- retries ----------------------------------------------------------------------------


async def test_5xx_is_retried_then_succeeds(server, llm, caplog):
    server.script(Reply.status(502, "bad gateway"), Reply.status(503), Reply.completion("ok"))
    with caplog.at_level(logging.WARNING, logger="loom.llm"):
        turn = await llm.complete(USER)
    assert turn.text == "ok"
    assert len(server.requests) == 3
    assert "attempt 2 of 4" in caplog.text and "attempt 3 of 4" in caplog.text


async def test_a_500_after_the_retries_is_a_clear_error(server):
    llm = client(server, max_retries=2)
    server.script(*[Reply.status(500, {"error": {"message": "boom"}})] * 3)
    with pytest.raises(LLMStatusError) as info:
        await llm.complete(USER)
    await llm.aclose()
    error = info.value
    assert error.status_code == 500 and error.retryable and error.attempts == 3
    assert error.provider == "openai"
    assert error.endpoint == f"{server.base_url}/chat/completions"
    assert str(error).startswith(f"openai {server.base_url}/chat/completions (HTTP 500)")
    assert "boom" in str(error) and "after 3 attempts" in str(error)
    assert len(server.requests) == 3


async def test_4xx_is_not_retried(server, llm):
    server.script(Reply.status(400, {"error": {"message": "bad tool schema"}}))
    with pytest.raises(LLMStatusError) as info:
        await llm.complete(USER)
    assert info.value.status_code == 400 and not info.value.retryable
    assert "bad tool schema" in str(info.value)
    assert len(server.requests) == 1


async def test_404_hints_at_the_url_and_model(server, llm):
    server.script(Reply.status(404, "no such model"))
    with pytest.raises(LLMStatusError, match="check the base URL and the model name"):
        await llm.complete(USER)


async def test_429_honours_retry_after(server):
    # The backoff alone would wait 20 s or more: finishing at all shows Retry-After ruled.
    llm = client(server, backoff_base_s=40.0, backoff_max_s=40.0)
    server.script(
        Reply.status(429, "slow down", headers={"retry-after-ms": "150"}),
        Reply.status(429, "slow down", headers={"Retry-After": "0"}),
        Reply.completion("ok"),
    )
    started = time.monotonic()
    turn = await llm.complete(USER)
    waited = time.monotonic() - started
    await llm.aclose()
    assert turn.text == "ok"
    assert waited >= 0.15  # asyncio.sleep never returns early: a lower bound, not a timing
    assert len(server.requests) == 3


async def test_a_retry_after_beyond_the_cap_fails_at_once(server):
    llm = client(server, max_retry_after_s=5.0)
    server.script(Reply.status(429, "quota", headers={"Retry-After": "3600"}))
    with pytest.raises(LLMRateLimitError) as info:
        await llm.complete(USER)
    await llm.aclose()
    assert info.value.retry_after == 3600 and info.value.status_code == 429
    assert "more than max_retry_after_s=5" in str(info.value)
    assert len(server.requests) == 1


async def test_a_retry_after_beyond_the_deadline_fails_at_once(server):
    llm = client(server, deadline_s=0.5)
    server.script(Reply.status(429, "later", headers={"Retry-After": "3"}))
    with pytest.raises(LLMRateLimitError, match="no time left"):
        await llm.complete(USER)
    await llm.aclose()


async def test_a_dropped_connection_is_retried(server, llm):
    server.script(Reply.drop(), Reply.completion("ok"))
    assert (await llm.complete(USER)).text == "ok"
    assert len(server.requests) == 2


async def test_nothing_listening_is_a_connection_error(server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = OpenAIChatModel(
        base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, backoff_base_s=0.01
    )
    with pytest.raises(LLMConnectionError) as info:
        await llm.complete(USER)
    await llm.aclose()
    assert info.value.retryable and info.value.attempts == 2
    assert f"127.0.0.1:{port}/v1/chat/completions" in str(info.value)
    assert "cannot connect" in str(info.value)


async def test_stream_failures_before_the_first_piece_are_retried(server, llm):
    server.script(Reply.status(503), Reply.streamed("fine"))
    assert (await llm.complete(USER, stream=True)).text == "fine"


async def test_stream_failures_after_the_first_piece_are_raised(server, llm):
    # The body ends mid-answer (no finish_reason, no [DONE]): nothing can be retried now.
    server.script(Reply.stream(stream_chunks("partial answer")[:2], done=False))
    with pytest.raises(LLMConnectionError, match="ended before the answer finished") as info:
        await llm.complete(USER, stream=True)
    assert info.value.attempts == 1
    assert len(server.requests) == 1


# -- timeouts, deadline and cancellation ---------------------------------------------


async def test_a_stalled_server_is_a_read_timeout(server):
    llm = client(server, timeout_s=0.2, max_retries=1)
    server.script(Reply.stall(), Reply.stall())
    with pytest.raises(LLMTimeoutError) as info:
        await llm.complete(USER)
    await llm.aclose()
    assert info.value.retryable and info.value.attempts == 2
    assert "stalled" in str(info.value) and server.base_url in str(info.value)


async def test_a_stream_that_stalls_mid_answer_is_a_timeout(server):
    llm = client(server, timeout_s=0.2)
    server.script(Reply.stream(stream_chunks("never finished"), stall_after=2))
    with pytest.raises(LLMTimeoutError, match=r"no data for 0\.2 s"):
        await llm.complete(USER, stream=True)
    await llm.aclose()
    assert len(server.requests) == 1


async def test_the_deadline_bounds_the_whole_call(server):
    llm = client(server, timeout_s=30.0, deadline_s=0.3)
    server.script(Reply.stall())
    with pytest.raises(LLMTimeoutError, match="deadline") as info:
        await llm.complete(USER)
    await llm.aclose()
    assert not info.value.retryable


async def test_the_deadline_bounds_a_trickling_stream(server):
    # Each event arrives well within timeout_s, but the whole answer takes too long.
    llm = client(server, timeout_s=5.0)
    server.script(Reply.stream(stream_chunks("a" * 60, pieces=60), interval_s=0.05))
    with pytest.raises(LLMTimeoutError, match="deadline"):
        await llm.complete(USER, stream=True, deadline_s=0.4)
    await llm.aclose()


async def test_a_per_call_deadline_overrides_the_config(server, llm):
    server.script(Reply.stall())
    with pytest.raises(LLMTimeoutError, match="deadline"):
        await llm.complete(USER, deadline_s=0.2)


async def test_cancelling_a_stream_closes_the_http_stream(server, llm):
    server.script(Reply.stream(stream_chunks("x" * 400, pieces=400), interval_s=0.02))
    task = asyncio.create_task(llm.complete(USER, stream=True))
    while not server.requests:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await server.wait_disconnect(timeout_s=5.0)
    assert server.disconnects == 1


async def test_cancelling_a_waiting_request_closes_the_connection(server, llm):
    server.script(Reply.stall())
    task = asyncio.create_task(llm.complete(USER))
    while not server.requests:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await server.wait_disconnect(timeout_s=5.0)


async def test_closing_a_stream_early_closes_the_http_stream(server, llm):
    server.script(Reply.stream(stream_chunks("y" * 400, pieces=400), interval_s=0.02))
    async with contextlib.aclosing(llm.stream(USER)) as pieces:
        async for piece in pieces:
            assert isinstance(piece, StreamDelta)
            break
    await server.wait_disconnect(timeout_s=5.0)


# -- garbage ----------------------------------------------------------------------------


async def test_garbage_json_is_a_clear_error_and_not_retried(server, llm):
    server.script(Reply.raw(b"<html><body>Gateway login</body></html>"))
    with pytest.raises(LLMResponseError) as info:
        await llm.complete(USER)
    message = str(info.value)
    assert "not JSON" in message and "Gateway login" in message
    assert server.base_url in message
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ([1, 2], "JSON list"),
        ({"choices": []}, "no 'choices'"),
        ({"choices": [{"message": {"role": "assistant"}}]}, "neither content nor tool calls"),
        ({"choices": [{"message": {"tool_calls": [{"function": {}}]}}]}, "no function name"),
    ],
)
async def test_json_that_is_no_completion_is_a_clear_error(server, llm, body, what):
    server.script(Reply.json(body))
    with pytest.raises(LLMResponseError, match=what):
        await llm.complete(USER)


async def test_a_garbage_event_in_a_stream_is_a_clear_error(server, llm):
    server.script(Reply.stream([stream_chunks("ok")[1], "data: {not json"]))
    with pytest.raises(LLMResponseError, match="streamed event is not JSON"):
        await llm.complete(USER, stream=True)


async def test_an_error_event_in_a_stream_is_raised(server, llm):
    server.script(Reply.stream([{"error": {"message": "context too long", "code": 400}}]))
    with pytest.raises(LLMStatusError, match="context too long") as info:
        await llm.complete(USER, stream=True)
    assert info.value.status_code == 400 and not info.value.retryable
    assert len(server.requests) == 1


async def test_a_retryable_error_event_before_any_piece_is_retried(server, llm):
    server.script(
        Reply.stream([{"error": {"message": "model overloaded", "code": 503}}]),
        Reply.streamed("recovered"),
    )
    assert (await llm.complete(USER, stream=True)).text == "recovered"


async def test_a_streamed_tool_call_without_a_name_is_a_clear_error(server, llm):
    chunk = {
        "choices": [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
                "finish_reason": "tool_calls",
            }
        ]
    }
    server.script(Reply.stream([chunk]))
    with pytest.raises(LLMResponseError, match="no function name"):
        await llm.complete(USER, stream=True)


async def test_the_client_goes_on_after_failures(server, llm):
    server.script(Reply.raw(b"junk"), Reply.status(400, "no"), Reply.completion("still here"))
    for _ in range(2):
        with pytest.raises(LLMError):
            await llm.complete(USER)
    assert (await llm.complete(USER)).text == "still here"


# -- credentials --------------------------------------------------------------------------


def _echo_auth(request):
    # A hostile or careless server that echoes the credential back in its error body.
    return Reply.status(500, f"cannot serve {request.headers.get('authorization')}")


async def test_the_key_never_appears_in_logs_errors_or_reprs(caplog):
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx2's, httpcore2's, asyncio's
    async with ChatCompletionsServer(_echo_auth) as server:
        llm = client(server, max_retries=2)
        with pytest.raises(LLMStatusError) as info:
            await llm.complete(USER)
        server.script(Reply.status(401, f"invalid key {KEY}"))
        with pytest.raises(LLMAuthError) as auth:
            await llm.complete(USER)
        await llm.aclose()
        assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"  # it was sent
    texts = [
        caplog.text,
        str(info.value),
        repr(info.value),
        info.value.body,
        str(auth.value),
        repr(llm),
        repr(llm.config),
        str(llm.config.api_key),
    ]
    for text in texts:
        assert KEY not in text
    assert "Bearer ***" in str(info.value)
    assert "check OPENAI_API_KEY" in str(auth.value)
    assert "loom.llm" in caplog.text  # the retries were logged, masked


async def test_a_missing_key_is_named_on_401(server):
    llm = OpenAIChatModel(base_url=server.base_url, api_key_env="VLLM_API_KEY", environ={})
    server.script(Reply.status(401, "who are you"))
    with pytest.raises(LLMAuthError, match="no API key was sent: set VLLM_API_KEY"):
        await llm.complete(USER)
    await llm.aclose()
    assert "authorization" not in server.requests[0].headers


def test_credentials_in_the_base_url_are_not_shown():
    config = OpenAIConfig(base_url="https://user:hunter22@gateway.example/v1?token=abc")
    assert config.endpoint == "https://gateway.example/v1/chat/completions"
    assert "hunter22" not in repr(OpenAIChatModel(config))


# -- configuration --------------------------------------------------------------------


def test_config_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_MODEL", "gpt-x")
    config = OpenAIConfig.from_env()
    assert config.base_url == "http://127.0.0.1:9/v1"
    assert config.model == "gpt-x"
    assert config.api_key is not None and config.api_key.reveal() == KEY
    assert KEY not in repr(config)


def test_options_win_over_the_environment_and_empty_counts_as_unset():
    env = {"OPENAI_BASE_URL": "", "OPENAI_MODEL": "env-model", "OPENAI_API_KEY": "  "}
    config = OpenAIConfig.from_env(environ=env, model="explicit")
    assert config.base_url == "https://api.openai.com/v1"
    assert config.model == "explicit"
    assert config.api_key is None


def test_provider_specific_environment_names():
    env = {
        "VLLM_BASE_URL": "http://localhost:8000/v1",
        "VLLM_MODEL": "qwen",
        "VLLM_API_KEY": "k-123",
    }
    config = OpenAIConfig.from_env(
        environ=env,
        api_key_env="VLLM_API_KEY",
        base_url_env="VLLM_BASE_URL",
        model_env="VLLM_MODEL",
        provider="vllm",
        location="local",
    )
    assert (config.provider, config.base_url, config.model, config.location) == (
        "vllm",
        "http://localhost:8000/v1",
        "qwen",
        "local",
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"base_url": "localhost:8000"}, "base_url must be an http(s) URL"),
        ({"timeout_s": 0}, "timeout_s must be a positive number"),
        ({"deadline_s": float("nan")}, "deadline_s must be a positive number"),
        ({"max_retries": -1}, "max_retries must be an int >= 0"),
        ({"location": "edge"}, "location must be 'local' or 'cloud'"),
        ({"max_tokens": 0}, "max_tokens must be a positive int"),
        ({"colour": "blue"}, "unknown option(s) colour"),
    ],
)
def test_bad_configuration_is_a_clear_error(options, message):
    with pytest.raises(LLMConfigError) as info:
        OpenAIConfig.from_env(environ={}, **options)
    assert message in str(info.value)


async def test_bad_requests_are_refused_before_sending(server, llm):
    with pytest.raises(LLMConfigError, match="at least one message"):
        await llm.complete([])
    with pytest.raises(LLMConfigError, match="message 0 is not a mapping with a 'role'"):
        await llm.complete([{"content": "no role"}])
    with pytest.raises(LLMConfigError, match="tool 0"):
        await llm.complete(USER, [{"type": "function"}])
    with pytest.raises(LLMConfigError, match="tool_choice 'nope'"):
        await llm.complete(USER, [CLOCK], tool_choice="nope")
    assert server.requests == []


# -- the pieces, without a server ------------------------------------------------------


def test_assembler_without_indexes_uses_ids():
    a = TurnAssembler()
    a.add(StreamDelta(tool_call_id="x", tool_name="f", arguments='{"a"'))
    a.add(StreamDelta(arguments=": 1}"))
    a.add(StreamDelta(tool_call_id="y", tool_name="g"))
    a.add(StreamDelta(finish_reason="tool_calls"))
    turn = a.turn()
    assert [(c.id, c.name, c.arguments) for c in turn.tool_calls] == [
        ("x", "f", '{"a": 1}'),
        ("y", "g", "{}"),
    ]


def test_completion_body_round_trips_through_the_parser():
    from loom.models._assemble import turn_from_completion

    turn = turn_from_completion(completion_body("hi", [("c", "f", "{}")]), provider="p")
    assert turn.text == "hi" and turn.tool_calls[0].name == "f" and turn.provider == "p"
