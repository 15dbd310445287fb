"""The generated ``loom.v1`` code matches WIRE.md field for field and round-trips on the wire."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor, descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from hypothesis import given, settings
from hypothesis import strategies as st

from loom.v1 import action_pb2, agent_pb2, bridge_pb2, event_pb2, plugin_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]
GEN_SCRIPT = REPO_ROOT / "scripts" / "gen_protos.py"

MODULES = (event_pb2, action_pb2, agent_pb2, bridge_pb2, plugin_pb2)
FILES = tuple(m.DESCRIPTOR for m in MODULES)

# --------------------------------------------------------------------------------------------
# WIRE.md, transcribed: message -> [(field name, number, type)]. Types are written as in a
# .proto file: scalars by name, messages/enums by short name in loom.v1, `repeated X`,
# `map<K,V>`. Request/response messages that WIRE.md writes inline carry our chosen names.
# --------------------------------------------------------------------------------------------
SS = "map<string,string>"

WIRE_MESSAGES: dict[str, list[tuple[str, int, str]]] = {
    # event.proto
    "Event": [
        ("id", 1, "string"),
        ("type", 2, "string"),
        ("timestamp_ms", 3, "int64"),
        ("source", 4, "string"),
        ("metadata", 5, SS),
        ("payload", 6, "bytes"),
        ("confidence", 7, "float"),
        ("tags", 8, "repeated string"),
        ("priority", 9, "int32"),
    ],
    "EventStream": [("events", 1, "repeated Event"), ("session_id", 2, "string")],
    "SubscribeRequest": [
        ("topic", 1, "string"),
        ("event_types", 2, "repeated string"),
        ("qos", 3, "QoSLevel"),
        ("filters", 4, SS),
    ],
    "SubscribeResponse": [
        ("subscription_id", 1, "string"),
        ("success", 2, "bool"),
        ("error_message", 3, "string"),
    ],
    "PublishRequest": [("topic", 1, "string"), ("event", 2, "Event")],
    "PublishResponse": [
        ("success", 1, "bool"),
        ("error_message", 2, "string"),
        ("sequence_number", 3, "int64"),
    ],
    "UnsubscribeRequest": [("subscription_id", 1, "string")],
    "UnsubscribeResponse": [("success", 1, "bool")],
    "StatsRequest": [("topic", 1, "string")],
    "StatsResponse": [
        ("total_events", 1, "int64"),
        ("active_subscriptions", 2, "int64"),
        ("throughput_per_sec", 3, "double"),
        ("backlog_size", 4, "int64"),
    ],
    # action.proto
    "CapabilityDescriptor": [
        ("name", 1, "string"),
        ("version", 2, "string"),
        ("provider", 3, "ProviderKind"),
        ("metadata", 4, SS),
    ],
    "ActionCall": [
        ("id", 1, "string"),
        ("capability", 2, "string"),
        ("version", 3, "string"),
        ("payload", 4, "bytes"),
        ("headers", 5, SS),
        ("timeout_ms", 6, "int64"),
        ("correlation_id", 7, "string"),
        ("qos", 8, "QoSLevel"),
    ],
    "ActionError": [("code", 1, "string"), ("message", 2, "string"), ("details", 3, SS)],
    "ActionResult": [
        ("id", 1, "string"),
        ("status", 2, "ActionStatus"),
        ("output", 3, "bytes"),
        ("error", 4, "ActionError"),
    ],
    "ListCapabilitiesRequest": [],
    "ListCapabilitiesResponse": [("capabilities", 1, "repeated CapabilityDescriptor")],
    # agent.proto
    "AgentState": [
        ("agent_id", 1, "string"),
        ("persistent_state", 2, "bytes"),
        ("ephemeral_context", 3, "bytes"),
        ("last_update_ms", 4, "int64"),
        ("metadata", 5, SS),
    ],
    "AgentConfig": [
        ("agent_id", 1, "string"),
        ("agent_type", 2, "string"),
        ("subscribed_topics", 3, "repeated string"),
        ("capabilities", 4, "repeated string"),
        ("parameters", 5, SS),
    ],
    "Action": [
        ("action_type", 1, "string"),
        ("parameters", 2, SS),
        ("payload", 3, "bytes"),
        ("priority", 4, "int32"),
    ],
    "AgentResponse": [
        ("agent_id", 1, "string"),
        ("actions", 2, "repeated Action"),
        ("updated_state", 3, "AgentState"),
        ("generated_events", 4, "repeated Event"),
    ],
    "CreateAgentResponse": [("success", 1, "bool"), ("error_message", 2, "string")],
    "DeleteAgentRequest": [("agent_id", 1, "string")],
    "DeleteAgentResponse": [("success", 1, "bool")],
    "GetAgentStateRequest": [("agent_id", 1, "string")],
    "UpdateAgentStateResponse": [("success", 1, "bool")],
    "SendEventRequest": [("agent_id", 1, "string"), ("event", 2, "Event")],
    # bridge.proto
    "AgentRegisterRequest": [
        ("agent_id", 1, "string"),
        ("subscribed_topics", 2, "repeated string"),
        ("capabilities", 3, "repeated CapabilityDescriptor"),
        ("metadata", 4, SS),
    ],
    "AgentRegisterResponse": [("success", 1, "bool"), ("error_message", 2, "string")],
    "ClientEvent": [
        ("publish", 1, "Publish"),
        ("ack", 2, "Ack"),
        ("ping", 3, "HeartbeatRequest"),
        ("action_result", 4, "ActionResult"),
    ],
    "ServerEvent": [
        ("delivery", 1, "Delivery"),
        ("pong", 2, "HeartbeatResponse"),
        ("err", 3, "Error"),
        ("action_call", 4, "ActionCall"),
    ],
    "Publish": [("topic", 1, "string"), ("event", 2, "Event")],
    "Ack": [("message_id", 1, "string")],
    "Delivery": [("topic", 1, "string"), ("event", 2, "Event")],
    "Error": [("code", 1, "string"), ("message", 2, "string")],
    "HeartbeatRequest": [("timestamp_ms", 1, "int64")],
    "HeartbeatResponse": [("timestamp_ms", 1, "int64"), ("status", 2, "string")],
    # plugin.proto
    "PluginMeta": [
        ("plugin_id", 1, "string"),
        ("name", 2, "string"),
        ("version", 3, "string"),
        ("type", 4, "PluginType"),
        ("capabilities", 5, "repeated string"),
        ("config", 6, SS),
    ],
    "PluginResponse": [
        ("success", 1, "bool"),
        ("error_message", 2, "string"),
        ("result", 3, "bytes"),
        ("output_events", 4, "repeated Event"),
    ],
    "HealthStatus": [("healthy", 1, "bool"), ("message", 2, "string"), ("metrics", 3, SS)],
    "HealthRequest": [("plugin_id", 1, "string")],
    "ShutdownRequest": [("plugin_id", 1, "string"), ("force", 2, "bool")],
}

WIRE_ONEOFS: dict[str, dict[str, list[str]]] = {
    "ClientEvent": {"msg": ["publish", "ack", "ping", "action_result"]},
    "ServerEvent": {"msg": ["delivery", "pong", "err", "action_call"]},
}

# Our extensions beyond WIRE.md (docs/bridge.md, "Beyond the upstream wire"): new field
# numbers and one new message, which upstream peers never see unless they ask for them.
EXTENSION_MESSAGES: dict[str, list[tuple[str, int, str]]] = {
    "EventBatch": [
        ("topics", 1, "repeated string"),
        ("ids", 2, "repeated string"),
        ("types", 3, "repeated string"),
        ("timestamps_ms", 4, "repeated int64"),
        ("sources", 5, "repeated string"),
        ("payloads", 6, "repeated bytes"),
        ("confidences", 7, "repeated float"),
        ("priorities", 8, "repeated int32"),
        ("metadata_counts", 9, "repeated uint32"),
        ("metadata_keys", 10, "repeated string"),
        ("metadata_values", 11, "repeated string"),
        ("tag_counts", 12, "repeated uint32"),
        ("tags", 13, "repeated string"),
    ],
}
EXTENSION_FIELDS: dict[str, list[tuple[str, int, str]]] = {
    "AgentRegisterResponse": [("metadata", 3, SS)],
    "ClientEvent": [("publish_batch", 5, "EventBatch")],
    "ServerEvent": [("delivery_batch", 5, "EventBatch")],
}
EXTENSION_ONEOFS: dict[str, dict[str, list[str]]] = {
    "ClientEvent": {"msg": ["publish_batch"]},
    "ServerEvent": {"msg": ["delivery_batch"]},
}


def _generated_contract() -> dict[str, list[tuple[str, int, str]]]:
    """WIRE.md's messages with our extensions added: what the generated code must hold."""
    contract = {name: list(fields) for name, fields in WIRE_MESSAGES.items()}
    contract.update(EXTENSION_MESSAGES)
    for name, fields in EXTENSION_FIELDS.items():
        contract[name] = contract[name] + fields
    return contract


