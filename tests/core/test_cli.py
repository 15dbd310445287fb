"""The `loom` CLI: --version, `loom plugins`, and subcommands contributed by plugins."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import loom
import loom.host
from loom import hookimpl
from loom.cli import main
from loom.contributions import Capability, CliCommand


class Greeter:
    @hookimpl
    def loom_capabilities(self):
        return [Capability(name="greet", handler=lambda: "hi")]

    @hookimpl
    def loom_cli_commands(self):
        def configure(parser):
            parser.add_argument("name")

        def run(args, host):
            print(f"hello {args.name}")
            return 3

        return [CliCommand(name="greet", description="say hello", run=run, configure=configure)]


class AsyncCommand:
    @hookimpl
    def loom_cli_commands(self):
        async def run(args, host):
            return 0

        return [CliCommand(name="later", run=run)]


class FailingCommand:
    @hookimpl
    def loom_cli_commands(self):
        def run(args, host):
            raise RuntimeError("disk on fire")

        return [CliCommand(name="fail", run=run)]


@pytest.fixture
def cli_host(monkeypatch):
    """Make the CLI build a host without entry points, with the given plugins."""

    def install(*plugins):
        real = loom.host.create_host
        monkeypatch.setattr(
            loom.host,
            "create_host",
            lambda **kw: real(load_entrypoints=False, plugins=plugins),
        )

    return install


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"loom {loom.__version__}"


def test_no_command_prints_help(cli_host, capsys):
    cli_host()
    assert main([]) == 2
    assert "plugins" in capsys.readouterr().out


def test_plugins_json_lists_plugin_hooks_and_contributions(cli_host, capsys):
    cli_host(Greeter())
    assert main(["plugins", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["loom_version"] == loom.__version__
    [plugin] = document["plugins"]
    assert plugin["hooks"] == ["loom_capabilities", "loom_cli_commands"]
    assert plugin["contributions"] == {"capabilities": ["greet"], "cli_commands": ["greet"]}
    assert document["failures"] == []


def test_plugins_all_includes_builtins(cli_host, capsys):
    cli_host()
    main(["plugins", "--json", "--all"])
    [core] = json.loads(capsys.readouterr().out)["plugins"]
    assert core["name"] == "core" and core["builtin"]
    assert "plugins" in core["contributions"]["cli_commands"]


def test_plugins_human_output(cli_host, capsys):
    cli_host(Greeter())
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "capabilities: greet" in out and "cli_commands: greet" in out


def test_plugins_hook_filter(cli_host, capsys):
    cli_host(Greeter(), AsyncCommand())
    main(["plugins", "--json", "--hook", "loom_capabilities"])
    names = [p["hooks"] for p in json.loads(capsys.readouterr().out)["plugins"]]
    assert names == [["loom_capabilities", "loom_cli_commands"]]


def test_plugin_subcommand_runs_with_its_arguments(cli_host, capsys):
    cli_host(Greeter())
    assert main(["greet", "Ada"]) == 3
    assert capsys.readouterr().out == "hello Ada\n"


def test_async_subcommand_is_awaited(cli_host):
    cli_host(AsyncCommand())
    assert main(["later"]) == 0


def test_failing_subcommand_reports_and_exits_1(cli_host, capsys):
    cli_host(FailingCommand())
    assert main(["fail"]) == 1
    assert "command 'fail' failed: RuntimeError: disk on fire" in capsys.readouterr().err


def test_load_failures_are_warned_about_by_other_commands(monkeypatch, capsys):
    from importlib.metadata import EntryPoint

    broken = EntryPoint(name="broken", value="no_such_module_abc", group="loom")
    monkeypatch.setattr(loom.host, "entry_points", lambda group: [broken])
    assert main(["plugins", "--json"]) == 0
    failures = json.loads(capsys.readouterr().out)["failures"]
    assert [f["plugin"] for f in failures] == ["broken"]
    assert "ModuleNotFoundError" in failures[0]["error"]


def test_loom_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "loom.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"loom {loom.__version__}"
