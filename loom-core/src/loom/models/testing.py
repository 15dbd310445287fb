"""A scripted OpenAI-compatible server, for testing model clients, apps and demos offline.

:class:`ChatCompletionsServer` listens on 127.0.0.1 on a free port and answers
``POST /v1/chat/completions`` with what the test scripted: JSON completions, server-sent
event streams (text and tool-call deltas), error statuses with ``Retry-After``, stalls,
garbage, or a dropped connection. It records every request, so a test can check what the
client sent. It speaks real HTTP/1.1 over real sockets (keep-alive, chunked streams); no
part of the client is bypassed.

Example:
    .. code-block:: python

        async with ChatCompletionsServer() as server:
            server.script(Reply.status(503), Reply.completion(text="hi"))
            llm = OpenAIChatModel(base_url=server.base_url, model="m", backoff_base_s=0.01)
            assert (await llm.complete([{"role": "user", "content": "hi"}])).text == "hi"
            assert len(server.requests) == 2
"""

from __future__ import annotations

from loom.models._replies import Reply, completion_body, stream_chunks
from loom.models._server import ChatCompletionsServer, RecordedRequest, Responder

__all__ = [
    "ChatCompletionsServer",
    "RecordedRequest",
    "Reply",
    "Responder",
    "completion_body",
    "stream_chunks",
]
