"""Action data: calls, results and capability descriptors, as light in-process objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, cast

from loom._event import new_event_id

if TYPE_CHECKING:
    from loom.v1 import action_pb2, event_pb2

__all__ = [
    "ActionCall",
    "ActionError",
    "ActionResult",
    "ActionStatus",
    "CapabilityDescriptor",
    "ProviderKind",
    "QoS",
]


class QoS(IntEnum):
    """Quality of service of a subscription or a call (``loom.v1.QoSLevel``)."""

    REALTIME = 0
    BATCHED = 1
    BACKGROUND = 2


class ProviderKind(IntEnum):
    """Where a capability runs (``loom.v1.ProviderKind``)."""

    NATIVE = 0
    WASM = 1
    GRPC = 2
    MCP = 3


class ActionStatus(IntEnum):
    """Outcome of an action (``loom.v1.ActionStatus``)."""

    OK = 0
    ERROR = 1
    TIMEOUT = 2
    RETRYABLE = 3


@dataclass(slots=True)
class CapabilityDescriptor:
    """What a capability is: name, version, provider kind and metadata (JSON schemas)."""

    name: str
    version: str = "1.0"
    provider: ProviderKind = ProviderKind.NATIVE
    metadata: dict[str, str] = field(default_factory=dict)

    def to_proto(self) -> action_pb2.CapabilityDescriptor:
        """As a ``loom.v1.CapabilityDescriptor``."""
        from loom.v1 import action_pb2  # on first use: `import loom` does not load protobuf

        return action_pb2.CapabilityDescriptor(
            name=self.name,
            version=self.version,
            provider=cast("action_pb2.ProviderKind", int(self.provider)),
            metadata=self.metadata,
        )

    @classmethod
    def from_proto(cls, message: action_pb2.CapabilityDescriptor) -> CapabilityDescriptor:
        """From a ``loom.v1.CapabilityDescriptor``."""
        return cls(
            name=message.name,
            version=message.version,
            provider=ProviderKind(message.provider),
            metadata=dict(message.metadata),
        )


@dataclass(slots=True)
class ActionCall:
    """A request to run a capability.

    Attributes:
        capability: the capability's name.
        payload: its input (JSON unless agreed otherwise).
        version: the version wanted; "" takes any.
        id: idempotency key; generated when omitted.
        headers: envelope and transport headers.
        timeout_ms: 0 means the broker's default.
        correlation_id: ties the call to a thread or request.
        qos: quality of service.
    """

    capability: str
    payload: bytes = b""
    version: str = ""
    id: str = field(default_factory=new_event_id)
    headers: dict[str, str] = field(default_factory=dict)
    timeout_ms: int = 0
    correlation_id: str = ""
    qos: QoS = QoS.BATCHED

    def to_proto(self) -> action_pb2.ActionCall:
        """As a ``loom.v1.ActionCall``."""
        from loom.v1 import action_pb2

        return action_pb2.ActionCall(
            id=self.id,
            capability=self.capability,
            version=self.version,
            payload=self.payload,
            headers=self.headers,
            timeout_ms=self.timeout_ms,
            correlation_id=self.correlation_id,
            qos=cast("event_pb2.QoSLevel", int(self.qos)),
        )

    @classmethod
    def from_proto(cls, message: action_pb2.ActionCall) -> ActionCall:
        """From a ``loom.v1.ActionCall``."""
        return cls(
            id=message.id,
            capability=message.capability,
            version=message.version,
            payload=message.payload,
            headers=dict(message.headers),
            timeout_ms=message.timeout_ms,
            correlation_id=message.correlation_id,
            qos=QoS(message.qos),
        )


@dataclass(slots=True)
class ActionError:
    """Why an action failed: a code such as ``CAPABILITY_ERROR``, a message and details."""

    code: str
    message: str = ""
    details: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ActionResult:
    """The outcome of an :class:`ActionCall`, with the same id."""

    id: str
    status: ActionStatus = ActionStatus.OK
    output: bytes = b""
    error: ActionError | None = None

    def to_proto(self) -> action_pb2.ActionResult:
        """As a ``loom.v1.ActionResult``."""
        from loom.v1 import action_pb2

        message = action_pb2.ActionResult(
            id=self.id, status=cast("action_pb2.ActionStatus", int(self.status)), output=self.output
        )
        if self.error is not None:
            message.error.CopyFrom(
                action_pb2.ActionError(
                    code=self.error.code, message=self.error.message, details=self.error.details
                )
            )
        return message

    @classmethod
    def from_proto(cls, message: action_pb2.ActionResult) -> ActionResult:
        """From a ``loom.v1.ActionResult``."""
        error = None
        if message.HasField("error"):
            error = ActionError(
                code=message.error.code,
                message=message.error.message,
                details=dict(message.error.details),
            )
        return cls(
            id=message.id, status=ActionStatus(message.status), output=message.output, error=error
        )
