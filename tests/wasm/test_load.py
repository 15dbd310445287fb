"""Loading: manifests, policy and grants, bad modules, import and export checks, the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from loom_wasm import (
    PluginManifest,
    WasmLoadError,
    WasmPolicy,
    find_manifests,
    load_plugin,
    load_plugins,
    load_policy,
)
from loom_wasm._manifest import load_manifest

ECHO = {"echo": "cap_echo"}


def _load_error(path: Path, policy: WasmPolicy | None = None) -> WasmLoadError:
    with pytest.raises(WasmLoadError) as caught:
        load_plugin(path, policy or WasmPolicy(cache=False))
    return caught.value


# -- manifests ---------------------------------------------------------------------------


def test_a_toml_manifest_with_defaults(tmp_path):
    path = tmp_path / "tool.wasm.toml"
    path.write_text(
        'name = "tool"\nversion = "1"\n[limits]\nmemory_pages = 2\n[[capabilities]]\nname = "a.b"\n'
    )
    manifest, module = load_manifest(path)
    assert module == tmp_path / "tool.wasm"
    assert manifest.abi == "cap-v1"
    assert manifest.limits.memory_bytes == 2 * 65536
    assert manifest.grants.dirs == [] and manifest.grants.env == [] and not manifest.grants.clock
    assert manifest.export_of(manifest.capabilities[0]) == "cap_call"
    assert manifest.capabilities[0].input_schema == {"type": "object"}


@pytest.mark.parametrize(
    ("text", "suffix", "expected"),
    [
        ("name = ", ".wasm.toml", "manifest is not valid TOML"),
        ("{", ".wasm.json", "manifest is not valid JSON"),
        ("[1]", ".wasm.json", "must be a table/object"),
        ('name = "x"\nversion = "1"\ncapabilities = []', ".wasm.toml", "capabilities: List should"),
        (
            'name = "x"\nversion = "1"\ntypo = 1\n[[capabilities]]\nname = "a"',
            ".wasm.toml",
            "typo: Extra inputs are not permitted",
        ),
        (
            'name = "x"\nversion = "1"\n[grants]\ndirs = [{host = ".", guest = "data"}]\n'
            '[[capabilities]]\nname = "a"',
            ".wasm.toml",
            "grants.dirs.0.guest",
        ),
        (
            'name = "x"\nversion = "1"\n[limits]\nmemory_pages = 1\nmemory_bytes = 65536\n'
            '[[capabilities]]\nname = "a"',
            ".wasm.toml",
            "not both",
        ),
        (
            'name = "x"\nversion = "1"\n[[capabilities]]\nname = "a"\n[[capabilities]]\nname = "a"',
            ".wasm.toml",
            "listed twice",
        ),
        (
            'name = "x"\nversion = "1"\n[[capabilities]]\nname = "a"\nexport = "no spaces"',
            ".wasm.toml",
            "capabilities.0.export",
        ),
        (
            'name = "x"\nversion = "1"\nabi = "v9"\n[[capabilities]]\nname = "a"',
            ".wasm.toml",
            "abi",
        ),
    ],
)
def test_bad_manifests_name_the_file_and_the_field(tmp_path, text, suffix, expected):
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(WasmLoadError) as caught:
        load_manifest(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_manifest_model_round_trips_through_json():
    manifest = PluginManifest.model_validate(
        {"name": "n", "version": "1", "capabilities": [{"name": "c", "export": "cap_c"}]}
    )
    again = PluginManifest.model_validate_json(manifest.model_dump_json())
    assert again == manifest


# -- policy and grants --------------------------------------------------------------------


def test_a_limit_above_the_policy_is_a_load_error(build_guest, manifest_for, tmp_path):
    manifest = manifest_for("big", ECHO, limits={"memory_pages": 100})
    path = build_guest("attacks", tmp_path, manifest)
    error = _load_error(path, WasmPolicy(max_memory_bytes=64 * 65536, cache=False))
    assert str(path) in str(error)
    assert "limits.memory_bytes = 6553600 asks for more than the policy allows" in str(error)


def test_unset_limits_are_lowered_to_the_policy(build_guest, tmp_path):
    manifest = {
        "name": "d",
        "version": "1",
        "capabilities": [{"name": "echo", "export": "cap_echo"}],
    }
    path = build_guest("attacks", tmp_path, manifest)
    plugin = load_plugin(path, WasmPolicy(max_timeout_ms=200, max_fuel=1000, cache=False))
    try:
        assert plugin.granted.limits.timeout_ms == 200
        assert plugin.granted.limits.fuel == 1000
    finally:
        plugin.close()


def test_directory_grants_are_intersected_with_the_policy(build_guest, manifest_for, tmp_path):
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    grants = {
        "dirs": [
            {"host": "allowed/sub", "guest": "/sub", "mode": "rw"},  # relative to the manifest
            {"host": str(outside), "guest": "/out"},
            {"host": "missing", "guest": "/missing"},
        ]
    }
    path = build_guest(
        "wasi_probe", tmp_path, manifest_for("g", {"read": "cap_read"}, grants=grants)
    )
    plugin = load_plugin(path, WasmPolicy(dirs=[{"path": str(allowed), "mode": "rw"}], cache=False))
    try:
        assert [(d.host, d.guest, d.writable) for d in plugin.granted.dirs] == [
            (allowed / "sub", "/sub", True)
        ]
        refused = "\n".join(plugin.granted.refused)
        assert f"{outside}' (for /out): outside every directory the policy allows" in refused
        assert "(for /missing): not a directory" in refused
        described = plugin.describe()
        assert described["refused"] == list(plugin.granted.refused)
        assert described["granted"]["dirs"] == [
            {"host": str(allowed / "sub"), "guest": "/sub", "mode": "rw"}
        ]
    finally:
        plugin.close()


def test_policy_from_toml(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('[wasm]\nenv = ["LANG"]\nmax_fuel = 5\ndirs = [{path = "/srv", mode = "rw"}]\n')
    policy = load_policy(path)
    assert policy.env == ["LANG"] and policy.max_fuel == 5
    assert policy.dirs[0].mode == "rw"
    path.write_text("max_fuel = -1\n")
    with pytest.raises(WasmLoadError, match="max_fuel"):
        load_policy(path)


# -- bad modules ------------------------------------------------------------------------


def _with_module(tmp_path: Path, data: bytes, manifest: dict) -> Path:
    (tmp_path / "m.wasm").write_bytes(data)
    path = tmp_path / "m.wasm.json"
    path.write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"not wasm at all", "not a WebAssembly binary"),
        (b"", "not a WebAssembly binary"),
        (b"\0asm\x01\x00\x00\x00\x01\x05", "does not compile as a module"),
    ],
)
def test_truncated_or_non_wasm_modules(tmp_path, manifest_for, data, expected):
    path = _with_module(tmp_path, data, manifest_for("m", ECHO))
    error = _load_error(path)
    assert error.path == str(tmp_path / "m.wasm")
    assert expected in str(error)


def test_a_missing_module(tmp_path, manifest_for):
    path = tmp_path / "gone.wasm.json"
    path.write_text(json.dumps(manifest_for("gone", ECHO)))
    assert f"module not found (built from source? run: loom wasm build {tmp_path})" in str(
        _load_error(path)
    )


def test_forbidden_imports_are_rejected_at_load(build_guest, manifest_for, tmp_path):
    path = build_guest("forbidden", tmp_path, manifest_for("f", {"c": "cap_call"}))
    error = str(_load_error(path))
    assert "import env.system is not allowed" in error
    assert (
        "import wasi_snapshot_preview1.sock_accept is not allowed (network is not grantable)"
        in error
    )


def test_wrong_export_signatures_are_rejected(build_guest, manifest_for, tmp_path):
    path = build_guest("bad_exports", tmp_path, manifest_for("b", {"c": "cap_call", "d": "cap_d"}))
    error = str(_load_error(path))
    assert "export cap_abi_version is func() -> (i64), want func() -> (i32)" in error
    assert "missing export cap_alloc" in error
    assert "export cap_call is func(i32) -> (i32), want func(i32, i32) -> (i64)" in error
    assert "missing export cap_d" in error


@pytest.mark.parametrize(
    ("guest", "expected"),
    [
        ("command", "a WASI command, not a reactor"),
        ("abi_v2", "cap_abi_version() returned 2"),
        ("start_trap", "instantiation failed: trapped: wasm trap: wasm `unreachable`"),
    ],
)
def test_modules_that_do_not_speak_the_abi(build_guest, manifest_for, tmp_path, guest, expected):
    path = build_guest(guest, tmp_path, manifest_for("x", {"c": "cap_call"}))
    assert expected in str(_load_error(path))


def test_initial_memory_above_the_cap(build_guest, manifest_for, tmp_path):
    path = build_guest("big_memory", tmp_path, manifest_for("x", {"c": "cap_call"}))
    error = str(_load_error(path))
    assert "initial memory of 67108864 bytes is over the memory cap of 2097152 bytes" in error


def test_abi_must_match_the_binary(build_guest, manifest_for, tmp_path):
    core = build_guest("attacks", tmp_path / "a", manifest_for("a", ECHO, abi="component-v1"))
    assert "is a core module, but the manifest says abi = 'component-v1'" in str(_load_error(core))
    comp = build_guest("component_attacks", tmp_path / "b", manifest_for("b", {"e": "echo"}))
    assert "is a component, but the manifest says abi = 'cap-v1'" in str(_load_error(comp))


def test_component_exports_are_checked(build_guest, manifest_for, tmp_path):
    manifest = manifest_for("c", {"w": "wrong", "m": "missing"}, abi="component-v1")
    error = str(_load_error(build_guest("component_attacks", tmp_path, manifest)))
    assert "export wrong is not func(input: string) -> string" in error
    assert "missing export missing" in error


def test_a_wat_module_loads_from_source(tmp_path, manifest_for):
    source = Path(__file__).parent / "guests" / "attacks.wat"
    manifest = {**manifest_for("src", ECHO), "module": str(source)}
    path = tmp_path / "src.wasm.json"
    path.write_text(json.dumps(manifest))
    plugin = load_plugin(path, WasmPolicy(cache=False))
    try:
        assert json.loads(plugin.call("echo", b'{"a": 1}')) == {"a": 1}
    finally:
        plugin.close()


# -- many plugins ------------------------------------------------------------------------


def test_one_bad_plugin_does_not_stop_the_others(build_guest, manifest_for, tmp_path, policy):
    build_guest("attacks", tmp_path / "good", manifest_for("good", ECHO))
    build_guest("forbidden", tmp_path / "bad", manifest_for("bad", {"c": "cap_call"}))
    (tmp_path / "broken.wasm.toml").write_text("name = ")
    build_guest("attacks", tmp_path / "twin", manifest_for("good", ECHO), stem="twin")
    (tmp_path / "ignored.json").write_text("{}")
    report = load_plugins([tmp_path], policy)
    try:
        assert [p.name for p in report.plugins] == ["good"]
        messages = sorted(str(e) for e in report.errors)
        assert len(messages) == 3
        assert any("broken.wasm.toml" in m and "not valid TOML" in m for m in messages)
        assert any("forbidden.wasm" in m and "env.system" in m for m in messages)
        assert any("twin.wasm.json" in m and "already used by" in m for m in messages)
        assert json.loads(report.plugins[0].call("echo", b"{}")) == {}
    finally:
        for plugin in report.plugins:
            plugin.close()


def test_find_manifests(tmp_path):
    (tmp_path / "a.wasm.toml").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.wasm.json").write_text("")
    (tmp_path / "sub" / "deep").mkdir()
    (tmp_path / "sub" / "deep" / "c.wasm.toml").write_text("")
    (tmp_path / "x.toml").write_text("")
    found = find_manifests([tmp_path, tmp_path / "a.wasm.toml", tmp_path / "nowhere"])
    assert found == [tmp_path / "a.wasm.toml", tmp_path / "sub" / "b.wasm.json"]


# -- the compile cache --------------------------------------------------------------------


def test_compiled_code_is_cached_in_a_directory_the_host_owns(build_guest, manifest_for, tmp_path):
    path = build_guest("attacks", tmp_path / "p", manifest_for("c", ECHO))
    cache = tmp_path / "cache"
    policy = WasmPolicy(cache_dir=str(cache))
    first = load_plugin(path, policy)
    second = load_plugin(path, policy)
    try:
        assert (first.cache, second.cache) == ("miss", "hit")
        entries = list(cache.glob("*.cwasm"))
        assert len(entries) == 1
        assert entries[0].stat().st_mode & 0o077 == 0
        assert cache.stat().st_mode & 0o077 == 0
        assert json.loads(second.call("echo", b"[1]")) == [1]
    finally:
        first.close()
        second.close()


def test_an_unsafe_cache_directory_is_not_used(build_guest, manifest_for, tmp_path, caplog):
    path = build_guest("attacks", tmp_path / "p", manifest_for("c", ECHO))
    cache = tmp_path / "shared"
    cache.mkdir()
    os.chmod(cache, 0o777)
    plugin = load_plugin(path, WasmPolicy(cache_dir=str(cache)))
    try:
        assert plugin.cache.startswith("off: ") and "writable by group or others" in plugin.cache
        assert list(cache.iterdir()) == []
        assert json.loads(plugin.call("echo", b"[2]")) == [2]
        assert "not caching compiled modules" in caplog.text
    finally:
        plugin.close()


def test_a_tampered_cache_entry_is_dropped_and_recompiled(build_guest, manifest_for, tmp_path):
    path = build_guest("attacks", tmp_path / "p", manifest_for("c", ECHO))
    cache = tmp_path / "cache"
    policy = WasmPolicy(cache_dir=str(cache))
    load_plugin(path, policy).close()
    (entry,) = cache.glob("*.cwasm")
    entry.write_bytes(b"garbage")
    plugin = load_plugin(path, policy)
    try:
        assert plugin.cache == "miss"
        assert json.loads(plugin.call("echo", b"[3]")) == [3]
    finally:
        plugin.close()
    os.chmod(entry, 0o666)  # writable by others: never deserialized
    again = load_plugin(path, policy)
    try:
        assert again.cache == "miss"
    finally:
        again.close()


def test_component_imports_are_checked(build_guest, manifest_for, tmp_path):
    clock = {"c": "call"}
    denied = build_guest(
        "component_clock", tmp_path / "a", manifest_for("a", clock, abi="component-v1")
    )
    assert "import wasi:clocks/monotonic-clock@0.2.0 needs the clock grant" in str(
        _load_error(denied)
    )
    granted = build_guest(
        "component_clock",
        tmp_path / "b",
        manifest_for("b", clock, abi="component-v1", grants={"clock": True}),
    )
    plugin = load_plugin(granted, WasmPolicy(cache=False))
    try:
        assert json.loads(plugin.call("c", b'{"t": 1}')) == {"t": 1}
    finally:
        plugin.close()
    net = build_guest("component_net", tmp_path / "c", manifest_for("c", clock, abi="component-v1"))
    assert "import evil:net/socket is not allowed" in str(_load_error(net))
