"""The bridge's ``loom bench`` scenarios run, at a tiny scale, through the real CLI and host."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loom.bus import MemoryBus


def test_bridge_scenarios_run_beside_the_raw_grpc_baseline():
    result = subprocess.run(
        [
            sys.executable, "-m", "loom.cli", "bench", "--json", "--scale", "0.01", "--runs", "1",
            "--scenario", "baseline.grpc_raw,bridge.",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    seen = {(f["scenario"], f["metric"], f["unit"]) for f in figures}
    assert seen == {
        ("baseline.grpc_raw", "stream_throughput", "messages/s"),
        ("baseline.grpc_raw", "unary_p50_us", "us"),
        ("bridge.push", "throughput", "events/s"),
        ("bridge.push", "raw_stream_throughput", "messages/s"),
        ("bridge.push_batched", "throughput", "events/s"),
        ("bridge.push_batched", "raw_stream_throughput", "messages/s"),
        ("bridge.publish", "throughput", "events/s"),
        ("bridge.publish", "raw_stream_throughput", "messages/s"),
        ("bridge.publish_batched", "throughput", "events/s"),
        ("bridge.publish_batched", "raw_stream_throughput", "messages/s"),
        ("bridge.forward_action", "p50_us", "us"),
        ("bridge.forward_action", "p99_us", "us"),
        ("bridge.forward_action", "raw_unary_p50_us", "us"),
    }
    for figure in figures:
        assert figure["value"] > 0
        if figure["scenario"].startswith("bridge."):
            assert figure["baseline"] == "baseline.grpc_raw"
    # The baseline ran first, in the same process run.
    assert figures[0]["scenario"] == "baseline.grpc_raw"


def test_importing_the_plugin_and_the_package_stays_light():
    code = (
        "import sys, json, loom_bridge, loom_bridge.plugin\nprint(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = json.loads(out.stdout)
    heavy = [
        m
        for m in modules
        if m.split(".")[0] in {"grpc", "google", "pydantic"} or m.startswith("loom.v1")
    ]
    assert heavy == []


# -- the batched scenarios' remote agent runs in a child process ---------------------------


def _bench_children() -> list[int]:
    """Live (not yet reaped) bench children of this process."""
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # it ended meanwhile
        # The ppid is the 2nd field after "(comm)", which may itself hold spaces.
        if stat.rsplit(")", 1)[1].split()[1] == me and b"loom_bridge._bench_child" in cmdline:
            found.append(int(entry.name))
    return found


async def _wait_for_child() -> list[int]:
    async with asyncio.timeout(60):
        while not (children := _bench_children()):
            await asyncio.sleep(0.01)
    return children


@pytest.mark.parametrize("scenario", ["push_batched", "publish_batched"])
async def test_a_cancelled_batched_run_reaps_its_child(scenario: str) -> None:
    from loom_bridge import _bench

    assert _bench_children() == []
    run = asyncio.create_task(getattr(_bench, scenario)(5.0))  # a million events: long
    children = await _wait_for_child()
    assert len(children) == 1
    await asyncio.sleep(0.3)  # well into the timed slices
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert _bench_children() == []
    assert not Path(f"/proc/{children[0]}").exists()


async def test_the_batched_scenarios_measure_every_event_through_the_child() -> None:
    from loom_bridge import _bench

    for scenario in (_bench.push_batched, _bench.publish_batched):
        # 12,000 events: a full slice of 10,000 and a short one, each waited for to the last.
        figures = {f.metric: f for f in await scenario(0.06)}
        assert figures["throughput"].unit == "events/s"
        assert figures["throughput"].value > 0
        assert figures["raw_stream_throughput"].value > 0
    assert _bench_children() == []


async def test_a_bad_command_fails_the_run_with_the_childs_words_and_reaps_it() -> None:
    from loom_bridge._bench import _bridge, _Child

    async with MemoryBus() as bus:
        server = await _bridge(bus)
        try:
            async with _Child("push", server.address, 256) as child:
                await child.send("publish 0 10")  # a publish child's command
                with pytest.raises(RuntimeError, match="bad command for push"):
                    await child.expect("got 10", 30)
        finally:
            await server.stop()
    assert _bench_children() == []


async def test_a_child_that_cannot_connect_is_reported_not_waited_for_forever() -> None:
    from loom_bridge._bench import _Child

    with pytest.raises(RuntimeError, match="exited with status 1 while the bench waited"):
        async with _Child("push", "not an address", 256):
            pass
    assert _bench_children() == []


def test_the_child_ends_when_its_stdin_closes_and_refuses_bad_arguments() -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "loom_bridge._bench_child", "pull", "127.0.0.1:1", "256"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "usage: python -m loom_bridge._bench_child push|publish" in bad.stderr

    async def scenario() -> int:
        async with MemoryBus() as bus:
            from loom_bridge._bench import _bridge

            server = await _bridge(bus)
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "loom_bridge._bench_child", "push", server.address,
                    "256", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                try:
                    assert proc.stdout is not None
                    assert proc.stdin is not None
                    assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"ready\n"
                    proc.stdin.close()  # as when the parent dies
                    return await asyncio.wait_for(proc.wait(), 10)
                finally:
                    if proc.returncode is None:
                        proc.kill()
                        await proc.wait()
            finally:
                await server.stop()

    assert asyncio.run(scenario()) == 0
