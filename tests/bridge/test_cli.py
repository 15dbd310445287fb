"""``loom bridge serve`` and ``loom bridge ping``, as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

LOOM = [sys.executable, "-m", "loom.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOM_BRIDGE_")}
    env.update(extra)
    return env


@pytest.fixture
def serve():
    """``serve(*args, env=...)``: start ``loom bridge serve``; returns (process, address)."""
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [*LOOM, "bridge", "serve", "--address", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env or _env(),
        )
        processes.append(process)
        line = process.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        assert match, f"no address in {line!r}"
        return process, match.group(1)

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)  # reaps it and closes its pipes


def ping(
    address: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LOOM, "bridge", "ping", "--address", address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or _env(),
    )


def test_serve_ping_and_stop_on_sigterm(serve):
    process, address = serve()
    result = ping(address, "--count", "2", "--json")
    assert result.returncode == 0, result.stderr
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["status"] for d in documents] == ["ok", "ok"]
    assert all(d["address"] == address and d["rtt_ms"] > 0 for d in documents)
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "stopped" in out


def test_the_token_file_guards_the_bridge(serve, tmp_path: Path):
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    _, address = serve("--token-file", str(token))
    assert ping(address, "--token-file", str(token)).returncode == 0
    refused = ping(address, "--timeout", "5")
    assert refused.returncode == 1
    assert "UNAUTHENTICATED" in refused.stderr
    from_env = ping(address, env=_env(LOOM_BRIDGE_TOKEN="t0ken"))
    assert from_env.returncode == 0, from_env.stderr


def test_ping_without_a_bridge_fails_clearly():
    result = ping("127.0.0.1:1", "--timeout", "1")
    assert result.returncode == 1
    assert "127.0.0.1:1" in result.stderr and "DEADLINE_EXCEEDED" in result.stderr


def test_bad_settings_are_reported_not_raised(tmp_path: Path):
    result = subprocess.run(
        [*LOOM, "bridge", "serve", "--tls-cert", str(tmp_path / "c.pem")],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert result.returncode == 2
    assert "key is missing" in result.stderr
    taken = subprocess.run(
        [*LOOM, "bridge", "serve", "--address", "256.1.1.1:99999"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert taken.returncode == 2 and "outside 0..65535" in taken.stderr


def test_bridge_without_a_subcommand_says_what_to_do():
    result = subprocess.run(
        [*LOOM, "bridge"], capture_output=True, text=True, timeout=60, env=_env()
    )
    assert result.returncode == 2
    assert "serve or ping" in result.stderr
