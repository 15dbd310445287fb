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

__all__ = [
    "DEFAULT_DELIVERY_BATCH",
    "DELIVERY_BATCH_KEY",
    "MAX_CAPABILITIES",
    "MAX_MESSAGE_BYTES_KEY",
    "MAX_TOPICS",
    "PUBLISH_BATCH_KEY",
    "QOS_KEY",
    "Registration",
    "check_agent_id",
    "parse_delivery_batch",
]

#: Most topic patterns one registration may hold.
MAX_TOPICS = 1024
#: Most capabilities one registration may hold.
MAX_CAPABILITIES = 1024
#: Registration metadata key choosing the QoS of the agent's deliveries: ``realtime``,
#: ``batched`` (the default, as upstream) or ``background``.
QOS_KEY = "qos"
#: Registration metadata key with which a client asks for batched deliveries: the most
#: deliveries it takes in one ``delivery_batch`` (a decimal integer >= 1; 1 asks for none).
DELIVERY_BATCH_KEY = "loom.delivery_batch"
#: How many deliveries per batch the SDK asks for unless told otherwise.
DEFAULT_DELIVERY_BATCH = 256
#: ``AgentRegisterResponse.metadata`` key with which a server offers ``publish_batch``: the
#: most publishes it takes in one message.
PUBLISH_BATCH_KEY = "loom.publish_batch"
#: ``AgentRegisterResponse.metadata`` key: the largest message the server accepts, in bytes.
MAX_MESSAGE_BYTES_KEY = "loom.max_message_bytes"

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


def parse_delivery_batch(value: str | None) -> int:
    """The batch size a registration's :data:`DELIVERY_BATCH_KEY` value asks for (1: none).

    Raises:
        ValueError: the value is not a decimal integer >= 1, naming the metadata key.
    """
    if value is None:
        return 1
    text = value.strip()
    if not text.isdecimal() or len(text) > 9 or int(text) < 1:
        raise ValueError(
            f"metadata[{DELIVERY_BATCH_KEY!r}] = {value!r}: expected an integer >= 1 "
            "(the most deliveries per batch)"
        )
    return int(text)


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
        delivery_batch: the most deliveries it takes in one ``delivery_batch`` message
            (from metadata ``loom.delivery_batch``; 1, upstream's one ``delivery`` per
            event, by default).
    """

    agent_id: str
    topics: tuple[str, ...] = ()
    capabilities: tuple[CapabilityDescriptor, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    peer: str = ""
    qos: QoS = QoS.BATCHED
    delivery_batch: int = 1

    @classmethod
    def from_proto(cls, request: bridge_pb2.AgentRegisterRequest, peer: str) -> Registration:
        """Check a request and build the registration.

        Raises:
            ValueError: with a message naming the field at fault (``agent_id``,
                ``subscribed_topics[i]``, ``capabilities[i]``, ``metadata['qos']``,
                ``metadata['loom.delivery_batch']``).
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
            delivery_batch=parse_delivery_batch(metadata.get(DELIVERY_BATCH_KEY)),
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
