"""A third-party plugin, pip-installed into a fresh virtual environment, as a user would.

Builds one venv for the module, installs loom-core and examples/plugin-hello from the working
tree (real wheels, not editable), and drives the installed `loom` command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, env=None, check=True):
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    path = tmp_path_factory.mktemp("venv") / "env"
    _run(sys.executable, "-m", "venv", str(path))
    python = path / "bin" / "python"
    _run(
        str(python),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        str(ROOT / "loom-core"),
        str(ROOT / "examples" / "plugin-hello"),
    )
    return path


def _loom(venv, *args, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOM_")}
    return _run(str(venv / "bin" / "loom"), *args, env=env, check=check)


def test_installed_plugin_is_listed_with_its_contributions(venv):
    document = json.loads(_loom(venv, "plugins", "--json").stdout)
    [hello] = [p for p in document["plugins"] if p["name"] == "hello"]
    assert hello["distribution"] == "loom-plugin-hello"
    assert hello["version"] == "0.1.0"
    assert hello["contributions"] == {"capabilities": ["hello.greet"], "cli_commands": ["hello"]}
    assert document["failures"] == []


def test_installed_plugin_subcommand_runs(venv):
    assert _loom(venv, "hello", "Ada").stdout == "Hello, Ada!\n"


def test_core_lists_its_own_distribution(venv):
    document = json.loads(_loom(venv, "plugins", "--json", "--all").stdout)
    [core] = [p for p in document["plugins"] if p["name"] == "core"]
    assert (core["distribution"], core["builtin"]) == ("loom-core", True)


def test_broken_plugin_is_reported_and_everything_else_works(venv, tmp_path):
    package = tmp_path / "broken-plugin"
    (package / "src" / "loom_broken").mkdir(parents=True)
    (package / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "loom-broken-plugin"
            version = "9.9.9"

            [project.entry-points.loom]
            broken = "loom_broken.plugin"

            [tool.hatch.build.targets.wheel]
            packages = ["src/loom_broken"]
            """
        )
    )
    (package / "src" / "loom_broken" / "__init__.py").write_text("")
    (package / "src" / "loom_broken" / "plugin.py").write_text(
        "raise ImportError('needs libfoo, which is not installed')\n"
    )
    python = venv / "bin" / "python"
    _run(
        str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(package)
    )
    try:
        document = json.loads(_loom(venv, "plugins", "--json").stdout)
        [failure] = document["failures"]
        assert failure["plugin"] == "broken"
        assert (failure["distribution"], failure["version"]) == ("loom-broken-plugin", "9.9.9")
        assert "ImportError: needs libfoo" in failure["error"]
        assert [p["name"] for p in document["plugins"]] == ["hello"]

        human = _loom(venv, "plugins").stdout
        assert "plugin 'broken' (loom-broken-plugin 9.9.9) failed in load" in human

        greeting = _loom(venv, "hello", "Ada")
        assert greeting.stdout == "Hello, Ada!\n"
        assert "broken" in greeting.stderr  # other commands warn about the failure

        strict = dict(os.environ, LOOM_STRICT_PLUGINS="1")
        result = _run(str(venv / "bin" / "loom"), "hello", env=strict, check=False)
        assert result.returncode != 0 and "needs libfoo" in result.stderr
    finally:
        _run(str(python), "-m", "pip", "uninstall", "--quiet", "-y", "loom-broken-plugin")
