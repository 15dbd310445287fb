"""The ``wasm`` plugin: capabilities from LOOM_WASM_PATH, ``loom wasm``, bench, import cost."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loom import ActionCall, ActionStatus, ProviderKind, hookimpl
from loom.actions import ActionBroker
from loom.bench import run_scenario
from loom.cli import main
from loom_wasm import plugin as wasm_plugin
from loom_wasm import wasm_capabilities

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "wasm"


@pytest.fixture
def plugin_dir(tmp_path, build_guest, manifest_for) -> Path:
    """A directory of plugins: text-tools built from its example, a forbidden one, a bad one."""
    folder = tmp_path / "plugins"
    tools = folder / "text-tools"
    tools.mkdir(parents=True)
    import wasmtime

    source = (EXAMPLES / "text-tools" / "text_tools.wat").read_text()
    (tools / "text_tools.wasm").write_bytes(wasmtime.wat2wasm(source))
    shutil.copy(EXAMPLES / "text-tools" / "text_tools.wasm.toml", tools)
    build_guest(
        "forbidden", folder / "forbidden", manifest_for("forbidden", {"evil.run": "cap_call"})
    )
    (folder / "broken.wasm.toml").write_text("name = [")
    return folder


@pytest.fixture
def wasm_env(monkeypatch, plugin_dir, tmp_path):
    monkeypatch.setenv("LOOM_WASM_PATH", str(plugin_dir))
    monkeypatch.setenv("LOOM_WASM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LOOM_WASM_POLICY", raising=False)
    return plugin_dir


def test_no_path_no_capabilities(loom_host, register_plugin, monkeypatch):
    monkeypatch.delenv("LOOM_WASM_PATH", raising=False)
    register_plugin(wasm_plugin, "wasm")
    assert loom_host.capabilities() == []
    assert [c.name for c in loom_host.cli_commands() if c.name == "wasm"] == ["wasm"]
    assert {
        s.name: s.baseline for s in loom_host.bench_scenarios() if s.name.startswith("wasm")
    } == {
        "wasm.call_fresh": "baseline.python_call",
        "wasm.call_reused": "baseline.python_call",
    }


async def test_capabilities_from_the_path_load_on_first_call(
    loom_host, register_plugin, wasm_env, caplog
):
    caplog.set_level(logging.WARNING, logger="loom_wasm")
    register_plugin(wasm_plugin, "wasm")
    records = loom_host.capabilities()
    assert [(c.name, c.provider) for c in records] == [
        ("evil.run", ProviderKind.WASM),
        ("json.echo", ProviderKind.WASM),
        ("text.upper", ProviderKind.WASM),
    ]
    assert "broken.wasm.toml" in caplog.text  # a bad manifest is named and skipped
    upper = next(c for c in records if c.name == "text.upper")
    assert upper.input_schema["required"] == ["text"]
    assert upper.metadata["wasm.plugin"] == "text-tools"
    assert not list((wasm_env.parent / "cache").glob("*.cwasm"))  # nothing compiled yet
    async with ActionBroker() as broker:
        broker.register_contributions(records)
        assert broker.describe("text.upper").provider == ProviderKind.WASM
        result = await broker.invoke(ActionCall("text.upper", b'{"text": "lazy"}'))
        assert result.status == ActionStatus.OK, result.error
        assert json.loads(result.output) == {"text": "LAZY"}
        invalid = await broker.invoke(ActionCall("text.upper", b'{"text": 1}'))
        assert invalid.error.code == "INVALID_PARAMS"
        evil = await broker.invoke(ActionCall("evil.run", b"{}"))
        assert evil.error.code == "PROVIDER_UNAVAILABLE"
        assert "forbidden.wasm" in evil.error.message and "env.system" in evil.error.message
        again = await broker.invoke(ActionCall("json.echo", b'{"a": 1}'))
        assert json.loads(again.output) == {"a": 1}


async def test_a_package_contributes_its_own_wasm(
    loom_host, register_plugin, plugin_dir, monkeypatch
):
    """A Python package ships .wasm files and declares them from its own loom plugin."""
    monkeypatch.delenv("LOOM_WASM_PATH", raising=False)
    shipped = plugin_dir / "text-tools"

    class PackagedPlugin:
        @hookimpl
        def loom_capabilities(self):
            return wasm_capabilities([shipped])

    register_plugin(PackagedPlugin(), "my-package")
    records = loom_host.capabilities()
    assert [r.name for r in records] == ["json.echo", "text.upper"]
    assert records[0].metadata["wasm.manifest"] == str(shipped / "text_tools.wasm.toml")
    async with ActionBroker() as broker:
        broker.register_contributions(records)
        result = await broker.invoke(ActionCall("text.upper", b'{"text": "packaged"}'))
        assert json.loads(result.output) == {"text": "PACKAGED"}


def test_the_policy_comes_from_the_environment(
    loom_host, register_plugin, wasm_env, tmp_path, monkeypatch
):
    policy = tmp_path / "policy.toml"
    policy.write_text("max_fuel = not-a-number\n")
    monkeypatch.setenv("LOOM_WASM_POLICY", str(policy))
    register_plugin(wasm_plugin, "wasm")
    assert loom_host.capabilities() == []
    assert any("policy.toml" in f.error for f in loom_host.failures)


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_inspect_a_manifest_and_a_bare_module(wasm_env, capsys):
    manifest = wasm_env / "text-tools" / "text_tools.wasm.toml"
    assert main(["wasm", "inspect", "--json", str(manifest)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["name"] == "text-tools" and doc["abi"] == "cap-v1"
    assert [c["name"] for c in doc["capabilities"]] == ["json.echo", "text.upper"]
    assert "cap_upper: func(i32, i32) -> (i64)" in doc["exports"]
    assert doc["granted"] == {"dirs": [], "env": [], "clock": False}
    assert main(["wasm", "inspect", str(wasm_env / "forbidden" / "forbidden.wasm")]) == 0
    out = capsys.readouterr().out
    assert "kind: module" in out and "env.system: func(i32) -> (i32)" in out


def test_cli_inspect_reports_what_does_not_load(wasm_env, tmp_path, capsys):
    assert main(["wasm", "inspect", str(wasm_env / "forbidden" / "forbidden.wasm.json")]) == 1
    err = capsys.readouterr().err
    assert "forbidden.wasm" in err and "import env.system is not allowed" in err
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\0asm\x01\x00\x00\x00\xff")
    assert main(["wasm", "inspect", str(junk)]) == 1
    assert "does not compile" in capsys.readouterr().err


def test_cli_run(wasm_env, capsys):
    manifest = str(wasm_env / "text-tools" / "text_tools.wasm.toml")
    assert main(["wasm", "run", manifest, "text.upper", '{"text": "cli"}']) == 0
    assert json.loads(capsys.readouterr().out) == {"text": "CLI"}
    assert main(["wasm", "run", manifest, "text.upper", "{not json"]) == 2
    assert "not JSON" in capsys.readouterr().err
    assert main(["wasm", "run", "--json", manifest, "nope", "{}"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "NOT_FOUND"


def test_cli_run_reports_the_error_kind(tmp_path, build_guest, manifest_for, capsys):
    manifest = build_guest("attacks", tmp_path, manifest_for("a", {"spin": "cap_spin"}))
    assert main(["wasm", "run", "--no-cache", str(manifest), "spin", "{}"]) == 1
    out = capsys.readouterr().out
    assert "CAPABILITY_ERROR (fuel)" in out


def test_cli_run_with_a_granted_directory(tmp_path, build_guest, manifest_for, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("granted text")
    grants = {"dirs": [{"host": str(data), "guest": "/data"}]}
    manifest = build_guest(
        "wasi_probe", tmp_path / "p", manifest_for("p", {"read": "cap_read"}, grants=grants)
    )
    assert main(["wasm", "run", "--no-cache", str(manifest), "read", '"a.txt"']) == 0
    assert json.loads(capsys.readouterr().out)["errno"] != 0  # refused by the default policy
    args = ["wasm", "run", "--no-cache", "--allow-dir", str(tmp_path), str(manifest), "read"]
    assert main([*args, '"a.txt"']) == 0
    assert json.loads(capsys.readouterr().out) == {"errno": 0, "data": "granted text"}


def test_cli_list(wasm_env, capsys):
    assert main(["wasm", "list"]) == 1  # two plugins do not load
    out = capsys.readouterr().out
    assert "text-tools 1.0.0" in out and "json.echo 1.0, text.upper 1.0" in out
    assert "broken.wasm.toml" in out and "env.system" in out
    assert main(["wasm", "list", "--json", str(wasm_env / "text-tools")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in doc["plugins"]] == ["text-tools"] and doc["errors"] == []


def test_cli_new_and_build_a_wat_plugin(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LOOM_WASM_CACHE", str(tmp_path / "cache"))
    assert main(["wasm", "new", "hello-wasm", "--dir", str(tmp_path)]) == 0
    folder = tmp_path / "hello-wasm"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "hello_wasm.wasm.toml",
        "hello_wasm.wat",
    ]
    assert main(["wasm", "build", str(folder)]) == 0
    assert (folder / "hello_wasm.wasm").exists()
    capsys.readouterr()
    manifest = str(folder / "hello_wasm.wasm.toml")
    assert main(["wasm", "run", manifest, "hello-wasm.echo", '{"hello": "world"}']) == 0
    assert json.loads(capsys.readouterr().out) == {"hello": "world"}
    assert main(["wasm", "new", "hello-wasm", "--dir", str(tmp_path)]) == 1
    assert "exists already" in capsys.readouterr().err
    assert main(["wasm", "new", "Bad Name", "--dir", str(tmp_path)]) == 1


def test_cli_build_without_source(tmp_path, capsys):
    (tmp_path / "x.wasm.toml").write_text(
        'name = "x"\nversion = "1"\n[[capabilities]]\nname = "a"\n'
    )
    assert main(["wasm", "build", str(tmp_path)]) == 1
    assert "no source found" in capsys.readouterr().err


def test_cli_without_a_subcommand(capsys):
    assert main(["wasm"]) == 2
    assert "inspect, run, list, new, build" in capsys.readouterr().err


# -- bench and import cost -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["wasm.call_fresh", "wasm.call_reused"])
def test_bench_scenarios_run_at_a_tiny_scale(name, loom_host, register_plugin):
    register_plugin(wasm_plugin, "wasm")
    (scenario,) = [s for s in loom_host.bench_scenarios() if s.name == name]
    report = run_scenario(scenario, runs=1, scale=0.001)
    assert report.ok, report.traceback
    metrics = {f.metric: f.median for f in report.figures}
    assert set(metrics) == {
        "p50_us",
        "p99_us",
        "thread_p50_us",
        "thread_p99_us",
        "inline_p50_us",
        "inline_p99_us",
        "direct_p50_us",
        "python_p50_us",
    }
    assert all(value > 0 for value in metrics.values())
    assert metrics["p50_us"] <= metrics["p99_us"]


def test_the_plugin_module_imports_nothing_heavy():
    script = (
        "import sys, json\nimport loom_wasm.plugin, loom_wasm\n"
        "loom_wasm.plugin.loom_cli_commands(); loom_wasm.plugin.loom_bench_scenarios()\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    modules = set(json.loads(out.stdout.splitlines()[-1]))
    heavy = {"wasmtime", "pydantic", "jsonschema", "loom.actions", "loom_wasm._loader"}
    assert not {m for m in modules if m.split(".")[0] in heavy or m in heavy}


def test_the_packaged_bench_guest_is_the_example():
    packaged = Path(wasm_plugin.__file__).parent / "_guests" / "text_tools.wat"
    assert packaged.read_text() == (EXAMPLES / "text-tools" / "text_tools.wat").read_text()


async def test_the_hook_route_passes_any_json_through(tmp_path, build_guest, manifest_for):
    build_guest(
        "component_attacks",
        tmp_path / "comp",
        manifest_for("comp", {"any.echo": "echo"}, abi="component-v1"),
    )
    records = wasm_capabilities([tmp_path])
    async with ActionBroker() as broker:
        broker.register_contributions(records)
        for payload in (b'[1, "x"]', b'"text"', b"7", b'{"a": null}'):
            result = await broker.invoke(ActionCall("any.echo", payload))
            assert result.status == ActionStatus.OK, result.error
            assert json.loads(result.output) == json.loads(payload)
        junk = await broker.invoke(ActionCall("any.echo", b"{not json"))
        assert junk.error.code == "INVALID_PARAMS"