WIRE_ENUMS: dict[str, list[tuple[str, int]]] = {
    "QoSLevel": [("QOS_REALTIME", 0), ("QOS_BATCHED", 1), ("QOS_BACKGROUND", 2)],
    "ProviderKind": [
        ("PROVIDER_NATIVE", 0),
        ("PROVIDER_WASM", 1),
        ("PROVIDER_GRPC", 2),
        ("PROVIDER_MCP", 3),
    ],
    "ActionStatus": [
        ("ACTION_OK", 0),
        ("ACTION_ERROR", 1),
        ("ACTION_TIMEOUT", 2),
        ("ACTION_RETRYABLE", 3),
    ],
    "PluginType": [
        ("PLUGIN_FEATURE_EXTRACTOR", 0),
        ("PLUGIN_MODEL_BACKEND", 1),
        ("PLUGIN_TOOL", 2),
        ("PLUGIN_ACTUATOR", 3),
    ],
}

# service -> [(method, input, output, client streaming, server streaming)]
WIRE_SERVICES: dict[str, list[tuple[str, str, str, bool, bool]]] = {
    "EventBus": [
        ("Publish", "PublishRequest", "PublishResponse", False, False),
        ("Subscribe", "SubscribeRequest", "Event", False, True),
        ("Unsubscribe", "UnsubscribeRequest", "UnsubscribeResponse", False, False),
        ("GetStats", "StatsRequest", "StatsResponse", False, False),
    ],
    "ActionBroker": [
        ("ListCapabilities", "ListCapabilitiesRequest", "ListCapabilitiesResponse", False, False),
        ("Invoke", "ActionCall", "ActionResult", False, False),
    ],
    "AgentRuntime": [
        ("CreateAgent", "AgentConfig", "CreateAgentResponse", False, False),
        ("DeleteAgent", "DeleteAgentRequest", "DeleteAgentResponse", False, False),
        ("GetAgentState", "GetAgentStateRequest", "AgentState", False, False),
        ("UpdateAgentState", "AgentState", "UpdateAgentStateResponse", False, False),
        ("SendEvent", "SendEventRequest", "AgentResponse", False, False),
    ],
    "Bridge": [
        ("RegisterAgent", "AgentRegisterRequest", "AgentRegisterResponse", False, False),
        ("EventStream", "ClientEvent", "ServerEvent", True, True),
        ("ForwardAction", "ActionCall", "ActionResult", False, False),
        ("Heartbeat", "HeartbeatRequest", "HeartbeatResponse", False, False),
    ],
    "Plugin": [
        ("Init", "PluginMeta", "PluginResponse", False, False),
        ("HandleEvent", "Event", "PluginResponse", False, False),
        ("Health", "HealthRequest", "HealthStatus", False, False),
        ("Shutdown", "ShutdownRequest", "PluginResponse", False, False),
    ],
}

