"""loom-nats parts that need no server: the wire codec, settings, names, the plugin."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings

from loom import Event
from loom.errors import ProtocolError
from loom.host import create_host
from loom.testing import registered_plugin, wire_events
from loom_nats import NatsBus, StreamLimits
from loom_nats._cli import parse_start
from loom_nats._codec import decode_event, encode_event
from loom_nats._config import check_name, durable_name, stream_name_for
from loom_nats._consumer import _ack_tokens

events = wire_events()


@settings(max_examples=200, deadline=None)
@given(events)
def test_codec_round_trips_and_matches_event_encode(event: Event) -> None:
    data = encode_event(event)
    assert data == event.encode()
    assert decode_event(data) == Event.decode(data) == event


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a loom event", "do not parse"),
        (b"", "no event id"),
        (Event("t", id="x", priority=1).encode().replace(b"H\x01", b"H\x7f"), "priority"),
    ],
)
def test_decode_rejects_what_is_not_an_event(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_event(data)


def test_stream_limits_validate_and_convert() -> None:
    limits = StreamLimits.coerce({"max_age": 3600, "max_msgs": 10, "storage": "memory"})
    config = limits.stream_config("S", ["p.>"])
    assert (config.name, config.subjects, config.max_age, config.max_msgs) == (
        "S",
        ["p.>"],
        3600,
        10,
    )
    assert config.storage.value == "memory" and config.discard.value == "old"
    assert StreamLimits.coerce(None) == StreamLimits()
    for bad, message in [
        ({"max_age": float("nan")}, "max_age"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_msgs": True}, "max_msgs"),
        ({"storage": "disk"}, "storage"),
        ({"discard": "all"}, "discard"),
        ({"replicas": 7}, "replicas"),
        ({"duplicate_window": 0}, "duplicate_window"),
        ({"max_age": 10, "duplicate_window": 60}, "must not exceed"),
    ]:
        with pytest.raises(ValueError, match=message):
            StreamLimits(**bad)
    with pytest.raises(ValueError, match="StreamLimits or a dict"):
        StreamLimits.coerce([1])  # type: ignore[arg-type]


def test_names() -> None:
    assert stream_name_for("loom") == "LOOM"
    assert stream_name_for("acme.loom-1") == "ACME_LOOM-1"
    long = stream_name_for("x" * 100)
    assert len(long) <= 64 and long != stream_name_for("x" * 99)
    assert check_name("durable", "a_b-C9") == "a_b-C9"
    for bad in ("", "a.b", "a b", "a*", "x" * 65):
        with pytest.raises(ValueError, match="durable"):
            check_name("durable", bad)
    one = durable_name("host a", "orders.>", 1, ["b", "a"], 1)
    assert one == durable_name("host a", "orders.>", 1, ["a", "b"], 1)  # stable
    assert check_name("durable", one)
    assert len({one, durable_name("host a", "orders.>", 1, ["a", "b"], 2)}) == 2
    assert one != durable_name("host a", "orders.>", 2, ["a", "b"], 1)


def test_ack_subject_tokens() -> None:
    assert _ack_tokens("$JS.ACK.S.C.2.17.5.1700000000.3") == (2, 17, 5)
    assert _ack_tokens("$JS.ACK.dom.acc.S.C.1.9.4.1700000000.0.tok") == (1, 9, 4)
    assert _ack_tokens("$JS.ACK.S.C") is None
    assert _ack_tokens("$JS.ACK.S.C.x.17.5.1700000000.3") is None


def test_parse_start() -> None:
    assert parse_start("42") == (42, None)
    seq, when = parse_start("15m")
    assert seq is None and when is not None
    assert abs((datetime.now(UTC) - when) - timedelta(minutes=15)) < timedelta(seconds=5)
    assert parse_start("2026-11-25T07:00:00Z")[1] == datetime(2026, 11, 25, 7, tzinfo=UTC)
    assert parse_start("2026-11-25T07:00:00")[1] == datetime(2026, 11, 25, 7, tzinfo=UTC)
    with pytest.raises(ValueError, match="--from"):
        parse_start("yesterday")


def test_importing_the_plugin_loads_nothing_heavy() -> None:
    code = (
        "import sys, json, loom_nats.plugin\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('nats', 'google', 'loom_nats') or m.startswith('loom.v1'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["loom_nats", "loom_nats.plugin"]


def test_the_plugin_contributes_backend_command_and_scenarios() -> None:
    import loom_nats.plugin

    host = create_host(load_entrypoints=False, strict=True)
    with registered_plugin(host, loom_nats.plugin, "nats"):
        (backend,) = [b for b in host.bus_backends() if b.name == "nats"]
        bus = backend.factory(servers="nats://127.0.0.1:1", prefix="app", name="host-a")
        assert isinstance(bus, NatsBus)
        assert (bus.prefix, bus.stream, bus.name) == ("app", "APP", "host-a")
        assert "nats" in [c.name for c in host.cli_commands()]
        scenarios = {s.name: s.baseline for s in host.bench_scenarios()}
        assert {k: v for k, v in scenarios.items() if "nats" in k} == {
            "baseline.nats_raw": None,
            "nats.publish_1sub": "baseline.nats_raw",
            "nats.jetstream_publish": "baseline.nats_raw",
            "nats.request_reply": "baseline.nats_raw",
        }


def test_the_installed_entry_point_is_found() -> None:
    host = create_host()
    assert "nats" in [b.name for b in host.bus_backends()]
    assert not [f for f in host.failures if "nats" in f.describe()]


def test_per_subject_counters_are_bounded() -> None:
    from loom_nats._stats import MAX_TRACKED_SUBJECTS, OTHER_SUBJECTS, Telemetry

    telemetry = Telemetry("p")
    error = ProtocolError("loom.v1.Event", "garbage")
    for i in range(MAX_TRACKED_SUBJECTS + 50):
        telemetry.undecodable(f"p.s{i}", error)
    counts = telemetry.undecodable_by_subject
    assert len(counts) == MAX_TRACKED_SUBJECTS + 1
    assert counts[OTHER_SUBJECTS] == 50 and counts["p.s0"] == 1
