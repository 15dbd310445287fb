"""Errors raised by model clients and the model router.

Every LLM error names the provider and the endpoint it talked to (never the credential),
says whether trying again may help (``retryable``), and carries the HTTP status when there
was one. The hierarchy mirrors what a caller decides on: retry, fix the configuration, or
give up and use another provider.
"""

from __future__ import annotations

from loom.errors import LoomError

__all__ = [
    "LLMAuthError",
    "LLMConfigError",
    "LLMConnectionError",
    "LLMError",
    "LLMRateLimitError",
    "LLMResponseError",
    "LLMStatusError",
    "LLMTimeoutError",
    "RoutingError",
]

#: HTTP statuses worth another attempt: timeouts, conflicts, rate limits, server errors.
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class LLMError(LoomError):
    """A language-model call failed.

    Attributes:
        provider: the provider's name (``openai``, ``vllm-local``, ...).
        endpoint: the URL called, without credentials; empty for a local provider.
        status_code: the HTTP status, when the server answered.
        retryable: whether the same request may succeed if tried again.
        attempts: how many attempts were made before this error was raised.
    """

    #: The default for :attr:`retryable` of each subclass.
    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        endpoint: str = "",
        status_code: int | None = None,
        retryable: bool | None = None,
        attempts: int = 1,
    ) -> None:
        self.provider = provider
        self.endpoint = endpoint
        self.status_code = status_code
        self.retryable = self.default_retryable if retryable is None else retryable
        self.attempts = attempts
        self.detail = message
        super().__init__(message)

    def __str__(self) -> str:
        where = f"{self.provider} {self.endpoint}".strip()
        status = f" (HTTP {self.status_code})" if self.status_code is not None else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{where}{status}: {self.detail}{tries}"


class LLMConfigError(LLMError, ValueError):
    """The client is configured wrongly: no model, a base URL that is no URL, ..."""


class LLMConnectionError(LLMError, ConnectionError):
    """The endpoint could not be reached or dropped the connection."""

    default_retryable = True


class LLMTimeoutError(LLMError, TimeoutError):
    """A connect or read timed out (the stream stalled), or the overall deadline passed.

    A stall is retryable; an exhausted deadline is not (``retryable`` says which).
    """

    default_retryable = True


class LLMStatusError(LLMError):
    """The endpoint answered with an error status.

    Attributes:
        body: the start of the response body (at most a few hundred characters, with any
            credential masked).
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        endpoint: str,
        status_code: int,
        body: str = "",
        retryable: bool | None = None,
        attempts: int = 1,
    ) -> None:
        self.body = body
        if retryable is None:
            retryable = status_code in RETRYABLE_STATUS
        super().__init__(
            message,
            provider=provider,
            endpoint=endpoint,
            status_code=status_code,
            retryable=retryable,
            attempts=attempts,
        )


class LLMAuthError(LLMStatusError):
    """401 or 403: the credential is missing, wrong or lacks access."""


class LLMRateLimitError(LLMStatusError):
    """429: too many requests.

    Attributes:
        retry_after: seconds the server asked to wait, if it said (``Retry-After``).
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        endpoint: str,
        body: str = "",
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(
            message,
            provider=provider,
            endpoint=endpoint,
            status_code=429,
            body=body,
            retryable=True,
            attempts=attempts,
        )


class LLMResponseError(LLMError, ValueError):
    """The endpoint answered 2xx with something that is no chat completion (garbage JSON,
    no ``choices``, a broken server-sent-event stream)."""


class RoutingError(LoomError):
    """The model router cannot serve a request: it was dropped or deferred, or no provider
    may take it.

    Attributes:
        decision: the :class:`~loom.models.RoutingDecision` that ended the request.
    """

    def __init__(self, message: str, decision: object) -> None:
        self.decision = decision
        super().__init__(message)