WIRE_IMPORTS: dict[str, set[str]] = {
    "loom/v1/event.proto": set(),
    "loom/v1/action.proto": {"loom/v1/event.proto"},
    "loom/v1/agent.proto": {"loom/v1/event.proto"},
    "loom/v1/bridge.proto": {"loom/v1/event.proto", "loom/v1/action.proto"},
    "loom/v1/plugin.proto": {"loom/v1/event.proto"},
}

_SCALAR_NAMES = {
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_FIXED64: "fixed64",
    FieldDescriptor.TYPE_FIXED32: "fixed32",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    FieldDescriptor.TYPE_SFIXED64: "sfixed64",
    FieldDescriptor.TYPE_SINT32: "sint32",
    FieldDescriptor.TYPE_SINT64: "sint64",
}


def _short(full_name: str) -> str:
    return full_name.removeprefix("loom.v1.")


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _type_name(field: FieldDescriptor) -> str:
    if _is_map(field):
        key = field.message_type.fields_by_name["key"]
        value = field.message_type.fields_by_name["value"]
        return f"map<{_type_name(key)},{_type_name(value)}>"
    if field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
        base = _short(field.message_type.full_name)
    elif field.type == FieldDescriptor.TYPE_ENUM:
        base = _short(field.enum_type.full_name)
    else:
        base = _SCALAR_NAMES[field.type]
    return f"repeated {base}" if field.is_repeated else base


