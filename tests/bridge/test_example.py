"""``examples/remote_agent``: the host and the remote agent as two processes, end to end."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "remote_agent"


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_host_and_remote_agent_in_two_processes():
    host = _start(str(EXAMPLE / "host.py"), "--address", "127.0.0.1:0", "--rounds", "2")
    remote = None
    try:
        match = re.search(r"listening on (\S+)", host.stdout.readline())
        assert match, "the host printed no address"
        remote = _start(str(EXAMPLE / "remote.py"), "--address", match.group(1))
        out, _ = host.communicate(timeout=60)
        assert host.returncode == 0, out
        assert out.count("client: summary {'first_line': 'Round") == 2, out
        assert out.count("client: text.shout -> 'DONE!DONE!'") == 2, out
        remote.send_signal(signal.SIGINT)
        remote_out, _ = remote.communicate(timeout=30)
        assert remote.returncode == 0, remote_out
        assert "connected to the bridge" in remote_out and "remote: stopped" in remote_out
    finally:
        for process in (host, remote):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate(timeout=10)


def test_the_embedded_run_gives_the_same_answers():
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "host.py"), "--embedded", "--address", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("client: text.shout -> 'DONE!DONE!'") == 2
