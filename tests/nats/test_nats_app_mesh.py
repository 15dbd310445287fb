"""``[nats.mesh]`` in loom.toml: ``loom run`` starts the capability mesh with the app, so a
capability of one app is invoked by an agent of another app in another process; and a bad
table is refused naming its key."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest

from loom.app import App, AppConfigError, parse_config
from loom.host import create_host
from loom_nats._app import EXTENSION, check_config, default_host_id, mesh_settings

LOOM = Path(sys.executable).with_name("loom")

# -- the apps of the process test -------------------------------------------------------

CAPS_A = '''
import os

from loom.actions import capability


@capability("text.shout")
async def shout(text: str) -> dict:
    """Upper-case the text, saying which process did it."""
    return {"text": text.upper() + "!", "pid": os.getpid()}
'''

GREETER_A = """
async def greet(ctx, event):
    await ctx.reply(event, "collab.reply", {"hello": event.payload.decode()})
"""

# B's agent gets a tick every 0.1 s; once A's capability and agent are known on B, it
# invokes the capability through B's broker, writes what it got, and ends B's run.
CALLER_B = """
import json
import os

from loom import ActionStatus
from loom.agents import Agent
from loom.app import current_app


class Caller(Agent):
    def __init__(self, out: str):
        self.out = out
        self.done = False

    async def on_event(self, ctx, event):
        app = current_app()
        greeter = app.runtime.directory.by_id("greeter-a")
        if self.done or app.broker.provider("text.shout") is None or greeter is None:
            return
        result = await ctx.invoke("text.shout", {"text": "from b"}, timeout_s=5)
        if result.status != ActionStatus.OK:
            raise RuntimeError(f"text.shout failed: {result.error}")
        self.done = True
        answer = json.loads(result.output)
        with open(self.out, "w") as f:
            json.dump({"answer": answer, "greeter_host": greeter.metadata.get("host"),
                       "caller_pid": os.getpid()}, f)
        app.request_stop()
