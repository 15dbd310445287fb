"""What the scripted chat server answers: completion bodies, streams and :class:`Reply`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Reply", "completion_body", "stream_chunks"]


def completion_body(
    text: str | None = None,
    tool_calls: Sequence[tuple[str, str, str]] = (),
    *,
    model: str = "scripted",
    finish_reason: str | None = None,
    usage: tuple[int, int] | None = (10, 5),
) -> dict[str, Any]:
    """A ``chat.completion`` body.

    Args:
        text: the message content.
        tool_calls: ``(id, name, arguments_json)`` for each call.
        model: the model named in the body.
        finish_reason: defaults to ``tool_calls`` when there are calls, else ``stop``.
        usage: ``(prompt_tokens, completion_tokens)``, or None to leave usage out.
    """
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, n, a in tool_calls
        ]
    body: dict[str, Any] = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
            }
        ],
    }
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
    return body


def stream_chunks(
    text: str = "",
    tool_calls: Sequence[tuple[str, str, str]] = (),
    *,
    pieces: int = 3,
    model: str = "scripted",
    finish_reason: str | None = None,
) -> list[dict[str, Any]]:
    """``chat.completion.chunk`` objects that stream ``text`` and ``tool_calls``.

    The text is cut into ``pieces`` parts; each call's arguments too, with the id and name
    only on a call's first chunk and the index on every chunk, as OpenAI and vLLM send.
    """

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    out = [chunk({"role": "assistant", "content": ""})]
    for part in _split(text, pieces):
        out.append(chunk({"content": part}))
    for index, (call_id, name, arguments) in enumerate(tool_calls):
        for n, part in enumerate(_split(arguments, pieces) or [""]):
            call: dict[str, Any] = {"index": index, "function": {"arguments": part}}
            if n == 0:
                call.update(id=call_id, type="function")
                call["function"]["name"] = name
            out.append(chunk({"tool_calls": [call]}))
    out.append(chunk({}, finish_reason or ("tool_calls" if tool_calls else "stop")))
    return out


def _split(text: str, pieces: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[i : i + size] for i in range(0, len(text), size)]


@dataclass(frozen=True)
class Reply:
    """What the server does with one request. Build one with the class methods."""

    kind: Literal["json", "raw", "stream", "stall", "drop"]
    status_code: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    events: tuple[str, ...] = ()
    interval_s: float = 0.0
    stall_after: int | None = None
    done: bool = True

    @classmethod
    def json(
        cls, body: object, *, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """Answer with ``body`` as JSON."""
        return cls(
            "json",
            status_code=status,
            headers={"content-type": "application/json", **(headers or {})},
            body=json.dumps(body).encode(),
        )

    @classmethod
    def completion(
        cls, text: str | None = None, tool_calls: Sequence[tuple[str, str, str]] = ()
    ) -> Reply:
        """Answer with a non-streamed completion (see :func:`completion_body`)."""
        return cls.json(completion_body(text, tool_calls))

    @classmethod
    def status(
        cls,
        status: int,
        body: str | object = "",
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Answer with an error status; ``body`` is text, or JSON for anything else."""
        if isinstance(body, str):
            raw, kind = body.encode(), "text/plain"
        else:
            raw, kind = json.dumps(body).encode(), "application/json"
        return cls(
            "raw", status_code=status, headers={"content-type": kind, **(headers or {})}, body=raw
        )

    @classmethod
    def raw(
        cls, body: bytes, *, status: int = 200, content_type: str = "application/json"
    ) -> Reply:
        """Answer ``body`` as it is (garbage, HTML, a truncated document)."""
        return cls("raw", status_code=status, headers={"content-type": content_type}, body=body)

    @classmethod
    def stream(
        cls,
        chunks: Sequence[object],
        *,
        done: bool = True,
        interval_s: float = 0.0,
        stall_after: int | None = None,
    ) -> Reply:
        """Answer with server-sent events.

        Args:
            chunks: each a JSON-able object (sent as ``data: {json}``) or a str sent as
                the event's raw text (``"data: not json"``, ``": comment"``).
            done: end with ``data: [DONE]``.
            interval_s: pause between events.
            stall_after: after this many events, send nothing more and hold the
                connection until the client closes it.
        """
        events = tuple(c if isinstance(c, str) else f"data: {json.dumps(c)}" for c in chunks)
        return cls(
            "stream",
            headers={"content-type": "text/event-stream"},
            events=events,
            interval_s=interval_s,
            stall_after=stall_after,
            done=done,
        )

    @classmethod
    def streamed(
        cls,
        text: str = "",
        tool_calls: Sequence[tuple[str, str, str]] = (),
        *,
        pieces: int = 3,
        **options: Any,
    ) -> Reply:
        """Stream ``text`` and ``tool_calls`` in ``pieces`` parts each (see
        :func:`stream_chunks`); other options as :meth:`stream`."""
        return cls.stream(stream_chunks(text, tool_calls, pieces=pieces), **options)

    @classmethod
    def stall(cls) -> Reply:
        """Read the request, answer nothing, hold the connection until the client closes."""
        return cls("stall")

    @classmethod
    def drop(cls) -> Reply:
        """Read the request and close the connection without answering."""
        return cls("drop")
