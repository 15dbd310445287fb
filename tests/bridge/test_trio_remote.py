"""``examples/trio`` with the researchers as remote agents (issue 7 item 7), run as a user
runs it: ``main.py --remote-researchers`` in a subprocess, which serves the bridge on
127.0.0.1 (an ephemeral port) and starts ``remote_researchers.py`` as a second process; real
gRPC between them, nothing faked."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRIO = ROOT / "examples" / "trio"
MAIN = TRIO / "main.py"
RESEARCHERS = TRIO / "remote_researchers.py"
CORPUS = TRIO / "corpus"
QUESTION = "How do agents collaborate with a fanout?"
TIMEOUT = 120  # a guard against a hang, not a speed check


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOM_BRIDGE_")}
    env.update(extra)
    return env


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env or _env(),
    )


def _read_until(process: subprocess.Popen[str], pattern: str) -> tuple[re.Match[str], str]:
    """Read ``process``'s stdout line by line until a line matches ``pattern``."""
    assert process.stdout is not None
    seen = ""
    for line in process.stdout:
        seen += line
        match = re.search(pattern, line)
        if match:
            return match, seen
    raise AssertionError(f"no line matched {pattern!r}; stdout was:\n{seen}")


def _finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def _draft(out: str) -> str:
    return out.split("writer: draft", 1)[1].split("SUMMARY: OK", 1)[0].strip()


def _corpus_text() -> str:
    return " ".join(" ".join(p.read_text().split()) for p in sorted(CORPUS.glob("*/*.md")))


def test_the_researchers_answer_from_a_second_process_through_the_bridge():
    trio = _start(str(MAIN), "--remote-researchers", QUESTION)
    out, err = _finish(trio)
    assert trio.returncode == 0, out + err
    assert err == ""
    [address] = re.findall(r"^trio: bridge listening on (127\.0\.0\.1:\d+)$", out, re.M)
    assert not address.endswith(":0") and not address.endswith(":50051")  # an ephemeral port
    [pid] = re.findall(r"^trio: started the remote researchers \(pid (\d+)\)$", out, re.M)
    assert int(pid) != trio.pid
    remote = f"[pid {pid}] "
    assert (
        f"{remote}researchers: connected to {address} as researcher-docs, researcher-notes "
        f"(pid {pid})" in out
    )
    assert (
        "trio: researchers connected through the bridge: researcher-docs from ipv4:127.0.0.1:"
        in out
    )
    # The Researcher code ran in the second process: its lines come relayed from there...
    [docs] = [line for line in out.splitlines() if "researcher[docs]:" in line]
    assert docs.startswith(f"{remote}researcher[docs]: 2 passage(s) from"), docs
    assert "collaboration.md" in docs
    assert f"{remote}researcher[notes]: " in out
    assert "planner: 2 of 2 researchers replied (all," in out
    # ...and the answer says who researched it, from the replies' senders and their pid.
    assert (
        f"user: answer from agent.planner citing 3 source(s), researched by "
        f"agent.researcher-docs in pid {pid} (remote), agent.researcher-notes in pid {pid} "
        "(remote)" in out
    )
    # The two searches crossed the wire both ways (ForwardAction from the researchers, an
    # action_call back to the search.local they serve) and went through this host's broker.
    assert "trio: 3 capability calls ok, 0 failed" in out
    draft = _draft(out)
    question, rest = draft.split("\n\n", 1)
    assert question == f"Q: {QUESTION}"
    body, sources = rest.split("\n\nSources: ", 1)
    corpus = _corpus_text()
    sentences = [s for s in body.replace("; ", ". ").split(". ") if s]
    assert len(sentences) >= 3
    assert all(s.rstrip(".") in corpus for s in sentences), sentences
    assert "docs/collaboration.md" in sources
    # The second process was stopped cleanly at the end.
    tail = out.rstrip().splitlines()[-2:]
    assert tail == [
        f"{remote}researchers: stopped",
        f"trio: the remote researchers (pid {pid}) exited with code 0",
    ]


