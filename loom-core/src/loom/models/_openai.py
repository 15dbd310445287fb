"""The OpenAI-compatible chat completions client (OpenAI, vLLM, llama.cpp server, gateways).

httpx2 (the maintained fork of httpx, same API) is imported on first use, so that
``import loom.models`` stays light.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loom._version import __version__
from loom.models._answers import (
    decode_events,
    deltas_of_event,
    deltas_of_whole,
    parse_completion,
)
from loom.models._assemble import TurnAssembler
from loom.models._chat import Location, MessageLike, ModelTurn, StreamDelta, ToolLike
from loom.models._config import OpenAIConfig
from loom.models._errors import LLMError, LLMRateLimitError
from loom.models._failures import Failures, read_limited
from loom.models._request import request_body
from loom.models._retry import Backoff
from loom.models._sse import SSEDecoder
from loom.telemetry import _switch

if TYPE_CHECKING:
    import httpx2

__all__ = ["OpenAIChatModel"]

log = logging.getLogger("loom.llm")

_MAX_RESPONSE = 32 * 1024 * 1024  # a non-streamed answer larger than this is refused


def _trace_headers() -> dict[str, str] | None:
    """The W3C trace context of the current span, for the endpoint (tracing on only)."""
    hook = _switch.llm
    return hook.headers() if hook is not None else None


class OpenAIChatModel:
    """A chat model behind an OpenAI-compatible ``POST {base_url}/chat/completions``.

    Streams server-sent events (text and tool-call deltas, joined by index), sends tools
    in the OpenAI shape, retries 429, 5xx, timeouts and connection errors with
    exponential backoff and jitter (honouring ``Retry-After``) while no part of the answer
    has arrived, bounds each read by ``timeout_s`` and the whole call by ``deadline_s``,
    and closes the HTTP stream when the awaiting task is cancelled. The API key never
    appears in ``repr``, logs or errors.

    Args:
        config: the endpoint; by default :meth:`OpenAIConfig.from_env` with ``options``.
        transport: an httpx2 transport to use instead of the network (for proxies or
            tests of your own).
        rng: the source of backoff jitter.
        **options: :class:`OpenAIConfig` fields, when ``config`` is not given.

    Example:
        .. code-block:: python

            async with OpenAIChatModel(base_url="http://localhost:8000/v1",
                                       model="qwen2.5-0.5b-instruct",
                                       location="local") as llm:
                turn = await llm.complete([{"role": "user", "content": "Say hi"}])
                print(turn.text)
    """

    def __init__(
        self,
        config: OpenAIConfig | None = None,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        **options: Any,
    ) -> None:
        if config is None:
            config = OpenAIConfig.from_env(**options)
        elif options:
            raise TypeError("pass either a config or options, not both")
        self.config = config
        self._transport = transport
        self._backoff = Backoff(config.backoff_base_s, config.backoff_max_s, rng)
        self._http_client: httpx2.AsyncClient | None = None
        self._failures = Failures(config)

    # -- identity ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The provider's name."""
        return self.config.provider

    @property
    def model(self) -> str:
        """The model asked for."""
        return self.config.model

    @property
    def location(self) -> Location:
        """Where the endpoint runs, as configured."""
        return self.config.location

    @property
    def endpoint(self) -> str:
        """The chat completions URL, without credentials."""
        return self.config.endpoint

    def __repr__(self) -> str:
        key = "set" if self.config.api_key is not None else "unset"
        return (
            f"OpenAIChatModel(provider={self.name!r}, endpoint={self.endpoint!r}, "
            f"model={self.model!r}, location={self.location.value!r}, api_key={key})"
        )

    def cost_of(self, turn: ModelTurn) -> float:
        """What a turn cost, from its token usage and ``cost_per_1k_tokens`` (0 if unknown)."""
        if turn.usage is None:
            return 0.0
        return turn.usage.total_tokens / 1000 * self.config.cost_per_1k_tokens

    # -- lifecycle ---------------------------------------------------------------------

    def _http(self) -> httpx2.AsyncClient:
        if self._http_client is None:
            import httpx2

            headers = {"User-Agent": f"loom/{__version__}", **self.config.headers}
            if self.config.api_key is not None:
                headers["Authorization"] = f"Bearer {self.config.api_key.reveal()}"
            self._http_client = httpx2.AsyncClient(
                headers=headers,
                transport=self._transport,
                timeout=self._timeout(self.config.timeout_s),
            )
        return self._http_client

    def _timeout(self, read_s: float) -> httpx2.Timeout:
        import httpx2

        connect = min(self.config.connect_timeout_s, read_s)
        return httpx2.Timeout(read_s, connect=connect, pool=connect)

    async def aclose(self) -> None:
        """Close the connection pool. The client opens a new one if used again."""
        client, self._http_client = self._http_client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> OpenAIChatModel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- requests ----------------------------------------------------------------------

    def request_body(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[ToolLike] = (),
        *,
        tool_choice: str | Mapping[str, Any] | None = None,
        stream: bool = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The JSON body a request sends (what :meth:`complete` posts).

        Raises:
            LLMConfigError: no messages, a message or tool of the wrong shape, or a
                ``tool_choice`` naming a tool not offered.
        """
        return request_body(
            self.config,
            messages,
            tools,
            tool_choice=tool_choice,
            stream=stream,
            temperature=temperature,
            max_tokens=max_tokens,
            extra=extra,
        )

    async def complete(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[ToolLike] = (),
        *,
        tool_choice: str | Mapping[str, Any] | None = None,
        stream: bool | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        deadline_s: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ModelTurn:
        """Ask for one answer.

        Args:
            messages: the conversation.
            tools: tools the model may call.
            tool_choice: ``"auto"``, ``"none"``, ``"required"``, the name of the one tool
                to call, or the API's object form, passed through.
            stream: stream the answer and join it (default: the config's ``stream``).
            temperature: overrides the config's for this call.
            max_tokens: overrides the config's for this call.
            deadline_s: overrides the config's overall bound for this call.
            extra: more body fields, sent as they are (``seed``, ``stop``, ...).

        Returns:
            The answer: text, tool calls, finish reason and usage.

        Raises:
            LLMError: see its subclasses; every one names the provider and the endpoint.
        """
        stream = self.config.stream if stream is None else stream
        call = self._complete(
            messages,
            tools,
            tool_choice=tool_choice,
            stream=stream,
            temperature=temperature,
            max_tokens=max_tokens,
            deadline_s=deadline_s,
            extra=extra,
        )
        hook = _switch.llm
        if hook is None:
            return await call
        turn: ModelTurn = await hook.complete(self, call, stream=stream)
        return turn

    async def _complete(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[ToolLike],
        *,
        tool_choice: str | Mapping[str, Any] | None,
        stream: bool,
        temperature: float | None,
        max_tokens: int | None,
        deadline_s: float | None,
        extra: Mapping[str, Any] | None,
    ) -> ModelTurn:
        body = self.request_body(
            messages,
            tools,
            tool_choice=tool_choice,
            stream=stream,
            temperature=temperature,
            max_tokens=max_tokens,
            extra=extra,
        )
        if stream:
            assembler = TurnAssembler(model=self.model, provider=self.name)
            async with contextlib.aclosing(self._stream_body(body, deadline_s)) as deltas:
                async for delta in deltas:
                    assembler.add(delta)
            try:
                return assembler.turn()
            except ValueError as e:
                raise self._failures.response(str(e)) from None
        deadline = self._deadline(deadline_s)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._post_once(body, deadline)
            except LLMError as e:
                e.attempts = attempt
                await self._wait_before_retry(e, attempt, deadline)

    async def stream(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[ToolLike] = (),
        *,
        tool_choice: str | Mapping[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        deadline_s: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> AsyncGenerator[StreamDelta, None]:
        """Ask for one answer and yield it piece by piece as it arrives.

        Join the pieces with :class:`~loom.models.TurnAssembler`. Close the iterator when
        you stop early (``async with contextlib.aclosing(llm.stream(...)) as pieces:``)
        so the HTTP stream closes at once. Failures before the first piece are retried as
        in :meth:`complete`; after it, they are raised.

        Raises:
            LLMError: as :meth:`complete`.
        """
        body = self.request_body(
            messages,
            tools,
            tool_choice=tool_choice,
            stream=True,
            temperature=temperature,
            max_tokens=max_tokens,
            extra=extra,
        )
        pieces: AsyncGenerator[StreamDelta, None] = self._stream_body(body, deadline_s)
        hook = _switch.llm
        if hook is not None:
            pieces = hook.stream(self, pieces)
        async with contextlib.aclosing(pieces) as deltas:
            async for delta in deltas:
                yield delta

    # -- the attempt loop --------------------------------------------------------------

    def _deadline(self, deadline_s: float | None) -> float:
        bound = self.config.deadline_s if deadline_s is None else deadline_s
        return asyncio.get_running_loop().time() + bound

    async def _wait_before_retry(self, error: LLMError, attempt: int, deadline: float) -> None:
        """Sleep before the next attempt, or re-raise ``error`` when none should follow."""
        if not error.retryable or attempt > self.config.max_retries:
            raise error
        retry_after = error.retry_after if isinstance(error, LLMRateLimitError) else None
        if retry_after is not None and retry_after > self.config.max_retry_after_s:
            error.detail += (
                f" (the server asks to wait {retry_after:.1f} s, more than "
                f"max_retry_after_s={self.config.max_retry_after_s:g})"
            )
            raise error
        wait = retry_after if retry_after is not None else self._backoff.delay(attempt - 1)
        left = deadline - asyncio.get_running_loop().time()
        if wait >= left:
            error.detail += f" (no time left for another attempt: {left:.2f} s to the deadline)"
            raise error
        hook = _switch.llm
        if hook is not None:
            hook.retry(self, error, attempt, wait)
        log.warning(
            "%s %s failed: %s; attempt %d of %d in %.2f s",
            self.name,
            self.endpoint,
            error.detail,
            attempt + 1,
            self.config.max_retries + 1,
            wait,
            extra={"provider": self.name, "endpoint": self.endpoint, "attempt": attempt},
        )
        await asyncio.sleep(wait)

    async def _stream_body(
        self, body: dict[str, Any], deadline_s: float | None
    ) -> AsyncGenerator[StreamDelta, None]:
        deadline = self._deadline(deadline_s)
        attempt = 0
        while True:
            attempt += 1
            started = False
            try:
                async with contextlib.aclosing(self._stream_once(body, deadline)) as deltas:
                    async for delta in deltas:
                        started = True
                        yield delta
                return
            except LLMError as e:
                e.attempts = attempt
                if started:
                    raise
                await self._wait_before_retry(e, attempt, deadline)

    # -- one attempt -------------------------------------------------------------------

    def _url(self) -> str:
        return self.config.base_url + "/chat/completions"

    async def _read(self, response: httpx2.Response) -> bytes:
        raw = await read_limited(response, _MAX_RESPONSE, truncate=False)
        if raw is None:
            raise self._failures.response(f"the answer is larger than {_MAX_RESPONSE} bytes")
        return raw

    async def _post_once(self, body: dict[str, Any], deadline: float) -> ModelTurn:
        import httpx2

        http = self._http()
        try:
            async with asyncio.timeout_at(deadline):
                request = http.build_request(
                    "POST", self._url(), json=body, headers=_trace_headers()
                )
                response = await http.send(request, stream=True)
                try:
                    if response.status_code >= 400:
                        raise await self._failures.status(response)
                    raw = await self._read(response)
                finally:
                    await response.aclose()
        except LLMError:
            raise
        except httpx2.HTTPError as e:
            raise self._failures.transport(e) from None
        except TimeoutError:
            raise self._failures.deadline() from None
        return parse_completion(raw, self._failures)

    async def _stream_once(
        self, body: dict[str, Any], deadline: float
    ) -> AsyncGenerator[StreamDelta, None]:
        import httpx2

        failures = self._failures
        http = self._http()
        response: httpx2.Response | None = None
        try:
            async with asyncio.timeout_at(deadline):
                request = http.build_request(
                    "POST", self._url(), json=body, headers=_trace_headers()
                )
                response = await http.send(request, stream=True)
                if response.status_code >= 400:
                    raise await failures.status(response)
            if "text/event-stream" not in response.headers.get("content-type", ""):
                # The server ignored stream=true and answered in one piece.
                async with asyncio.timeout_at(deadline):
                    raw = await self._read(response)
                for delta in deltas_of_whole(raw, failures):
                    yield delta
                return
            decoder = SSEDecoder()
            chunks = response.aiter_bytes()
            finished = done = False
            while not done:
                chunk: bytes | None
                # Each read is bounded by the deadline, not the whole loop: a timeout
                # scope must not stay open across the yields below.
                async with asyncio.timeout_at(deadline):
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        chunk = None  # the body ended: flush what the decoder holds
                for event, data in decode_events(decoder, chunk, failures):
                    if data.strip() == "[DONE]":
                        done = True
                        break
                    for delta in deltas_of_event(event, data, failures):
                        finished = finished or delta.finish_reason is not None
                        yield delta
                if chunk is None:
                    break
            if not done and not finished:
                raise failures.incomplete()
        except LLMError:
            raise
        except httpx2.HTTPError as e:
            raise failures.transport(e) from None
        except TimeoutError:
            raise failures.deadline() from None
        finally:
            if response is not None:
                await response.aclose()