def _all_messages() -> list[descriptor.Descriptor]:
    """Top-level message types of the five files (map entries and nested types excluded)."""
    return [msg for f in FILES for msg in f.message_types_by_name.values()]


# --------------------------------------------------------------------------------------------
# Descriptors vs WIRE.md
# --------------------------------------------------------------------------------------------


def test_files_are_loom_v1_proto3_with_wire_imports() -> None:
    assert {f.name: {d.name for d in f.dependencies} for f in FILES} == WIRE_IMPORTS
    for f in FILES:
        assert f.package == "loom.v1"
        proto = descriptor_pb2.FileDescriptorProto()
        f.CopyToProto(proto)
        assert proto.syntax == "proto3"


def test_every_message_is_in_the_wire_table() -> None:
    names = [msg.name for msg in _all_messages()]
    assert len(names) == len(set(names)), "a message name is defined twice"
    assert sorted(names) == sorted(_generated_contract())


@pytest.mark.parametrize("name", sorted(_generated_contract()))
def test_message_matches_wire_md(name: str) -> None:
    by_name = {msg.name: msg for msg in _all_messages()}
    msg = by_name[name]
    actual = sorted((f.name, f.number, _type_name(f)) for f in msg.fields)
    assert actual == sorted(_generated_contract()[name])
    # Only map entries may be nested; nothing else hides inside a message.
    assert all(nested.GetOptions().map_entry for nested in msg.nested_types)
    assert not msg.enum_types
    oneofs = {o.name: [f.name for f in o.fields] for o in msg.oneofs}
    expected = {k: list(v) for k, v in WIRE_ONEOFS.get(name, {}).items()}
    for oneof, fields in EXTENSION_ONEOFS.get(name, {}).items():
        expected[oneof] = expected.get(oneof, []) + fields
    assert oneofs == expected


def test_extensions_take_only_numbers_wire_md_leaves_free_and_are_documented() -> None:
    for name, fields in EXTENSION_FIELDS.items():
        taken = {number for _, number, _ in WIRE_MESSAGES[name]}
        assert not taken & {number for _, number, _ in fields}, name
    assert not set(EXTENSION_MESSAGES) & set(WIRE_MESSAGES)
    docs = (Path(__file__).parents[2] / "docs" / "bridge.md").read_text()
    for name in EXTENSION_MESSAGES:
        assert f"`{name}`" in docs, f"{name} is not documented in docs/bridge.md"
    for message, fields in EXTENSION_FIELDS.items():
        for field, _, _ in fields:
            written = (f"{message}.{field}", f"{message}{{{field}}}")
            assert any(w in docs for w in written), f"{message}.{field} is not in docs/bridge.md"


def test_enums_match_wire_md() -> None:
    enums = {e.name: e for f in FILES for e in f.enum_types_by_name.values()}
    assert sorted(enums) == sorted(WIRE_ENUMS)
    for name, values in WIRE_ENUMS.items():
        assert [(v.name, v.number) for v in enums[name].values] == values, name


def test_services_match_wire_md() -> None:
    services = {s.name: s for f in FILES for s in f.services_by_name.values()}
    assert sorted(services) == sorted(WIRE_SERVICES)
    for name, methods in WIRE_SERVICES.items():
        actual = [
            (
                m.name,
                _short(m.input_type.full_name),
                _short(m.output_type.full_name),
                m.client_streaming,
                m.server_streaming,
            )
            for m in services[name].methods
        ]
        assert actual == methods, name


# --------------------------------------------------------------------------------------------
# Generic round trip: every field of every message set to a non-default value
# --------------------------------------------------------------------------------------------

MAX_DEPTH = 2