def test_the_same_researcher_code_gives_the_same_answer_embedded_and_remote():
    embedded = subprocess.run(
        [sys.executable, str(MAIN), QUESTION],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=ROOT,
        env=_env(),
    )
    remote = _start(str(MAIN), "--remote-researchers", QUESTION)
    out, err = _finish(remote)
    assert embedded.returncode == 0 and remote.returncode == 0, embedded.stderr + err
    assert "(this process)" in embedded.stdout and "(remote)" not in embedded.stdout
    assert _draft(out) == _draft(embedded.stdout)


def test_a_killed_remote_process_fails_the_run_with_a_clear_error():
    trio = _start(str(MAIN), "--remote-researchers", QUESTION)
    try:
        match, _ = _read_until(trio, r"^trio: started the remote researchers \(pid (\d+)\)$")
        os.kill(int(match.group(1)), signal.SIGKILL)
    finally:
        out, err = _finish(trio)
    pid = match.group(1)
    assert trio.returncode == 3, out + err
    # Killed at once it has not connected yet; the message names the process and the signal.
    assert re.search(
        rf"^trio: the remote researchers \(pid {pid}\) were killed by SIGKILL", err, re.M
    )
    assert "Traceback" not in err


def test_no_researchers_connecting_is_a_timeout_not_a_hang():
    trio = _start(str(MAIN), "--remote-researchers", "--no-launch", "--connect-timeout", "1")
    out, err = _finish(trio)
    assert trio.returncode == 3, out + err
    [address] = re.findall(r"^trio: bridge listening on (127\.0\.0\.1:\d+)$", out, re.M)
    assert f"remote_researchers.py --address {address}" in out
    assert err.strip() == (
        f"trio: the remote researchers did not connect to {address} within 1 s "
        "(missing: researcher-docs, researcher-notes)"
    )
    assert "planner: question" not in out  # nobody was asked


def test_researchers_started_by_hand_with_the_token():
    env = _env(LOOM_BRIDGE_TOKEN="trio-test-token")
    trio = _start(str(MAIN), "--remote-researchers", "--no-launch", QUESTION, env=env)
    researchers = None
    try:
        match, _ = _read_until(
            trio, r"--address (127\.0\.0\.1:\d+) \(with the same LOOM_BRIDGE_TOKEN\)$"
        )
        researchers = _start(str(RESEARCHERS), "--address", match.group(1), env=env)
        out, err = _finish(trio)
        assert trio.returncode == 0, out + err
        assert "(remote), agent.researcher-notes in pid " in out
        assert f"in pid {researchers.pid} (remote)" in out
        # A researcher started by hand is not this script's to stop: it serves until told.
        assert researchers.poll() is None
        researchers.send_signal(signal.SIGINT)
        r_out, r_err = _finish(researchers)
        assert researchers.returncode == 0, r_out + r_err
        assert "researcher[docs]: 2 passage(s) from" in r_out
        assert r_out.rstrip().endswith("researchers: stopped")
    finally:
        for process in (trio, researchers):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate(timeout=10)


def test_a_researcher_with_the_wrong_token_is_refused_and_says_so():
    trio = _start(
        str(MAIN), "--remote-researchers", "--no-launch", "--connect-timeout", "30",
        env=_env(LOOM_BRIDGE_TOKEN="the-right-one"),
    )  # fmt: skip
    try:
        match, _ = _read_until(trio, r"--address (127\.0\.0\.1:\d+)")
        researchers = subprocess.run(
            [sys.executable, str(RESEARCHERS), "--address", match.group(1)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=ROOT,
            env=_env(LOOM_BRIDGE_TOKEN="a-wrong-one"),
        )
        assert researchers.returncode == 1
        assert (
            f"researchers: cannot take part through {match.group(1)}: agent 'researcher-docs': "
            "UNAUTHENTICATED: wrong bearer token" in researchers.stderr
        )
        assert "researchers: connected" not in researchers.stdout
    finally:
        trio.send_signal(signal.SIGINT)
        out, err = _finish(trio)
    assert trio.returncode == 130, out + err
    assert err == "trio: interrupted\n"


def test_the_remote_options_need_the_remote_mode():
    result = subprocess.run(
        [sys.executable, str(MAIN), "--no-launch"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "--no-launch and --bridge-address go with --remote-researchers" in result.stderr
