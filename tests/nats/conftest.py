"""Fixtures of the loom-nats tests: a NATS server with JetStream, and throwaway prefixes.

The server is the one on 127.0.0.1:4222 (LOOM_NATS_URL overrides). When nothing answers
there, ``scripts/nats-server.sh --no-install`` is asked to start one; when that fails too,
every test here is skipped with the reason printed. Each test works under a prefix of its
own (so its own stream), deleted afterwards: tests running side by side do not meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "nats-server.sh"
URL = os.environ.get("LOOM_NATS_URL", "nats://127.0.0.1:4222")


def info_line(url: str, timeout: float = 2.0) -> str | None:
    """The INFO line of the NATS server at ``url``, or None when nothing answers."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 4222), timeout) as sock:
            sock.settimeout(timeout)
            data = b""
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    return line if line.startswith("INFO") else None


def _server_problem() -> str | None:
    """None when a JetStream server answers (after trying to start one); else why not."""
    line = info_line(URL)
    if line is None and URL == "nats://127.0.0.1:4222":
        started = subprocess.run(
            ["bash", str(SCRIPT), "--no-install"], capture_output=True, text=True, check=False
        )
        line = info_line(URL)
        if line is None:
            return (
                f"no NATS server answers at {URL} and scripts/nats-server.sh could not start "
                f"one: {started.stderr.strip() or started.stdout.strip()}"
            )
    if line is None:
        return f"no NATS server answers at {URL} (LOOM_NATS_URL)"
    if '"jetstream":true' not in line:
        return f"the NATS server at {URL} runs without JetStream (start it with -js)"
    return None


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The URL of a NATS server with JetStream; skips the test when there is none."""
    problem = _server_problem()
    if problem is not None:
        print(f"\nloom-nats tests skipped: {problem}", file=sys.stderr)
        pytest.skip(problem)
    return URL


def new_prefix() -> str:
    """A subject prefix no other test uses (its stream is named after it)."""
    return "lt" + uuid.uuid4().hex[:12]


async def delete_streams(url: str, names: list[str]) -> None:
    """Delete these streams (and their consumers), ignoring those already gone."""
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        for name in names:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)
    finally:
        await nc.close()


@pytest.fixture
def prefix(nats_url: str) -> Iterator[str]:
    """A fresh prefix whose stream is deleted after the test."""
    value = new_prefix()
    yield value
    asyncio.run(delete_streams(nats_url, [value.upper()]))


@pytest.fixture
async def bus(nats_url: str, prefix: str) -> AsyncIterator[object]:
    """A started NatsBus under a fresh prefix, shut down after the test."""
    from loom_nats import NatsBus, StreamLimits

    bus = NatsBus(nats_url, prefix=prefix, limits=StreamLimits(max_age=600, duplicate_window=60))
    await bus.start()
    try:
        yield bus
    finally:
        await bus.shutdown()


def nats_server_binary() -> str | None:
    """The nats-server binary scripts/nats-server.sh would use, if any."""
    import shutil

    found = os.environ.get("LOOM_NATS_SERVER") or shutil.which("nats-server")
    for candidate in (found, "/usr/sbin/nats-server", "/usr/local/bin/nats-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def nats_server_factory(tmp_path: Path) -> Iterator[object]:
    """``start(*args, jetstream=True) -> url``: a private nats-server on a free port with
    extra arguments (credentials, ...), stopped after the test."""
    import time

    binary = nats_server_binary()
    if binary is None:
        pytest.skip("no nats-server binary (scripts/nats-server.sh installs Debian's)")
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, jetstream: bool = True) -> str:
        port = free_port()
        command = [binary, "-a", "127.0.0.1", "-p", str(port), *args]
        if jetstream:
            command += ["-js", "-sd", str(tmp_path / f"store-{port}")]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        url = f"nats://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while info_line(url, 0.5) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server {' '.join(args)} did not start on {port}")
            time.sleep(0.05)
        return url

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