def _scalar(field: FieldDescriptor, i: int) -> Any:
    """A non-default value for a non-message field; ``i`` varies it between entries."""
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return f"{field.name}-{i}-é"
    if t == FieldDescriptor.TYPE_BYTES:
        return bytes([0, 0xFF, i + 1]) + field.name.encode()
    if t == FieldDescriptor.TYPE_BOOL:
        return True
    if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return 0.5 + i  # exactly representable as float32
    if t == FieldDescriptor.TYPE_ENUM:
        nonzero = [v.number for v in field.enum_type.values if v.number != 0]
        return nonzero[i % len(nonzero)]
    if t in (
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    ):
        return -(field.number + 100 * i) if i % 2 else field.number + 1_000_000 * (i + 1)
    if t in (
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
    ):
        return field.number + 1000 * (i + 1)
    raise AssertionError(f"unhandled field type {t} of {field.full_name}")


def _fill(msg: Message, depth: int, oneof_pick: int) -> None:
    """Set every field of ``msg``; within each oneof set member ``oneof_pick`` (mod size)."""
    desc = msg.DESCRIPTOR
    chosen = {o.fields[oneof_pick % len(o.fields)].name for o in desc.oneofs if o.fields}
    for field in desc.fields:
        if field.containing_oneof is not None and field.name not in chosen:
            continue
        if _is_map(field):
            key_f = field.message_type.fields_by_name["key"]
            val_f = field.message_type.fields_by_name["value"]
            container = getattr(msg, field.name)
            for i in range(2):
                key = _scalar(key_f, i)
                if val_f.type == FieldDescriptor.TYPE_MESSAGE:
                    _fill_or_touch(container[key], depth + 1)
                else:
                    container[key] = _scalar(val_f, i)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.is_repeated:
                for _ in range(2):
                    _fill_or_touch(getattr(msg, field.name).add(), depth + 1)
            else:
                _fill_or_touch(getattr(msg, field.name), depth + 1)
        elif field.is_repeated:
            getattr(msg, field.name).extend(_scalar(field, i) for i in range(2))
        else:
            setattr(msg, field.name, _scalar(field, 0))


def _fill_or_touch(msg: Message, depth: int) -> None:
    if depth <= MAX_DEPTH:
        _fill(msg, depth, 0)
    msg.SetInParent()  # present even when empty (beyond the depth limit, or no fields)


def _round_trip_cases() -> Iterator[Any]:
    for desc in _all_messages():
        variants = max((len(o.fields) for o in desc.oneofs), default=1)
        for pick in range(variants):
            label = desc.name if variants == 1 else f"{desc.name}-oneof{pick}"
            yield pytest.param(desc, pick, id=label)


@pytest.mark.parametrize(("desc", "pick"), list(_round_trip_cases()))
def test_every_message_round_trips_with_every_field_set(
    desc: descriptor.Descriptor, pick: int
) -> None:
    module = next(m for m in MODULES if m.DESCRIPTOR is desc.file)
    cls = getattr(module, desc.name)
    original = cls()
    _fill(original, 1, pick)
    # Every field (within the chosen oneof members) is non-default and thus on the wire.
    present = {f.name for f, _ in original.ListFields()}
    expected = {
        f.name
        for f in desc.fields
        if f.containing_oneof is None
        or f.name == f.containing_oneof.fields[pick % len(f.containing_oneof.fields)].name
    }
    assert present == expected
    for oneof in desc.oneofs:
        assert original.WhichOneof(oneof.name) == oneof.fields[pick % len(oneof.fields)].name

    data = original.SerializeToString(deterministic=True)
    parsed = cls()
    parsed.ParseFromString(data)
    assert parsed == original
    assert parsed.SerializeToString(deterministic=True) == data


# --------------------------------------------------------------------------------------------
# Byte-exact encoding of an Event, written out by hand from WIRE.md's field numbers.
# Tag byte = (field number << 3) | wire type; VARINT = 0, I64 = 1, LEN = 2, I32 = 5.
# --------------------------------------------------------------------------------------------

METADATA_ENTRY = (
    b"\x0a\x01k"  # MetadataEntry 1 key, LEN, "k"
    b"\x12\x01v"  # MetadataEntry 2 value, LEN, "v"
)

