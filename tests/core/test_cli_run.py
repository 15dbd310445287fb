"""`loom run`: the command as a user runs it, in a subprocess, with signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from loom.state import RocksDBStateStore

COUNTER = """
from loom.agents import Agent, handles


class Counter(Agent):
    def __init__(self, delay_s=0.0):
        self.delay_s = delay_s

    @handles("timer.tick")
    async def on_tick(self, ctx, event):
        import asyncio

        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        count = int(await ctx.state.get("count") or b"0") + 1
        await ctx.state.put("count", str(count).encode())
        print(f"counter: tick {count}", flush=True)
"""


def _env():
    return {k: v for k, v in os.environ.items() if not k.startswith("LOOM_")}


def _write(tmp_path, toml, name="counter_agents"):
    (tmp_path / f"{name}.py").write_text(COUNTER)
    path = tmp_path / "loom.toml"
    path.write_text(textwrap.dedent(toml))
    return path


def _loom(*args, cwd=None, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "loom.cli", "run", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=cwd,
        timeout=timeout,
    )


FINITE = """
    [app]
    name = "ticker"
    [[agents]]
    id = "counter"
    type = "counter_agents:Counter"
    topics = ["ticks"]
    [[sources]]
    type = "timer"
    topic = "ticks"
    options = { every_s = 0.01, count = 3, delay_s = 0 }
    """

ENDLESS = """
    [app]
    name = "forever"
    drain_timeout_s = 30
    stop_timeout_s = 0.5
    [[agents]]
    id = "counter"
    type = "counter_agents:Counter"
    topics = ["ticks"]
    params = { delay_s = DELAY }
    [[sources]]
    type = "timer"
    topic = "ticks"
    options = { every_s = 0.02, delay_s = 0 }
    """


async def _count(tmp_path, app):
    async with RocksDBStateStore(tmp_path / ".loom-data" / app) as store:
        return int(await store.for_agent("counter").get("count") or b"0")


async def test_it_runs_the_app_and_reports(tmp_path):
    path = _write(tmp_path, FINITE)
    result = _loom(str(path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"loom run: app 'ticker' from {path}" in out
    assert "  agent        counter (counter_agents:Counter) on ticks" in out
    assert "  source       timer (timer) -> ticks" in out
    assert [line for line in out.splitlines() if line.startswith("counter:")] == [
        "counter: tick 1",
        "counter: tick 2",
        "counter: tick 3",
    ]
    assert "loom: app 'ticker' stopped cleanly after" in out
    assert "every source exhausted and the agents idle" in out
    assert "  agent        counter: 3 handled, stopped" in out
    assert "mailboxes drained" in out
    assert "(flushed and closed)" in out
    assert await _count(tmp_path, "ticker") == 3


def test_it_reads_loom_toml_in_the_working_directory(tmp_path):
    _write(tmp_path, FINITE)
    result = _loom(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "loom run: app 'ticker' from loom.toml" in result.stdout


def test_check_validates_and_starts_nothing(tmp_path):
    path = _write(tmp_path, FINITE)
    result = _loom(str(path), "--check")
    assert result.returncode == 0, result.stderr
    assert "the configuration is valid (--check: nothing was started)" in result.stdout
    assert "counter: tick" not in result.stdout
    assert not (tmp_path / ".loom-data").exists()


def test_a_bad_file_exits_2_naming_the_file_and_the_key(tmp_path):
    path = _write(tmp_path, FINITE.replace("counter_agents:Counter", "counterr"))
    result = _loom(str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"loom run: error: {path}: agents[0].type: unknown agent type")
    assert "'counterr'" in result.stderr
    assert not (tmp_path / ".loom-data").exists()

    path.write_text('[app]\nname = "x"\n[bus]\nbackend = "carrier-pigeon"\n')
    result = _loom(str(path))
    assert result.returncode == 2
    assert "bus.backend: unknown bus backend 'carrier-pigeon'; installed: memory" in result.stderr

    result = _loom(str(tmp_path / "absent.toml"))
    assert result.returncode == 2
    assert f"{tmp_path / 'absent.toml'}: no such file" in result.stderr


def test_a_failure_to_start_exits_1(tmp_path):
    path = tmp_path / "loom.toml"
    path.write_text(
        '[app]\nname = "x"\n[[sources]]\ntype = "file"\ntopic = "t"\n'
        'options = { path = "nowhere.txt" }\n'
    )
    result = _loom(str(path))
    assert result.returncode == 1
    assert (
        "loom run: error: app 'x' could not start: source 'file' could not start" in result.stderr
    )


def test_run_for_on_the_command_line_bounds_the_run(tmp_path):
    path = _write(tmp_path, ENDLESS.replace("DELAY", "0"))
    result = _loom(str(path), "--run-for", "0.4", "--status-every", "0.1")
    assert result.returncode == 0, result.stderr
    assert "stopped cleanly after" in result.stdout and "run_for 0.4 s elapsed" in result.stdout
    assert re.search(r"loom: running \d+\.\ds \| \d+ events", result.stdout)
    assert _loom(str(path), "--run-for", "-1").returncode == 2


def test_keep_running_outlives_the_sources(tmp_path):
    path = _write(tmp_path, FINITE)
    result = _loom(str(path), "--keep-running", "--run-for", "0.5")
    assert result.returncode == 0, result.stderr
    assert "counter: tick 3" in result.stdout
    assert "run_for 0.5 s elapsed" in result.stdout
    assert "every source exhausted" not in result.stdout


def test_the_rich_console_works_on_a_pipe_too(tmp_path):
    path = _write(tmp_path, FINITE)
    result = _loom(str(path), "--console", "rich")
    assert result.returncode == 0, result.stderr
    assert "report" in result.stdout
    assert "stopped cleanly" in result.stdout
    assert "counter: tick 3" in result.stdout


def _start(path):
    process = subprocess.Popen(
        [sys.executable, "-m", "loom.cli", "run", str(path), "--console", "plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if line.startswith("counter: tick 3"):
            return process, lines
        if not line and process.poll() is not None:
            break
    process.kill()
    raise AssertionError("the app did not start: " + "".join(lines) + process.stderr.read())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_stops_it_cleanly_with_state_flushed(tmp_path, signum):
    path = _write(tmp_path, ENDLESS.replace("DELAY", "0"))
    process, lines = _start(path)
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    output = "".join(lines) + out
    assert process.returncode == 0, err
    assert "stopped cleanly after" in output and f"signal {signum.name}" in output
    assert "mailboxes drained" in output
    handled = int(re.search(r"agent        counter: (\d+) handled", output).group(1))
    assert handled >= 3
    assert await _count(tmp_path, "forever") == handled


def test_a_second_signal_stops_without_waiting_for_the_mailboxes(tmp_path):
    path = _write(tmp_path, ENDLESS.replace("DELAY", "0.2"))
    process, lines = _start(path)
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)  # the source has stopped; the slow counter has ticks queued
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    output = "".join(lines) + out
    assert process.returncode == 0, err
    assert "SIGINT again: stopping without waiting for mailboxes" in output
    assert "mailboxes NOT drained" in output
    assert "signal SIGINT" in output


def test_help_lists_the_options():
    result = subprocess.run(
        [sys.executable, "-m", "loom.cli", "run", "--help"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert result.returncode == 0
    for option in ("--check", "--run-for", "--console", "--status-every", "--log-level"):
        assert option in result.stdout


def test_the_cli_module_stays_light():
    code = "import sys, loom._cli_run, loom._cli_new; print(sorted(sys.modules))"
    modules = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    for heavy in ("'pydantic'", "'loom.app'", "'rich'", "'asyncio'", "'rocksdict'"):
        assert heavy not in modules
