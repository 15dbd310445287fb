"""Configuration of an OpenAI-compatible client, from keyword options and the environment."""

from __future__ import annotations

import math
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from loom.models._chat import Location
from loom.models._errors import LLMConfigError

__all__ = ["DEFAULT_BASE_URL", "OpenAIConfig", "Secret", "display_url"]

#: Where requests go when neither the options nor the environment name a base URL.
DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"


class Secret:
    """A credential that does not show itself: ``repr`` and ``str`` print ``***``.

    Call :meth:`reveal` where the value is needed (the ``Authorization`` header).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The credential itself."""
        return self._value

    def mask(self, text: str) -> str:
        """``text`` with every occurrence of the credential replaced by ``***``."""
        if len(self._value) < 4:  # masking "a" everywhere would mangle text, not protect it
            return text
        return text.replace(self._value, "***")

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # a pickled config must not carry the key to disk
        raise TypeError("a Secret cannot be pickled")


def display_url(url: str) -> str:
    """``url`` fit for logs and errors: no user info, no query string, no fragment."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _env(environ: Mapping[str, str], name: str | None) -> str | None:
    if not name:
        return None
    value = environ.get(name, "").strip()
    return value or None  # empty counts as unset, as upstream does


@dataclass(frozen=True, kw_only=True, repr=False)
class OpenAIConfig:
    """How to reach one OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server, ...).

    Attributes:
        provider: the provider's name in errors, logs and routing decisions.
        base_url: the API root; requests go to ``{base_url}/chat/completions``.
        model: the model to ask for; when empty the field is left out (llama.cpp's server
            serves whatever it loaded).
        api_key: sent as ``Authorization: Bearer``; never logged or shown.
        api_key_env: the environment variable the key is read from, named in errors.
        location: ``local`` only when the endpoint runs on hardware you control: the
            router sends ``private`` and ``local-only`` requests only to local providers.
        timeout_s: the longest wait for one read (time between streamed bytes) or write.
        connect_timeout_s: the longest wait to connect.
        deadline_s: the whole call's bound, retries and waits between them included.
        max_retries: further attempts after a retryable failure (429, 5xx, connection
            errors, timeouts), only while no part of the answer has arrived.
        backoff_base_s: the first wait between attempts; doubled each time, with jitter.
        backoff_max_s: the longest computed wait.
        max_retry_after_s: the longest ``Retry-After`` honoured; a server asking for more
            ends the call at once.
        stream: whether :meth:`~loom.models.OpenAIChatModel.complete` streams by default.
        stream_usage: ask for token counts in a stream (``stream_options.include_usage``);
            off by default, since not every server accepts the option.
        temperature: sampling temperature, when set.
        max_tokens: the answer's token limit, when set.
        headers: extra request headers (for gateways that want their own).
        cost_per_1k_tokens: price used to report a call's cost to the router (0: free).
    """

    provider: str = "openai"
    base_url: str = DEFAULT_BASE_URL
    model: str = ""
    api_key: Secret | None = field(default=None, repr=False)
    api_key_env: str = "OPENAI_API_KEY"
    location: Location = Location.CLOUD
    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    deadline_s: float = 120.0
    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    max_retry_after_s: float = 60.0
    stream: bool = False
    stream_usage: bool = False
    temperature: float | None = None
    max_tokens: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    cost_per_1k_tokens: float = 0.0

    def __post_init__(self) -> None:
        key: object = self.api_key
        if isinstance(key, str):  # accept a plain str from configuration files and wrap it
            object.__setattr__(self, "api_key", Secret(key) if key else None)
        object.__setattr__(self, "location", self._location(self.location))
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = display_url(self.base_url)
            raise self._bad("base_url", f"must be an http(s) URL, got {shown!r}")
        for name in ("timeout_s", "connect_timeout_s", "deadline_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise self._bad(name, f"must be a positive number of seconds, got {value!r}")
        for name in ("backoff_base_s", "backoff_max_s", "max_retry_after_s", "cost_per_1k_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise self._bad(name, f"must be a number >= 0, got {value!r}")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise self._bad("max_retries", f"must be an int >= 0, got {self.max_retries!r}")
        if self.max_tokens is not None and (
            not isinstance(self.max_tokens, int) or self.max_tokens <= 0
        ):
            raise self._bad("max_tokens", f"must be a positive int, got {self.max_tokens!r}")

    def __repr__(self) -> str:
        # By hand: the dataclass repr would show a base URL's user info.
        key = "set" if self.api_key is not None else "unset"
        return (
            f"OpenAIConfig(provider={self.provider!r}, endpoint={self.endpoint!r}, "
            f"model={self.model!r}, location={self.location.value!r}, api_key={key})"
        )

    def _location(self, value: object) -> Location:
        if isinstance(value, str) and value in Location.__members__.values():
            return Location(value)
        raise self._bad("location", f"must be 'local' or 'cloud', got {value!r}")

    def _bad(self, name: str, what: str) -> LLMConfigError:
        return LLMConfigError(f"option {name} {what}", provider=self.provider)

    @property
    def endpoint(self) -> str:
        """The chat completions URL, fit for logs (no credentials, no query)."""
        return display_url(self.base_url) + "/chat/completions"

    @classmethod
    def from_env(
        cls,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        base_url_env: str = "OPENAI_BASE_URL",
        model_env: str = "OPENAI_MODEL",
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> OpenAIConfig:
        """A config whose base URL, model and key come from the environment.

        Options given explicitly win over the environment; an empty variable counts as
        unset. Name other variables for other providers, e.g.
        ``from_env(api_key_env="VLLM_API_KEY", base_url_env="VLLM_BASE_URL",
        model_env="VLLM_MODEL", location="local")``.

        Args:
            api_key_env: where the key is read from.
            base_url_env: where the base URL is read from (default
                :data:`DEFAULT_BASE_URL`).
            model_env: where the model name is read from.
            environ: the environment to read (``os.environ`` by default).
            **options: any other :class:`OpenAIConfig` field.

        Raises:
            LLMConfigError: an option is unknown or its value is out of range.
        """
        env = os.environ if environ is None else environ
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            provider = str(options.get("provider", "openai"))
            raise LLMConfigError(
                f"unknown option(s) {', '.join(sorted(unknown))}; known: "
                + ", ".join(sorted(cls.__dataclass_fields__)),
                provider=provider,
            )
        values: dict[str, Any] = {"api_key_env": api_key_env}
        if (key := _env(env, api_key_env)) is not None:
            values["api_key"] = Secret(key)
        if (base := _env(env, base_url_env)) is not None:
            values["base_url"] = base
        if (model := _env(env, model_env)) is not None:
            values["model"] = model
        values.update({k: v for k, v in options.items() if v is not None})
        return cls(**values)
