"""Turning what goes wrong on the wire into :class:`LLMError`, with the credential masked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loom.models._config import OpenAIConfig
from loom.models._errors import (
    LLMAuthError,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
    LLMResponseError,
    LLMStatusError,
    LLMTimeoutError,
)
from loom.models._retry import parse_retry_after

if TYPE_CHECKING:
    import httpx2

__all__ = ["MAX_ERROR_BODY", "Failures", "read_limited"]

#: Bytes of an error body read for the message.
MAX_ERROR_BODY = 4096
_SHOWN = 300  # characters of a body shown in a message


async def read_limited(response: httpx2.Response, limit: int, *, truncate: bool) -> bytes | None:
    """The body, at most ``limit`` bytes: cut there if ``truncate``, else None when longer."""
    parts: list[bytes] = []
    size = 0
    async for part in response.aiter_bytes():
        if size + len(part) > limit:
            if not truncate:
                return None
            parts.append(part[: limit - size])
            break
        size += len(part)
        parts.append(part)
    return b"".join(parts)


class Failures:
    """Builds the errors of one endpoint: each names the provider and the URL, and none
    carries the API key, even when a server echoes it back."""

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self._where: dict[str, Any] = {"provider": config.provider, "endpoint": config.endpoint}

    def mask(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``."""
        key = self.config.api_key
        return key.mask(text) if key is not None else text

    def excerpt(self, raw: bytes) -> str:
        """The start of a body, masked and quoted, for a message."""
        text = raw.decode("utf-8", "replace").strip()
        if len(text) > _SHOWN:
            text = text[:_SHOWN] + "…"
        return repr(self.mask(text)) if text else "(empty body)"

    def response(self, message: str) -> LLMResponseError:
        """A 2xx answer that is no chat completion."""
        return LLMResponseError(self.mask(message), **self._where)

    def deadline(self) -> LLMTimeoutError:
        """The call's overall deadline passed."""
        return LLMTimeoutError(
            f"the call's deadline passed (deadline_s={self.config.deadline_s:g} unless the "
            "call set its own)",
            retryable=False,
            **self._where,
        )

    def incomplete(self) -> LLMConnectionError:
        """A stream ended without its end."""
        return LLMConnectionError(
            "the stream ended before the answer finished (no [DONE], no finish_reason)",
            **self._where,
        )

    async def status(self, response: httpx2.Response) -> LLMStatusError:
        """An error status, with the start of its body (read here)."""
        code = response.status_code
        try:
            raw = await read_limited(response, MAX_ERROR_BODY, truncate=True) or b""
        except Exception:  # noqa: BLE001  # the status is the error; an unreadable body adds nothing
            raw = b""
        body = self.excerpt(raw)
        if code == 429:
            return LLMRateLimitError(
                f"rate limited: {body}",
                body=body,
                retry_after=parse_retry_after(response.headers),
                **self._where,
            )
        if code in (401, 403):
            env = self.config.api_key_env
            hint = (
                f"check {env}"
                if self.config.api_key is not None
                else f"no API key was sent: set {env}"
            )
            return LLMAuthError(
                f"not authorized ({hint}): {body}", status_code=code, body=body, **self._where
            )
        hint = " (check the base URL and the model name)" if code == 404 else ""
        return LLMStatusError(
            f"the server answered {code}{hint}: {body}", status_code=code, body=body, **self._where
        )

    def in_stream(self, chunk: Mapping[str, Any]) -> LLMError:
        """An error the server reported inside a stream (``{"error": {...}}``)."""
        error = chunk.get("error", chunk)
        message = error.get("message") if isinstance(error, Mapping) else error
        code = error.get("code") if isinstance(error, Mapping) else None
        text = self.mask(str(message or chunk))[:_SHOWN]
        what = f"the server reported an error in the stream: {text}"
        if isinstance(code, int) and 400 <= code < 600:
            return LLMStatusError(what, status_code=code, body=text, **self._where)
        return self.response(what)

    def transport(self, error: Exception) -> LLMError:
        """An httpx2 exception: a timeout, a connection failure, or something else."""
        import httpx2

        what = self.mask(str(error)) or type(error).__name__
        if isinstance(error, httpx2.ReadTimeout):
            return LLMTimeoutError(
                f"no data for {self.config.timeout_s:g} s (the stream stalled; timeout_s)",
                **self._where,
            )
        if isinstance(error, httpx2.ConnectTimeout):
            return LLMTimeoutError(
                f"could not connect within {self.config.connect_timeout_s:g} s", **self._where
            )
        if isinstance(error, httpx2.TimeoutException):
            return LLMTimeoutError(f"timed out: {what}", **self._where)
        if isinstance(error, httpx2.ConnectError):
            return LLMConnectionError(f"cannot connect: {what}", **self._where)
        if isinstance(error, httpx2.TransportError) and not isinstance(
            error, httpx2.UnsupportedProtocol | httpx2.ProxyError
        ):
            return LLMConnectionError(f"the connection failed: {what}", **self._where)
        return LLMError(f"{type(error).__name__}: {what}", retryable=False, **self._where)
