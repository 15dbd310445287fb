"""Attack tests: real guests that misbehave are stopped with the right error kind, and the
host, the same plugin's next call, and a good plugin all go on."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from loom.actions import CapabilityError
from loom_wasm import ErrorKind, WasmPolicy

ATTACKS = {
    "echo": "cap_echo",
    "spin": "cap_spin",
    "grow": "cap_grow",
    "recurse": "cap_recurse",
    "trap": "cap_trap",
    "giant": "cap_giant",
    "big": "cap_big",
    "badjson": "cap_badjson",
    "notutf8": "cap_notutf8",
    "oob": "cap_oob",
    "fail": "cap_fail",
    "fail_text": "cap_fail_text",
    "count": "cap_count",
}
PROBE = {
    name: f"cap_{name}"
    for name in ("read", "write", "env", "clock", "sleep", "sleep_spin", "exit", "stderr_trap")
}


def _fails(plugin, capability, payload=b"{}", **kwargs) -> CapabilityError:
    with pytest.raises(CapabilityError) as caught:
        plugin.call(capability, payload, **kwargs)
    return caught.value


def _after(plugin, still_works) -> None:
    """The attacked plugin itself answers its next (good) call, and so does another."""
    assert json.loads(plugin.call("echo", b'{"next": 1}')) == {"next": 1}
    still_works()


@pytest.fixture
def attacks(make_plugin):
    return make_plugin(
        "attacks",
        ATTACKS,
        limits={"fuel": 20_000_000, "memory_pages": 16, "timeout_ms": 3000},
    )


# -- CPU -------------------------------------------------------------------------------


def test_infinite_loop_runs_out_of_fuel(attacks, still_works):
    error = _fails(attacks, "spin")
    assert error.code == "CAPABILITY_ERROR"
    assert error.details["kind"] == ErrorKind.FUEL
    assert error.details["fuel"] == "20000000"
    assert "ran out of fuel" in error.message and "'spin'" in error.message
    _after(attacks, still_works)


def test_infinite_loop_is_stopped_by_the_wall_clock(make_plugin, still_works):
    plugin = make_plugin(
        "attacks", ATTACKS, limits={"fuel": 10**10, "memory_pages": 16, "timeout_ms": 100}
    )
    started = time.monotonic()
    error = _fails(plugin, "spin")
    elapsed = time.monotonic() - started
    assert error.details["kind"] == ErrorKind.TIMEOUT
    assert "100 ms deadline" in error.message
    assert elapsed < 5  # stopped by the epoch, not left running
    _after(plugin, still_works)


def test_a_shorter_call_timeout_tightens_the_deadline(make_plugin):
    plugin = make_plugin(
        "attacks", ATTACKS, limits={"fuel": 10**10, "memory_pages": 16, "timeout_ms": 30_000}
    )
    started = time.monotonic()
    error = _fails(plugin, "spin", timeout_ms=50)
    assert error.details["kind"] == ErrorKind.TIMEOUT
    assert error.details["timeout_ms"] == "50"
    assert time.monotonic() - started < 5


def test_deep_recursion_traps_with_the_cause(attacks, still_works):
    error = _fails(attacks, "recurse")
    assert error.details["kind"] == ErrorKind.TRAP
    assert "call stack exhausted" in error.message
    assert error.details["backtrace"]
    _after(attacks, still_works)


def test_a_trap_answers_capability_error_with_the_trap_message(attacks, still_works):
    error = _fails(attacks, "trap")
    assert error.code == "CAPABILITY_ERROR"
    assert error.details["kind"] == ErrorKind.TRAP
    assert "integer divide by zero" in error.message
    _after(attacks, still_works)


# -- memory ----------------------------------------------------------------------------


def test_memory_bomb_hits_the_cap(attacks, still_works):
    error = _fails(attacks, "grow")
    assert error.details["kind"] == ErrorKind.MEMORY
    assert error.details["memory_bytes"] == str(16 * 65536)
    assert "memory cap of 1048576 bytes" in error.message
    _after(attacks, still_works)


def test_an_input_larger_than_memory_allows_hits_the_cap(attacks):
    error = _fails(attacks, "echo", b'"' + b"x" * (2 * 1024 * 1024) + b'"')
    assert error.details["kind"] == ErrorKind.MEMORY
    assert json.loads(attacks.call("echo", b"[1]")) == [1]


# -- output and ABI ----------------------------------------------------------------------


def test_a_giant_output_is_refused_before_it_is_read(attacks, still_works):
    error = _fails(attacks, "giant")
    assert error.details["kind"] == ErrorKind.OUTPUT
    assert "104857600 bytes is over the cap" in error.message
    _after(attacks, still_works)


def test_a_real_output_over_the_cap_is_refused(make_plugin):
    small = make_plugin(
        "attacks", ATTACKS, limits={"memory_pages": 64, "max_output_bytes": 1_000_000}
    )
    assert _fails(small, "big").details["kind"] == ErrorKind.OUTPUT
    large = make_plugin(
        "attacks", ATTACKS, limits={"memory_pages": 64, "max_output_bytes": 3_000_000}
    )
    assert json.loads(large.call("big", b"{}")) == "a" * 2_000_000


def test_malformed_json_output(attacks, still_works):
    error = _fails(attacks, "badjson")
    assert error.details["kind"] == ErrorKind.OUTPUT
    assert "not UTF-8 JSON" in error.message and "{not json" in error.message
    assert _fails(attacks, "notutf8").details["kind"] == ErrorKind.OUTPUT
    _after(attacks, still_works)


def test_an_output_range_outside_memory_breaks_the_abi(attacks, still_works):
    error = _fails(attacks, "oob")
    assert error.details["kind"] == ErrorKind.ABI
    assert "outside the guest memory" in error.message
    _after(attacks, still_works)


def test_the_guest_reports_its_own_error_with_a_code(attacks):
    error = _fails(attacks, "fail")
    assert error.code == "NOT_ALLOWED"
    assert error.details["kind"] == ErrorKind.GUEST
    assert error.details["guest.hint"] == "ask first"
    assert "the plugin reported: nope" in error.message
    text = _fails(attacks, "fail_text")
    assert text.code == "CAPABILITY_ERROR"
    assert "plain text failure" in text.message


# -- instance reuse ----------------------------------------------------------------------


def test_fresh_instances_share_no_state(attacks):
    counts = [json.loads(attacks.call("count", b"{}"))["count"] for _ in range(3)]
    assert counts == [1, 1, 1]


def test_a_reused_instance_keeps_state_and_is_dropped_after_a_trap(make_plugin, still_works):
    plugin = make_plugin("attacks", ATTACKS, reuse=True)
    assert plugin.granted.reuse
    counts = [json.loads(plugin.call("count", b"{}"))["count"] for _ in range(3)]
    assert counts == [1, 2, 3]
    assert _fails(plugin, "trap").details["kind"] == ErrorKind.TRAP
    # the trapped instance was discarded: the next call starts from a new one
    assert json.loads(plugin.call("count", b"{}"))["count"] == 1
    assert _fails(plugin, "spin").details["kind"] == ErrorKind.FUEL
    assert json.loads(plugin.call("count", b"{}"))["count"] == 1
    # a guest-reported error or a bad output leaves the instance in use
    _fails(plugin, "fail")
    _fails(plugin, "badjson")
    assert json.loads(plugin.call("count", b"{}"))["count"] == 2
    still_works()


def test_reuse_is_refused_when_the_policy_says_so(make_plugin, tmp_path):
    plugin = make_plugin(
        "attacks", ATTACKS, reuse=True, policy_override=WasmPolicy(reuse=False, cache=False)
    )
    assert not plugin.granted.reuse
    assert any("instance reuse" in r for r in plugin.granted.refused)
    counts = [json.loads(plugin.call("count", b"{}"))["count"] for _ in range(2)]
    assert counts == [1, 1]


# -- WASI: filesystem, environment, clocks, sleep, exit --------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "granted"
    (root / "data").mkdir(parents=True)
    (root / "data" / "notes.txt").write_text("hello from the host")
    (tmp_path / "secret.txt").write_text("top secret")
    (root / "secret-link").symlink_to(tmp_path / "secret.txt")
    return root


def _probe(make_plugin, tmp_path, *, grants=None, policy=None, limits=None):
    return make_plugin(
        "wasi_probe",
        PROBE,
        grants=grants,
        limits=limits,
        policy_override=policy or WasmPolicy(cache_dir=str(tmp_path / "cache")),
    )


def _errno(plugin, capability, path):
    return json.loads(plugin.call(capability, json.dumps(path).encode()))


def test_no_filesystem_unless_granted(make_plugin, tmp_path, data_dir):
    plugin = _probe(make_plugin, tmp_path)
    assert plugin.granted.dirs == ()
    result = _errno(plugin, "read", "notes.txt")
    assert result["errno"] != 0 and "data" not in result


def test_a_granted_directory_reads_and_nothing_outside_it(make_plugin, tmp_path, data_dir):
    policy = WasmPolicy(dirs=[{"path": str(data_dir), "mode": "ro"}], cache=False)
    grants = {"dirs": [{"host": str(data_dir / "data"), "guest": "/data"}]}
    plugin = _probe(make_plugin, tmp_path, grants=grants, policy=policy)
    assert _errno(plugin, "read", "notes.txt") == {"errno": 0, "data": "hello from the host"}
    for escape in (
        "../secret-link",
        "../../secret.txt",
        "/etc/hostname",
        "../data/../../secret.txt",
    ):
        result = _errno(plugin, "read", escape)
        assert result["errno"] != 0, escape
        assert "data" not in result


def test_a_symlink_out_of_the_grant_is_not_followed(make_plugin, tmp_path, data_dir):
    (data_dir / "data" / "link").symlink_to(tmp_path / "secret.txt")
    policy = WasmPolicy(dirs=[{"path": str(data_dir)}], cache=False)
    grants = {"dirs": [{"host": str(data_dir / "data"), "guest": "/data"}]}
    plugin = _probe(make_plugin, tmp_path, grants=grants, policy=policy)
    result = _errno(plugin, "read", "link")
    assert result["errno"] != 0 and "data" not in result


def test_writing_into_a_read_only_grant_fails(make_plugin, tmp_path, data_dir):
    policy = WasmPolicy(dirs=[{"path": str(data_dir), "mode": "ro"}], cache=False)
    grants = {"dirs": [{"host": str(data_dir / "data"), "guest": "/data", "mode": "rw"}]}
    plugin = _probe(make_plugin, tmp_path, grants=grants, policy=policy)
    # asked rw, allowed ro: granted read only, and the refusal is said
    assert [d.writable for d in plugin.granted.dirs] == [False]
    assert any("write access" in r and "read only" in r for r in plugin.granted.refused)
    assert _errno(plugin, "write", "new.txt")["errno"] != 0
    assert not (data_dir / "data" / "new.txt").exists()
    assert _errno(plugin, "write", "notes.txt")["errno"] != 0
    assert (data_dir / "data" / "notes.txt").read_text() == "hello from the host"


def test_a_writable_grant_writes_inside_only(make_plugin, tmp_path, data_dir):
    policy = WasmPolicy(dirs=[{"path": str(data_dir), "mode": "rw"}], cache=False)
    grants = {"dirs": [{"host": str(data_dir / "data"), "guest": "/data", "mode": "rw"}]}
    plugin = _probe(make_plugin, tmp_path, grants=grants, policy=policy)
    assert _errno(plugin, "write", "new.txt") == {"errno": 0}
    assert (data_dir / "data" / "new.txt").read_text() == "written"
    assert _errno(plugin, "write", "../escaped.txt")["errno"] != 0
    assert not (data_dir / "escaped.txt").exists()


def test_environment_only_as_granted(make_plugin, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOM_TEST_GRANTED", "yes")
    monkeypatch.setenv("LOOM_TEST_SECRET", "hunter2")
    bare = _probe(make_plugin, tmp_path)
    assert json.loads(bare.call("env", b'""')) == {"count": 0, "env": ""}
    policy = WasmPolicy(env=["LOOM_TEST_GRANTED"], cache=False)
    grants = {"env": ["LOOM_TEST_GRANTED", "LOOM_TEST_SECRET", "LOOM_TEST_UNSET"]}
    plugin = _probe(make_plugin, tmp_path, grants=grants, policy=policy)
    assert json.loads(plugin.call("env", b'""')) == {"count": 1, "env": "LOOM_TEST_GRANTED=yes;"}
    refused = "\n".join(plugin.granted.refused)
    assert "LOOM_TEST_SECRET: not allowed by the policy" in refused
    assert "LOOM_TEST_UNSET: not allowed by the policy" in refused


def test_the_clock_only_as_granted(make_plugin, tmp_path):
    enosys = 58  # WASI ENOTSUP, from the host's stub
    assert _errno(_probe(make_plugin, tmp_path), "clock", "")["errno"] == enosys
    granted = _probe(make_plugin, tmp_path, grants={"clock": True})
    assert _errno(granted, "clock", "") == {"errno": 0}
    refused = _probe(
        make_plugin, tmp_path, grants={"clock": True}, policy=WasmPolicy(clock=False, cache=False)
    )
    assert _errno(refused, "clock", "")["errno"] == enosys
    assert refused.granted.refused == ("clock: not allowed by the policy",)


def test_sleeping_in_a_host_call_is_refused_at_once(make_plugin, tmp_path):
    plugin = _probe(make_plugin, tmp_path, grants={"clock": True})
    started = time.monotonic()
    assert _errno(plugin, "sleep", "") == {"errno": 58}  # the guest asked for 5 s
    assert time.monotonic() - started < 2


def test_a_guest_that_spins_instead_of_sleeping_meets_the_deadline(make_plugin, tmp_path):
    plugin = _probe(make_plugin, tmp_path, limits={"fuel": 10**10, "timeout_ms": 150})
    started = time.monotonic()
    error = _fails(plugin, "sleep_spin", b'""')
    assert error.details["kind"] == ErrorKind.TIMEOUT
    assert time.monotonic() - started < 5


def test_proc_exit_is_a_trap_and_stderr_is_kept(make_plugin, tmp_path):
    plugin = _probe(make_plugin, tmp_path)
    error = _fails(plugin, "exit", b'""')
    assert error.details["kind"] == ErrorKind.TRAP
    assert "exited with status 3" in error.message
    trapped = _fails(plugin, "stderr_trap", b'""')
    assert trapped.details["kind"] == ErrorKind.TRAP
    assert trapped.details["stderr"] == "boom on stderr\n"
    assert _errno(plugin, "clock", "")["errno"] == 58  # and it still answers


# -- components ----------------------------------------------------------------------------


@pytest.fixture
def component(make_plugin):
    return make_plugin(
        "component_attacks",
        {"echo": "echo", "spin": "spin", "trap": "trap"},
        abi="component-v1",
        limits={"fuel": 20_000_000, "memory_pages": 16, "timeout_ms": 3000},
    )


def test_component_runs_out_of_fuel_and_traps(component, still_works):
    assert json.loads(component.call("echo", b'{"a": [1, 2]}')) == {"a": [1, 2]}
    assert _fails(component, "spin").details["kind"] == ErrorKind.FUEL
    trap = _fails(component, "trap")
    assert trap.details["kind"] == ErrorKind.TRAP
    assert "unreachable" in trap.message
    assert json.loads(component.call("echo", b"[3]")) == [3]
    still_works()


def test_component_meets_its_deadline(make_plugin):
    plugin = make_plugin(
        "component_attacks",
        {"spin": "spin", "echo": "echo"},
        abi="component-v1",
        limits={"fuel": 10**10, "memory_pages": 16, "timeout_ms": 100},
    )
    error = _fails(plugin, "spin")
    assert error.details["kind"] == ErrorKind.TIMEOUT
    assert json.loads(plugin.call("echo", b"{}")) == {}