EXPECTED_EVENT_BYTES = (
    b"\x0a\x02e1"  # 1 id, LEN, "e1"
    b"\x12\x01t"  # 2 type, LEN, "t"
    b"\x18\x80\xd0\x95\xff\xbc\x31"  # 3 timestamp_ms, VARINT, 1700000000000 (base 128, LSB first)
    b"\x22\x01s"  # 4 source, LEN, "s"
    b"\x2a\x06"  # 5 metadata, LEN, one MetadataEntry message of 6 bytes:
    b"\x0a\x01k"  #   entry 1 key, LEN, "k"
    b"\x12\x01v"  #   entry 2 value, LEN, "v"
    b"\x32\x02\x01\x02"  # 6 payload, LEN, b"\x01\x02"
    b"\x3d\x00\x00\x00\x3f"  # 7 confidence, I32, 0.5 as little-endian IEEE 754 float32
    b"\x42\x01a"  # 8 tags, LEN, "a" (repeated string: one record per element, never packed)
    b"\x42\x01b"  # 8 tags, LEN, "b"
    b"\x48\x46"  # 9 priority, VARINT, 70
)


def _sample_event() -> event_pb2.Event:
    return event_pb2.Event(
        id="e1",
        type="t",
        timestamp_ms=1_700_000_000_000,
        source="s",
        metadata={"k": "v"},
        payload=b"\x01\x02",
        confidence=0.5,
        tags=["a", "b"],
        priority=70,
    )


def test_event_serialises_byte_exact() -> None:
    event = _sample_event()
    assert event.SerializeToString() == EXPECTED_EVENT_BYTES
    assert event.SerializeToString(deterministic=True) == EXPECTED_EVENT_BYTES
    parsed = event_pb2.Event()
    parsed.ParseFromString(EXPECTED_EVENT_BYTES)
    assert parsed == event


def test_map_entry_encoding() -> None:
    # A map field is a repeated LEN field of entry messages {1 key, 2 value}.
    only_metadata = event_pb2.Event(metadata={"k": "v"})
    assert only_metadata.SerializeToString() == b"\x2a\x06" + METADATA_ENTRY
    entry = event_pb2.Event.MetadataEntry(key="k", value="v")
    assert entry.SerializeToString() == METADATA_ENTRY
    # Two entries are two records of field 5; deterministic output sorts them by key.
    two = event_pb2.Event(metadata={"b": "2", "a": "1"})
    assert two.SerializeToString(deterministic=True) == (
        b"\x2a\x06\x0a\x01a\x12\x011"  # 5 metadata, LEN: {1 key "a", 2 value "1"}
        b"\x2a\x06\x0a\x01b\x12\x012"  # 5 metadata, LEN: {1 key "b", 2 value "2"}
    )


# --------------------------------------------------------------------------------------------
# Property: arbitrary Events round-trip
# --------------------------------------------------------------------------------------------

events = st.builds(
    event_pb2.Event,
    id=st.text(),
    type=st.text(),
    timestamp_ms=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    source=st.text(),
    metadata=st.dictionaries(st.text(), st.text(), max_size=5),
    payload=st.binary(),
    confidence=st.floats(min_value=0.0, max_value=1.0, width=32),
    tags=st.lists(st.text(), max_size=5),
    priority=st.integers(min_value=0, max_value=100),
)


@settings(deadline=None)
@given(events)
def test_arbitrary_events_round_trip(event: event_pb2.Event) -> None:
    parsed = event_pb2.Event()
    parsed.ParseFromString(event.SerializeToString())
    assert parsed == event
    assert parsed.confidence == event.confidence
    assert list(parsed.tags) == list(event.tags)
    assert dict(parsed.metadata) == dict(event.metadata)


# --------------------------------------------------------------------------------------------
# Invalid input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xff\xff\xff", id="truncated-varint-tag"),
        pytest.param(b"\x0a\x05ab", id="truncated-len-field"),
        pytest.param(b"\x0f", id="invalid-wire-type-7"),
    ],
)
def test_invalid_bytes_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        event_pb2.Event().ParseFromString(data)


# --------------------------------------------------------------------------------------------
# Generated code is up to date with proto/
# --------------------------------------------------------------------------------------------


def test_generated_code_is_not_stale() -> None:
    if importlib.util.find_spec("grpc_tools") is None:
        pytest.skip("grpc_tools (grpcio-tools) is not installed: cannot regenerate to compare")
    result = subprocess.run(
        [sys.executable, str(GEN_SCRIPT), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert result.returncode == 0, (
        "generated loom.v1 code is stale; run `python scripts/gen_protos.py`:\n"
        + result.stdout
        + result.stderr
    )
