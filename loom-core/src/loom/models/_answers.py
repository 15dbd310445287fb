"""Reading an endpoint's answer, whole or streamed, into turns and pieces."""

from __future__ import annotations

import json
from collections.abc import Mapping

from loom.models._assemble import deltas_from_chunk, turn_from_completion
from loom.models._chat import ModelTurn, StreamDelta
from loom.models._failures import Failures
from loom.models._sse import SSEDecoder

__all__ = ["decode_events", "deltas_of_event", "deltas_of_whole", "parse_completion"]


def parse_completion(raw: bytes, failures: Failures) -> ModelTurn:
    """A non-streamed answer as a turn.

    Raises:
        LLMResponseError: not JSON, or no chat completion.
    """
    try:
        parsed = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise failures.response(f"the answer is not JSON: {failures.excerpt(raw)}") from None
    try:
        return turn_from_completion(parsed, provider=failures.config.provider)
    except ValueError as e:
        raise failures.response(f"the answer is no chat completion: {e}") from None


def deltas_of_whole(raw: bytes, failures: Failures) -> list[StreamDelta]:
    """A whole answer, from a server that ignored ``stream: true``, as pieces."""
    turn = parse_completion(raw, failures)
    deltas = [StreamDelta(text=turn.text)] if turn.text else []
    deltas.extend(
        StreamDelta(
            tool_call_index=i,
            tool_call_id=c.id,
            tool_name=c.name,
            arguments=c.arguments_text(),
        )
        for i, c in enumerate(turn.tool_calls)
    )
    deltas.append(StreamDelta(finish_reason=turn.finish_reason or "stop", usage=turn.usage))
    return deltas


def decode_events(
    decoder: SSEDecoder, chunk: bytes | None, failures: Failures
) -> list[tuple[str, str]]:
    """The events ``chunk`` completes (None: the body ended).

    Raises:
        LLMResponseError: an event or line past the decoder's bound.
    """
    try:
        return decoder.feed(chunk) if chunk is not None else decoder.close()
    except ValueError as e:
        raise failures.response(str(e)) from None


def deltas_of_event(event: str, data: str, failures: Failures) -> list[StreamDelta]:
    """The pieces in one server-sent event.

    Raises:
        LLMStatusError: the event reports an error with an HTTP status.
        LLMResponseError: the event is not JSON, reports another error, or is no chunk.
    """
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError:
        raise failures.response(
            f"a streamed event is not JSON: {failures.excerpt(data.encode())}"
        ) from None
    if not isinstance(chunk, Mapping):
        raise failures.response(f"a streamed event is a JSON {type(chunk).__name__}")
    if event == "error" or "error" in chunk or chunk.get("object") == "error":
        raise failures.in_stream(chunk)
    try:
        return deltas_from_chunk(chunk)
    except ValueError as e:
        raise failures.response(f"a streamed event is no completion chunk: {e}") from None
