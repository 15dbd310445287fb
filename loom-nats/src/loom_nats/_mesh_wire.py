"""The capability mesh's messages on the bus (see :mod:`loom_nats._remote_caps`).

- ``mesh.announce`` carries ``mesh.announce`` events (a JSON body: the host, its
  capabilities and its agents) and ``mesh.leave`` events (no body); the event's source is
  the host.
- ``mesh.{host}.call`` carries ``mesh.call`` events: a ``loom.v1.ActionCall``, with
  metadata ``reply_to`` naming the caller's reply topic.
- ``mesh.{host}.reply`` carries ``mesh.result`` events: a ``loom.v1.ActionResult``, with
  metadata ``in_reply_to`` naming the call event's id.
- ``mesh.hosts`` carries ``mesh.host.joined`` and ``mesh.host.lost`` reports.
"""

from __future__ import annotations

import json
from typing import Any

from loom import ActionCall, ActionResult, CapabilityDescriptor, Event, ProviderKind
from loom.directory import AgentRecord
from loom.topics import validate_topic

__all__ = [
    "ANNOUNCE",
    "HOSTS_TOPIC",
    "LEAVE",
    "MESH_ANNOUNCE_TOPIC",
    "announcement",
    "call_event",
    "call_topic",
    "read_announcement",
    "read_call",
    "read_result",
    "reply_topic",
    "result_event",
]

#: Where hosts announce their capabilities and agents (event types ``mesh.announce``,
#: ``mesh.leave``).
MESH_ANNOUNCE_TOPIC = "mesh.announce"
#: Where a host reports the hosts it sees come and go (``mesh.host.joined``,
#: ``mesh.host.lost``; metadata ``host`` and ``observer``).
HOSTS_TOPIC = "mesh.hosts"

ANNOUNCE, LEAVE, _CALL, _RESULT = "mesh.announce", "mesh.leave", "mesh.call", "mesh.result"


def call_topic(host_id: str) -> str:
    """The topic on which ``host_id`` takes capability calls."""
    return f"mesh.{host_id}.call"


def reply_topic(host_id: str) -> str:
    """The topic on which ``host_id`` takes the results of its calls."""
    return f"mesh.{host_id}.reply"


def announcement(
    host_id: str, capabilities: list[CapabilityDescriptor], agents: list[AgentRecord]
) -> Event:
    """The ``mesh.announce`` event of a host that runs ``capabilities`` and ``agents``."""
    body = {
        "host": host_id,
        "capabilities": [
            {
                "name": d.name,
                "version": d.version,
                "provider": int(d.provider),
                "metadata": d.metadata,
            }
            for d in capabilities
        ],
        "agents": [
            {
                "id": record.agent_id,
                "topics": sorted(record.topics),
                "capabilities": sorted(record.capabilities),
                "metadata": dict(record.metadata),
            }
            for record in agents
        ],
    }
    return Event(ANNOUNCE, json.dumps(body).encode(), source=host_id)


def read_announcement(event: Event) -> tuple[list[CapabilityDescriptor], list[AgentRecord]]:
    """The capabilities and agents a ``mesh.announce`` event announces; each agent's
    metadata gets ``host`` (the event's source).

    Raises:
        ValueError: the body is not an announcement of the event's source.
    """
    host_id = event.source
    try:
        body = json.loads(event.payload)
        if body.get("host") != host_id:
            raise ValueError(f"source {host_id!r} and host {body.get('host')!r} differ")
        capabilities = [_descriptor(c) for c in body["capabilities"]]
        agents = [_record(a, host_id) for a in body["agents"]]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    return capabilities, agents


def call_event(host_id: str, call: ActionCall) -> Event:
    """The ``mesh.call`` event by which ``host_id`` asks another host to run ``call``."""
    return Event(
        _CALL,
        call.to_proto().SerializeToString(),
        source=host_id,
        metadata={"reply_to": reply_topic(host_id)},
    )


def read_call(event: Event) -> tuple[ActionCall, str]:
    """The call a ``mesh.call`` event carries and the topic its result goes to.

    Raises:
        ValueError: the payload is not a ``loom.v1.ActionCall`` naming a capability, or
            the reply topic is not a valid topic.
    """
    reply_to = event.metadata.get("reply_to", "")
    call = _decode_call(event.payload)
    validate_topic(reply_to)
    return call, reply_to


def result_event(host_id: str, token: str, result: ActionResult) -> Event:
    """The ``mesh.result`` event answering the call event whose id is ``token``."""
    return Event(
        _RESULT,
        result.to_proto().SerializeToString(),
        source=host_id,
        metadata={"in_reply_to": token},
    )


def read_result(data: bytes) -> ActionResult:
    """The result a ``mesh.result`` event's payload carries.

    Raises:
        ValueError: the payload is not a ``loom.v1.ActionResult``.
    """
    from google.protobuf.message import DecodeError

    from loom.v1 import action_pb2

    try:
        return ActionResult.from_proto(action_pb2.ActionResult.FromString(data))
    except (DecodeError, ValueError) as exc:
        raise ValueError(f"not a loom.v1.ActionResult: {exc}") from None


def _descriptor(data: Any) -> CapabilityDescriptor:
    metadata = data.get("metadata", {})
    if not isinstance(data["name"], str) or not data["name"] or not isinstance(metadata, dict):
        raise ValueError(f"bad capability {data!r}")
    return CapabilityDescriptor(
        data["name"],
        str(data["version"]),
        ProviderKind(int(data["provider"])),
        {str(k): str(v) for k, v in metadata.items()},
    )


def _record(data: Any, host_id: str) -> AgentRecord:
    metadata = {str(k): str(v) for k, v in dict(data.get("metadata", {})).items()}
    metadata["host"] = host_id
    return AgentRecord(
        data["id"],
        topics=frozenset(data.get("topics", ())),
        capabilities=frozenset(data.get("capabilities", ())),
        metadata=metadata,
    )


def _decode_call(data: bytes) -> ActionCall:
    from google.protobuf.message import DecodeError

    from loom.v1 import action_pb2

    try:
        message = action_pb2.ActionCall.FromString(data)
    except DecodeError as exc:
        raise ValueError(f"not a loom.v1.ActionCall: {exc}") from None
    if not message.capability:
        raise ValueError("the ActionCall names no capability")
    return ActionCall.from_proto(message)
