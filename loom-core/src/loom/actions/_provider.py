"""What runs a capability: the provider interface every provider kind implements."""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping

from loom._action import ActionCall, CapabilityDescriptor
from loom.errors import LoomError

__all__ = ["CapabilityError", "ErrorCode", "Provider"]


class ErrorCode(enum.StrEnum):
    """Error codes an :class:`~loom.ActionResult` carries (``ActionError.code``)."""

    #: The call's input does not match the capability's input schema.
    INVALID_PARAMS = "INVALID_PARAMS"
    #: The capability ran and failed.
    CAPABILITY_ERROR = "CAPABILITY_ERROR"
    #: The provider cannot take calls now (crashed, disconnected, circuit open).
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
    #: No capability with that name (and version).
    NOT_FOUND = "NOT_FOUND"
    #: The call did not finish within its timeout.
    TIMEOUT = "TIMEOUT"


class CapabilityError(LoomError):
    """Raised by a provider to fail a call with a specific code.

    Any other exception a provider raises becomes ``CAPABILITY_ERROR`` with its message.

    Attributes:
        code: an :class:`ErrorCode` or a provider-specific code (``TOOL_ERROR``, ...).
        message: what went wrong, for the caller.
        details: extra str to str context.
        retryable: the call may succeed if tried again (status ``ACTION_RETRYABLE``).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        details: Mapping[str, str] | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = str(code)
        self.message = message
        self.details = dict(details or {})
        self.retryable = retryable


class Provider(abc.ABC):
    """Runs one capability for the :class:`~loom.actions.ActionBroker`.

    Native functions, WASM modules, remote agents over gRPC and MCP tools are all providers;
    the broker gives every kind the same timeouts, validation, idempotency, concurrency
    bound and circuit breaker, so a provider only runs the call.

    Attributes:
        descriptor: name, version, provider kind and metadata (``input_schema`` and
            ``output_schema`` as JSON strings, ``desc`` / ``description``).
    """

    descriptor: CapabilityDescriptor

    #: The provider checks ``call.payload`` against its input schema itself (native
    #: providers validate through their pydantic model); when False, the broker validates
    #: it against the ``input_schema`` (or ``schema``) metadata before calling
    #: :meth:`invoke`.
    validates_input: bool = False

    #: Calls this provider may run at once; None takes the broker's ``max_concurrency``.
    max_concurrency: int | None = None

    @abc.abstractmethod
    async def invoke(self, call: ActionCall) -> bytes:
        """Run the call and return its output (JSON unless agreed otherwise).

        Unless :attr:`validates_input` is set, the broker has already validated
        ``call.payload`` against the input schema. It enforces ``call.timeout_ms`` by
        cancelling this coroutine.

        Raises:
            CapabilityError: to fail with a specific code.
            Exception: anything else becomes ``CAPABILITY_ERROR`` with its message.
        """

    async def close(self) -> None:  # noqa: B027  # optional hook, empty by design
        """Release what the provider holds (connections, processes); called on unregister."""
