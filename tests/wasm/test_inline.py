"""Inline calls: on the loop's thread when declared short or seen to be tiny, still bounded."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from loom.actions import CapabilityError
from loom_wasm import ErrorKind, WasmPolicy
from loom_wasm._inline import (
    DEMOTE_AFTER,
    FORGIVE_AFTER,
    PROMOTE_AFTER,
    TINY_FRESH_S,
    TINY_S,
    CostWatch,
)

CAPS = {"work": "cap_work", "count": "cap_count", "trap": "cap_trap", "spin": "cap_spin"}
#: Loop turns that take milliseconds (about 15 ms here): past the 2 ms leash, within 2 s.
SLOW = b"20000000"


def _threads(plugin):
    """Record the thread of every runner call."""
    seen: list[int] = []
    original = plugin._runner.call

    def spy(*args):
        seen.append(threading.get_ident())
        return original(*args)

    plugin._runner.call = spy
    return seen


async def _promote(plugin, capability="work", payload=b"0", patience=20):
    """Call until the capability goes inline (a busy machine can make a call not tiny)."""
    watch = plugin.cost_watch(capability)
    assert watch is not None and not watch.inline
    needed = (PROMOTE_AFTER << min(watch.demotions, 10)) - watch.streak
    calls = 0
    while not watch.inline:
        await plugin.invoke(capability, payload)
        calls += 1
        assert calls < needed * patience, f"not inline after {calls} calls: {watch.streak}"
    assert calls >= needed
    return watch, calls


async def _time_out_until_demoted(plugin, watch, seen, capability, payload, in_backtrace=""):
    """Invoke a call that outruns its 300 ms deadline until the capability leaves the loop.

    Each attempt starts inline, is stopped by the leash and is run again on a worker, where
    its own deadline stops it. The first attempt normally demotes the capability; when the
    epoch jumped at once (a late ticker) an attempt looks short, and a few in a row are
    needed. Returns how many attempts it took.
    """
    loop_thread = threading.get_ident()
    attempts = 0
    while attempts < DEMOTE_AFTER:
        attempts += 1
        seen.clear()
        with pytest.raises(CapabilityError) as caught:
            await plugin.invoke(capability, payload)
        error = caught.value
        assert error.code == "CAPABILITY_ERROR"
        assert error.details["kind"] == ErrorKind.TIMEOUT
        assert error.details["timeout_ms"] == "300"
        assert in_backtrace in error.details["backtrace"]
        assert seen[0] == loop_thread and seen[1:] != [loop_thread] and len(seen) == 2
        if not watch.inline:
            break
    return attempts


class _Ticks:
    """A task that counts 5 ms sleeps: it only advances while the loop is free."""

    def __init__(self) -> None:
        self.count = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            self.count += 1

    def stop(self) -> None:
        self.task.cancel()


@pytest.fixture
def reused(make_plugin):
    """A reused-instance plugin under the default policy (``inline_max_ms = 2``), or a
    longer leash."""

    def make(leash_ms=2, **limits):
        limits = {"fuel": 10**10, "timeout_ms": 2000, **limits}
        policy = WasmPolicy(cache=False, inline_max_ms=leash_ms)
        plugin = make_plugin("attacks", CAPS, reuse=True, limits=limits, policy_override=policy)
        assert plugin.granted.inline_leash_ms == leash_ms and not plugin.granted.inline
        return plugin

    return make


async def test_a_tiny_capability_goes_inline_after_a_streak(reused):
    plugin = reused()
    seen = _threads(plugin)
    loop_thread = threading.get_ident()
    await _promote(plugin)
    assert loop_thread not in seen  # the streak ran on workers
    seen.clear()
    assert await plugin.invoke("work", b"7") == b"7"
    assert seen == [loop_thread]
    # the watch is per capability: count has not been seen yet
    assert plugin.cost_watch("count").inline is False


async def test_a_call_past_the_leash_is_rerun_on_a_worker(reused):
    plugin = reused()
    watch, _ = await _promote(plugin)
    seen = _threads(plugin)
    loop_thread = threading.get_ident()
    assert await plugin.invoke("work", SLOW) == SLOW  # it still gets its answer
    assert seen[0] == loop_thread and seen[1] != loop_thread and len(seen) == 2
    assert not watch.inline and watch.demotions == 1
    # back on the workers, and a longer streak before it goes inline again
    seen.clear()
    await plugin.invoke("work", b"0")
    assert seen == [seen[0]] and seen[0] != loop_thread
    _, calls = await _promote(plugin)
    assert calls + 1 >= PROMOTE_AFTER * 2 and watch.inline  # with the call above


async def test_an_inline_eligible_call_that_loops_forever_is_stopped(reused, still_works):
    plugin = reused(timeout_ms=300)
    watch, _ = await _promote(plugin)
    seen = _threads(plugin)
    ticks = _Ticks()
    try:
        attempts = await _time_out_until_demoted(plugin, watch, seen, "work", b"-1")
    finally:
        ticks.stop()
    assert not watch.inline and watch.demotions == 1, attempts
    assert ticks.count >= 5 * attempts  # 300 ms on a worker each time: the loop went on
    assert await plugin.invoke("work", b"1") == b"1"
    await asyncio.sleep(0.01)  # the loop is still responsive
    still_works()


async def test_an_inline_eligible_call_that_runs_out_of_fuel(reused):
    plugin = reused(leash_ms=50, fuel=1_000_000)  # the fuel (about 0.6 ms) runs out first
    watch, _ = await _promote(plugin)
    seen = _threads(plugin)
    with pytest.raises(CapabilityError) as caught:
        await plugin.invoke("work", b"-1")
    # the fuel ran out inline, within the leash: a real failure, not run again
    assert caught.value.details["kind"] == ErrorKind.FUEL
    assert caught.value.details["fuel"] == "1000000"
    assert seen == [threading.get_ident()]
    assert watch.demotions == 0
    # calls that are not tiny, a few in a row, send the capability back to the workers
    for _ in range(DEMOTE_AFTER - 1):
        with pytest.raises(CapabilityError):
            await plugin.invoke("work", b"-1")
    assert not watch.inline and watch.demotions == 1
    assert seen == [threading.get_ident()] * DEMOTE_AFTER
    assert await plugin.invoke("work", b"2") == b"2"


async def test_a_trap_in_the_middle_of_an_inline_reused_instance(reused):
    plugin = reused()
    _, calls = await _promote(plugin, "count", b"{}", patience=100)
    counts = [json.loads(await plugin.invoke("count", b"{}"))["count"] for _ in range(3)]
    assert counts == [calls + 1, calls + 2, calls + 3]  # one instance served them all
    with pytest.raises(CapabilityError) as caught:
        await plugin.invoke("trap", b"{}")
    assert caught.value.details["kind"] == ErrorKind.TRAP
    assert "divide by zero" in caught.value.details["trap"]
    # the instance that trapped is gone: the next one starts counting afresh
    assert json.loads(await plugin.invoke("count", b"{}")) == {"count": 1}


async def test_declared_inline_calls_that_loop_forever_are_stopped_and_the_loop_goes_on(
    make_plugin, still_works
):
    policy = WasmPolicy(inline_max_ms=20, cache=False)
    plugin = make_plugin(
        "attacks", CAPS, limits={"timeout_ms": 20, "fuel": 10**10}, policy_override=policy
    )
    assert plugin.granted.inline and plugin.granted.inline_leash_ms == 0
    seen = _threads(plugin)
    for _ in range(3):
        with pytest.raises(CapabilityError) as caught:
            await plugin.invoke("spin", b"{}")
        assert caught.value.details["kind"] == ErrorKind.TIMEOUT
        assert caught.value.details["timeout_ms"] == "20"
    assert set(seen) == {threading.get_ident()}
    ticks = _Ticks()
    await asyncio.sleep(0.05)
    ticks.stop()
    assert ticks.count >= 1
    assert await plugin.invoke("work", b"3") == b"3"
    still_works()


@pytest.mark.parametrize(
    ("options", "policy", "leash"),
    [
        ({"reuse": True}, WasmPolicy(cache=False), 2),
        ({"reuse": True}, WasmPolicy(cache=False, inline_max_ms=0), 0),
        # a fresh Store per call gets the leash too (its start runs under it), asked or not
        ({"reuse": True}, WasmPolicy(cache=False, reuse=False), 2),
        ({"reuse": False}, WasmPolicy(cache=False), 2),
        ({"reuse": False}, WasmPolicy(cache=False, inline_max_ms=0), 0),
        ({"reuse": True}, WasmPolicy(cache=False, inline_max_ms=50), 50),
    ],
)
def test_who_gets_the_leash(make_plugin, options, policy, leash):
    plugin = make_plugin("attacks", CAPS, policy_override=policy, **options)
    assert plugin.granted.inline_leash_ms == leash
    watch = plugin.cost_watch("work")
    assert (watch is not None) == bool(leash)
    assert plugin.describe()["inline_leash_ms"] == leash


def test_writable_directories_keep_a_plugin_off_the_leash(make_plugin, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    policy = WasmPolicy(cache=False, dirs=[{"path": str(data), "mode": "rw"}])
    writable = make_plugin(
        "attacks",
        CAPS,
        reuse=True,
        policy_override=policy,
        grants={"dirs": [{"host": str(data), "guest": "/data", "mode": "rw"}]},
    )
    readonly = make_plugin(
        "attacks",
        CAPS,
        reuse=True,
        policy_override=policy,
        grants={"dirs": [{"host": str(data), "guest": "/data", "mode": "ro"}]},
    )
    assert writable.granted.inline_leash_ms == 0  # a call may not run twice
    assert readonly.granted.inline_leash_ms == 2


def test_a_component_with_the_clock_never_runs_inline(build_guest, manifest_for, tmp_path):
    from loom_wasm import load_plugin

    manifest = manifest_for(
        "clock", {"c": "call"}, abi="component-v1", limits={"timeout_ms": 5}, reuse=True
    )
    manifest["grants"] = {"clock": True}
    path = build_guest("component_clock", tmp_path, manifest)
    plugin = load_plugin(path, WasmPolicy(cache=False, inline_max_ms=50))
    try:
        # the epoch cannot stop a component asleep in a host call: never on the loop
        assert plugin.granted.clock
        assert not plugin.granted.inline and plugin.granted.inline_leash_ms == 0
    finally:
        plugin.close()


def test_the_cost_watch_promotes_after_a_streak_and_backs_off():
    watch = CostWatch()
    for _ in range(PROMOTE_AFTER - 1):
        watch.saw(TINY_S / 2)
    assert not watch.inline
    watch.saw(TINY_S * 2)  # one slow call restarts the streak
    assert watch.streak == 0
    for _ in range(PROMOTE_AFTER):
        watch.saw(TINY_S / 2)
    assert watch.inline
    watch.saw_inline(TINY_S / 2)
    for _ in range(DEMOTE_AFTER - 1):
        watch.saw_inline(TINY_S * 2)
    watch.saw_inline(TINY_S / 2)  # one tiny call among them: still inline
    for _ in range(DEMOTE_AFTER - 1):
        watch.saw_inline(TINY_S * 2)
    assert watch.inline and watch.demotions == 0
    watch.saw_inline(TINY_S * 2)  # DEMOTE_AFTER in a row that were not tiny send it back
    assert not watch.inline and watch.demotions == 1
    for _ in range(PROMOTE_AFTER * 2 - 1):
        watch.saw(0.0)
    assert not watch.inline
    watch.saw(0.0)
    assert watch.inline
    for _ in range(40):
        watch.demote()
    assert watch.demotions == 41
    for _ in range(PROMOTE_AFTER << 10):
        watch.saw(0.0)
    assert watch.inline  # the back-off is capped
    for _ in range(FORGIVE_AFTER * 3):
        watch.saw_inline(0.0)
    assert watch.demotions == 41 - 3  # a long run of tiny inline calls forgives


# A fresh Store per call: the observed route covers the whole call, start function included.


@pytest.fixture
def fresh(make_plugin, tmp_path):
    """``fresh(leash_ms=50, **limits) -> (plugin, mode file)``: a fresh-Store plugin of
    ``fresh_start.wat`` on that leash, whose start the test steers through its read-only
    ``mode`` file."""

    def make(leash_ms=50, **limits):
        cfg = tmp_path / "cfg"
        cfg.mkdir(exist_ok=True)
        mode = cfg / "mode"
        mode.write_text("-")  # starts normally (the load-time probe instantiates it)
        policy = WasmPolicy(cache=False, dirs=[{"path": str(cfg)}], inline_max_ms=leash_ms)
        plugin = make_plugin(
            "fresh_start",
            {"count": "cap_count"},
            limits={"fuel": 10**10, "timeout_ms": 2000, **limits},
            grants={"dirs": [{"host": str(cfg), "guest": "/cfg", "mode": "ro"}]},
            policy_override=policy,
        )
        assert not plugin.granted.reuse and plugin.granted.inline_leash_ms == leash_ms
        # These tests are about what happens to fresh calls on the leash, not about the
        # tiny mark or the leash's length (CostWatch's own tests and the reused-instance
        # tests are): on a busy machine a fresh call with its WASI context can take longer
        # than TINY_FRESH_S, or than a 2 ms leash, so both are wider here unless a test
        # asks for the default leash.
        watch = plugin.cost_watch("count")
        assert watch is not None and watch.tiny_s == TINY_FRESH_S
        watch.tiny_s = 0.002
        return plugin, mode

    return make


FRESH = {"count": 1, "last": None}
# A fresh call with its WASI context and preopened directory costs 100-200 µs here, near the
# tiny mark on a busy machine: the fresh tests allow more calls before one goes inline.


async def test_a_fresh_capability_goes_inline_after_a_streak_and_keeps_nothing(fresh):
    plugin, _ = fresh()
    seen = _threads(plugin)
    loop_thread = threading.get_ident()
    watch = plugin.cost_watch("count")
    while not watch.inline:  # as _promote, checking every answer on the way
        assert json.loads(await plugin.invoke("count", b'{"n":0}')) == FRESH
        assert len(seen) < PROMOTE_AFTER * 100, watch.streak
    assert loop_thread not in seen and len(seen) >= PROMOTE_AFTER
    seen.clear()
    for n in range(5):
        # a new Store each time, inline too: no global, no memory carried from the call before
        assert json.loads(await plugin.invoke("count", b'{"n":%d}' % n)) == FRESH
    assert seen == [loop_thread] * 5


async def test_a_fresh_start_past_the_leash_is_rerun_on_a_worker_and_answered(fresh):
    plugin, mode = fresh(leash_ms=2)
    watch, _ = await _promote(plugin, "count", b"{}", patience=100)
    seen = _threads(plugin)
    loop_thread = threading.get_ident()
    mode.write_text("S")  # the start function now takes about 15 ms: past the 2 ms leash
    assert json.loads(await plugin.invoke("count", b"{}")) == FRESH
    assert seen[0] == loop_thread and seen[1] != loop_thread and len(seen) == 2
    assert not watch.inline and watch.demotions == 1
    mode.write_text("-")
    seen.clear()
    assert json.loads(await plugin.invoke("count", b"{}")) == FRESH
    assert seen != [loop_thread]  # back on the workers until seen tiny again, for longer
    _, calls = await _promote(plugin, "count", b"{}", patience=100)
    assert calls + 1 >= PROMOTE_AFTER * 2 and watch.inline


async def test_a_fresh_start_that_loops_forever_is_stopped_and_the_loop_goes_on(fresh, still_works):
    plugin, mode = fresh(timeout_ms=300)
    watch, _ = await _promote(plugin, "count", b"{}", patience=100)
    seen = _threads(plugin)
    mode.write_text("L")  # the module's start function now never returns
    ticks = _Ticks()
    try:
        # stopped in the start function, each time
        attempts = await _time_out_until_demoted(plugin, watch, seen, "count", b"{}", "init")
    finally:
        ticks.stop()
    assert not watch.inline and watch.demotions == 1, attempts
    assert ticks.count >= 5 * attempts  # 300 ms on a worker each time: the loop went on
    mode.write_text("-")
    assert json.loads(await plugin.invoke("count", b"{}")) == FRESH
    still_works()


async def test_a_memory_bomb_while_a_fresh_instance_starts_is_stopped_inline(fresh, still_works):
    plugin, mode = fresh()
    mode.write_text("G")  # _initialize grows memory until the cap refuses, then traps
    with pytest.raises(CapabilityError) as on_worker:
        await plugin.invoke("count", b"{}")
    mode.write_text("-")
    watch, _ = await _promote(plugin, "count", b"{}", patience=100)
    seen = _threads(plugin)
    mode.write_text("G")
    with pytest.raises(CapabilityError) as inline:
        await plugin.invoke("count", b"{}")
    # the same error on either route; a real failure within the leash, not run again
    for caught in (on_worker, inline):
        assert caught.value.code == "CAPABILITY_ERROR"
        assert caught.value.details["kind"] == ErrorKind.MEMORY
        assert caught.value.details["memory_bytes"] == str(plugin.granted.limits.memory_bytes)
    assert seen == [threading.get_ident()]
    assert watch.inline and watch.demotions == 0
    mode.write_text("-")
    assert json.loads(await plugin.invoke("count", b"{}")) == FRESH
    assert seen == [threading.get_ident()] * 2
    still_works()


def test_writable_directories_keep_a_fresh_plugin_off_the_leash(make_plugin, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    policy = WasmPolicy(cache=False, dirs=[{"path": str(data), "mode": "rw"}])
    plugin = make_plugin(
        "attacks",
        CAPS,
        policy_override=policy,
        grants={"dirs": [{"host": str(data), "guest": "/data", "mode": "rw"}]},
    )
    assert not plugin.granted.reuse and plugin.granted.inline_leash_ms == 0
    assert plugin.cost_watch("work") is None
