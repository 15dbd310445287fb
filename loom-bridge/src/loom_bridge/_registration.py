"""What a remote agent registered: validated from an ``AgentRegisterRequest``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loom import CapabilityDescriptor, ProviderKind, QoS
from loom.errors import InvalidTopicError
from loom.topics import agent_replies_topic, validate_pattern

if TYPE_CHECKING:
    from loom.v1 import bridge_pb2

__all__ = ["MAX_CAPABILITIES", "MAX_TOPICS", "QOS_KEY", "Registration", "check_agent_id"]

#: Most topic patterns one registration may hold.
MAX_TOPICS = 1024
#: Most capabilities one registration may hold.
MAX_CAPABILITIES = 1024
#: Registration metadata key choosing the QoS of the agent's deliveries: ``realtime``,
#: ``batched`` (the default, as upstream) or ``background``.
QOS_KEY = "qos"

_MAX_ID_LENGTH = 256


def check_agent_id(agent_id: str) -> None:
    """Check that ``agent_id`` can name an agent and its private topic.

    Raises:
        ValueError: the id is empty, too long, or not a single topic token (dots,
            whitespace, ``*``, ``>`` and unprintable characters are refused).
    """
    if not agent_id:
        raise ValueError("agent_id is empty")
    if len(agent_id) > _MAX_ID_LENGTH:
        raise ValueError(f"agent_id is longer than {_MAX_ID_LENGTH} characters")
    if "." in agent_id:
        raise ValueError(f"agent_id {agent_id!r} holds a dot; it must be one topic token")
    try:
        validate_pattern(agent_replies_topic(agent_id))
    except InvalidTopicError as exc:
        raise ValueError(
            f"agent_id {agent_id!r} is not a valid topic token: {exc.reason}"
        ) from None
    if agent_id in ("*", ">"):
        raise ValueError(f"agent_id {agent_id!r} is a wildcard")


@dataclass(frozen=True, slots=True)
class Registration:
    """A remote agent's registration, checked.

    Attributes:
        agent_id: the agent's id (one topic token).
        topics: the topic patterns to deliver to it, in the order given, without repeats.
        capabilities: the capabilities it serves (provider kind set to GRPC).
        metadata: the registration's metadata.
        peer: the gRPC peer that registered it.
        qos: the QoS of its deliveries (from metadata ``qos``; Batched by default).
    """

    agent_id: str
    topics: tuple[str, ...] = ()
    capabilities: tuple[CapabilityDescriptor, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    peer: str = ""
    qos: QoS = QoS.BATCHED

    @classmethod
    def from_proto(cls, request: bridge_pb2.AgentRegisterRequest, peer: str) -> Registration:
        """Check a request and build the registration.

        Raises:
            ValueError: with a message naming the field at fault (``agent_id``,
                ``subscribed_topics[i]``, ``capabilities[i]``, ``metadata['qos']``).
        """
        check_agent_id(request.agent_id)
        if len(request.subscribed_topics) > MAX_TOPICS:
            raise ValueError(f"subscribed_topics holds more than {MAX_TOPICS} patterns")
        if len(request.capabilities) > MAX_CAPABILITIES:
            raise ValueError(f"capabilities holds more than {MAX_CAPABILITIES} entries")
        topics: list[str] = []
        for i, pattern in enumerate(request.subscribed_topics):
            try:
                validate_pattern(pattern)
            except InvalidTopicError as exc:
                raise ValueError(
                    f"subscribed_topics[{i}] {pattern!r} is invalid: {exc.reason}"
                ) from None
            if pattern not in topics:
                topics.append(pattern)
        capabilities: list[CapabilityDescriptor] = []
        seen: set[tuple[str, str]] = set()
        for i, message in enumerate(request.capabilities):
            if not message.name.strip():
                raise ValueError(f"capabilities[{i}] has an empty name")
            key = (message.name, message.version)
            if key in seen:
                raise ValueError(
                    f"capabilities[{i}] {message.name!r} version {message.version!r} "
                    "is listed twice"
                )
            seen.add(key)
            capabilities.append(
                CapabilityDescriptor(
                    name=message.name,
                    version=message.version,
                    provider=ProviderKind.GRPC,
                    metadata=dict(message.metadata),
                )
            )
        metadata = dict(request.metadata)
        return cls(
            agent_id=request.agent_id,
            topics=tuple(topics),
            capabilities=tuple(capabilities),
            metadata=metadata,
            peer=peer,
            qos=_qos(metadata.get(QOS_KEY)),
        )


def _qos(value: str | None) -> QoS:
    if value is None or not value:
        return QoS.BATCHED
    try:
        return QoS[value.strip().upper()]
    except KeyError:
        raise ValueError(
            f"metadata[{QOS_KEY!r}] = {value!r}: expected realtime, batched or background"
        ) from None