"""


def _toml(prefix: str, url: str, body: str) -> str:
    return textwrap.dedent(
        f"""
        [bus]
        backend = "nats"
        [bus.options]
        servers = "{url}"
        prefix = "{prefix}"
        limits = {{ max_age = 600, duplicate_window = 60 }}
        [state]
        backend = "memory"
        """
    ) + textwrap.dedent(body)


def _write_app(directory: Path, toml: str, modules: dict[str, str]) -> Path:
    directory.mkdir()
    for name, text in modules.items():
        (directory / f"{name}.py").write_text(text)
    path = directory / "loom.toml"
    path.write_text(toml)
    return path


async def _loom_run(config: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(LOOM),
        "run",
        str(config),
        "--console",
        "plain",
        "--log-level",
        "info",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _wait_for_line(proc: asyncio.subprocess.Process, text: str, seen: list[str]) -> None:
    assert proc.stdout is not None
    while True:
        raw = await proc.stdout.readline()
        if not raw:
            raise AssertionError(f"the process ended before saying {text!r}:\n" + "".join(seen))
        seen.append(raw.decode(errors="replace"))
        if text in seen[-1]:
            return


async def _finish(proc: asyncio.subprocess.Process, seen: list[str], timeout: float) -> str:
    assert proc.stdout is not None
    rest = await asyncio.wait_for(proc.stdout.read(), timeout)
    await asyncio.wait_for(proc.wait(), timeout)
    return "".join(seen) + rest.decode(errors="replace")


@pytest.mark.nats
async def test_an_agent_of_one_loom_run_invokes_a_capability_of_another(
    tmp_path: Path, nats_url: str, prefix: str
) -> None:
    config_a = _write_app(
        tmp_path / "a",
        _toml(
            prefix,
            nats_url,
            """
            [app]
            name = "shouter"
            [[capabilities]]
            ref = "caps_a:shout"
            [[agents]]
            id = "greeter-a"
            type = "greeter_a:greet"
            topics = ["greet.a"]
            [nats.mesh]
            host_id = "host-a"
            announce_interval_s = 0.3
            expire_after_s = 3
            """,
        ),
        {"caps_a": CAPS_A, "greeter_a": GREETER_A},
    )
    out = tmp_path / "b-answer.json"
    config_b = _write_app(
        tmp_path / "b",
        _toml(
            prefix,
            nats_url,
            f"""
            [app]
            name = "caller"
            [[agents]]
            id = "caller-b"
            type = "caller_b:Caller"
            topics = ["tick"]
            params = {{ out = "{out}" }}
            [[sources]]
            type = "timer"
            topic = "tick"
            options = {{ every_s = 0.1 }}
            [nats.mesh]
            host_id = "host-b"
            announce_interval_s = 0.3
            expire_after_s = 3
            """,
        ),
        {"caller_b": CALLER_B},
    )
    a = await _loom_run(config_a, "--run-for", "120")
    b: asyncio.subprocess.Process | None = None
    try:
        seen_a: list[str] = []
        await asyncio.wait_for(_wait_for_line(a, "mesh host-a: announcing", seen_a), 60)
        b = await _loom_run(config_b, "--run-for", "60")
        output_b = await _finish(b, [], 90)
        assert b.returncode == 0, output_b
        got = json.loads(out.read_text())
        # The answer was computed in A's process, and A's agent is in B's directory.
        assert got["answer"] == {"text": "FROM B!", "pid": a.pid}
        assert got["caller_pid"] == b.pid != a.pid
        assert got["greeter_host"] == "host-a"
        # A sees B come and go (B said goodbye when its run ended), then stops cleanly.
        await asyncio.wait_for(_wait_for_line(a, "host 'host-b' left", seen_a), 30)
        a.send_signal(signal.SIGTERM)
        output_a = await _finish(a, seen_a, 60)
        assert a.returncode == 0, output_a
        assert "host 'host-b' joined" in output_a
    finally:
        for proc in (a, b):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()


# -- in one process: two apps, their meshes started and stopped with them -------------------


def _app(tmp_path: Path, name: str, text: str) -> App:
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    config = parse_config(tomllib.loads(text), source=f"{name}/loom.toml")
    return App(config, host=create_host(), base_dir=directory)


@pytest.mark.nats
async def test_the_mesh_starts_and_stops_with_the_app(
    tmp_path: Path, nats_url: str, prefix: str
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "caps_in_a.py").write_text(CAPS_A)
    mesh = '[nats.mesh]\nhost_id = "{host}"\nannounce_interval_s = 0.2\nexpire_after_s = 2\n'
    app_a = _app(
        tmp_path,
        "a",
        _toml(prefix, nats_url, '[app]\nname = "a"\n[[capabilities]]\nref = "caps_in_a"\n')
        + mesh.format(host="app-a"),
    )
    app_b = _app(
        tmp_path, "b", _toml(prefix, nats_url, '[app]\nname = "b"\n') + mesh.format(host="app-b")
    )
    async with app_a, app_b:
        assert app_a.failures == [] and app_b.failures == []
        assert app_b.extensions[EXTENSION].host_id == "app-b"
        for _ in range(200):
            if app_b.broker.provider("text.shout") is not None:
                break
            await asyncio.sleep(0.05)
        assert app_b.extensions[EXTENSION].peers == ["app-a"]
        from loom import ActionCall, ActionStatus

        result = await app_b.broker.invoke(ActionCall("text.shout", b'{"text": "hey"}'))
        assert result.status == ActionStatus.OK, result.error
        assert json.loads(result.output) == {"text": "HEY!", "pid": os.getpid()}
        await app_a.stop()
        assert EXTENSION not in app_a.extensions
        # A said goodbye: B drops its capability at once, not after expire_after_s.
        for _ in range(100):
            if app_b.broker.provider("text.shout") is None:
                break
            await asyncio.sleep(0.02)
        assert app_b.broker.provider("text.shout") is None
        assert app_b.extensions[EXTENSION].peers == []
    assert EXTENSION not in app_b.extensions


# -- a bad table ------------------------------------------------------------------------------


def _config(text: str) -> Any:
    return parse_config(tomllib.loads('[app]\nname = "m"\n' + textwrap.dedent(text)))


NATS_BUS = '[bus]\nbackend = "nats"\n'


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ("announce_interval_s = 0", "nats.mesh.announce_interval_s", "greater than 0"),
        ('announce_interval_s = "5"', "nats.mesh.announce_interval_s", "valid number"),
        ("announce_interval_s = 5\nexpire_after_s = 5", "nats.mesh.expire_after_s", "longer"),
        ("expire_after_s = 2", "nats.mesh.expire_after_s", "longer than announce_interval_s"),
        ('host_id = "host.a"', "nats.mesh.host_id", "letters, digits"),
        ('host_id = ""', "nats.mesh.host_id", "letters, digits"),
        ("max_peers = true", "nats.mesh.max_peers", "valid integer"),
        ("max_concurrent_calls = -1", "nats.mesh.max_concurrent_calls", "greater than 0"),
        ("call_timeout_s = 0", "nats.mesh.call_timeout_s", "greater than 0"),
        ("announce_every = 3", "nats.mesh.announce_every", "unknown key"),
        ("enabled = 1", "nats.mesh.enabled", "valid boolean"),
    ],
)
def test_bad_values_name_their_key(table: str, key: str, words: str) -> None:
    config = _config(NATS_BUS + "[nats.mesh]\n" + table + "\n")
    issues = check_config(config)
    assert [issue.key for issue in issues] == [key]
    assert words in issues[0].message
    with pytest.raises(AppConfigError) as info:
        mesh_settings(config, source="hosts/loom.toml")
    assert info.value.keys == [key]
    assert str(info.value).startswith(f"hosts/loom.toml: {key}: ")


def test_the_mesh_on_a_bus_that_is_not_nats_is_refused() -> None:
    config = _config('[state]\nbackend = "memory"\n[nats.mesh]\nhost_id = "h"\n')
    [issue] = check_config(config)
    assert issue.key == "nats.mesh"
    assert "bus.backend is 'memory'" in issue.message
    # Switched off, the table is fine on any bus.
    off = _config('[nats.mesh]\nenabled = false\nhost_id = "h"\n')
    assert check_config(off) == []
    assert mesh_settings(off) is None


def test_the_plugin_checks_its_table() -> None:
    from loom_nats import plugin

    bad = _config(NATS_BUS + "[nats.mesh]\nmax_peers = 0\n")
    assert [i.key for i in plugin.loom_app_check(bad) or []] == ["nats.mesh.max_peers"]
    assert plugin.loom_app_check(_config(NATS_BUS + "[nats.mesh]\n")) == []
    assert plugin.loom_app_check(_config(NATS_BUS)) is None


def test_other_keys_of_the_nats_table_and_a_mesh_that_is_no_table() -> None:
    issues = check_config(_config(NATS_BUS + "[nats]\nservers = 'x'\nmesh = 3\n"))
    assert [i.key for i in issues] == ["nats.servers", "nats.mesh"]
    assert "[bus.options]" in issues[0].message
    assert "expected a table" in issues[1].message


def test_defaults_fill_in_the_host_id_and_the_expiry() -> None:
    named = _config(NATS_BUS + "[bus.options]\nname = 'edge.eu 1'\n[nats.mesh]\n")
    settings = mesh_settings(named)
    assert settings is not None
    assert settings.host_id == "edge-eu-1"
    assert (settings.announce_interval_s, settings.expire_after_s) == (5.0, 15.0)
    unnamed = _config(NATS_BUS + "[nats.mesh]\nannounce_interval_s = 2\n")
    settings = mesh_settings(unnamed)
    assert settings is not None
    expected = default_host_id(unnamed)
    assert settings.host_id == expected
    hostname = "".join(c if c.isalnum() or c in "_-" else "-" for c in socket.gethostname())
    assert expected == f"{hostname}-m".strip("-")[:64]
    assert settings.expire_after_s == 6.0
    assert mesh_settings(_config(NATS_BUS)) is None


async def test_a_bad_table_is_refused_before_anything_starts(tmp_path: Path) -> None:
    app = _app(
        tmp_path,
        "bad",
        '[app]\nname = "bad"\n[state]\nbackend = "memory"\n[nats.mesh]\nannounce_interval_s = -1\n',
    )
    with pytest.raises(AppConfigError) as info:
        await asyncio.wait_for(app.run(), 30)
    assert info.value.keys == ["nats.mesh.announce_interval_s"]
    assert app.phase == "created"
    assert EXTENSION not in app.extensions


def test_loom_run_check_names_the_bad_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from loom.cli import main

    path = tmp_path / "loom.toml"
    path.write_text(
        '[app]\nname = "bad"\n[bus]\nbackend = "nats"\n'
        "[nats.mesh]\nannounce_interval_s = 5\nexpire_after_s = 2\n"
    )
    assert main(["run", str(path), "--check"]) == 2
    err = capsys.readouterr().err
    assert "nats.mesh.expire_after_s" in err and "announce_interval_s" in err
