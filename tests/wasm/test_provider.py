"""WasmProvider: WASM capabilities through the ActionBroker, off the event loop, bounded."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from loom import ActionCall, ActionStatus, ProviderKind
from loom.actions import ActionBroker, CapabilityError
from loom_wasm import ErrorKind, WasmPolicy, WasmProvider

ATTACKS = {"echo": "cap_echo", "spin": "cap_spin", "trap": "cap_trap", "count": "cap_count"}


@pytest.fixture
async def broker(text_tools):
    async with ActionBroker() as broker:
        for provider in text_tools.providers():
            broker.register(provider)
        yield broker


async def test_descriptors_carry_schemas_and_provenance(broker, text_tools):
    described = {d.name: d for d in broker.list_capabilities()}
    assert sorted(described) == ["json.echo", "text.upper"]
    upper = described["text.upper"]
    assert upper.provider == ProviderKind.WASM
    assert upper.version == "1.0"
    assert json.loads(upper.metadata["input_schema"])["required"] == ["text"]
    assert json.loads(upper.metadata["schema"]) == json.loads(upper.metadata["input_schema"])
    assert "properties" in json.loads(upper.metadata["output_schema"])
    assert upper.metadata["desc"] == "Upper-case (ASCII) every string value of the input object"
    assert upper.metadata["wasm.plugin"] == "text-tools"
    assert upper.metadata["wasm.sha256"] == text_tools.sha256
    assert upper.metadata["wasm.reuse_instance"] == "true"


async def test_a_call_through_the_broker(broker):
    result = await broker.invoke(ActionCall("text.upper", b'{"text": "hi \\"you\\"", "n": 1}'))
    assert result.status == ActionStatus.OK, result.error
    assert json.loads(result.output) == {"text": 'HI "YOU"', "n": 1}


async def test_the_broker_validates_input_against_the_manifest_schema(broker):
    result = await broker.invoke(ActionCall("text.upper", b'{"text": 5}'))
    assert result.status == ActionStatus.ERROR
    assert result.error.code == "INVALID_PARAMS"
    assert result.error.details["field"] == "$.text"
    missing = await broker.invoke(ActionCall("text.upper", b"{}"))
    assert missing.error.code == "INVALID_PARAMS"


async def test_failures_keep_their_kind_through_the_broker(make_plugin, text_tools):
    plugin = make_plugin("attacks", ATTACKS, limits={"fuel": 5_000_000})
    async with ActionBroker() as broker:
        for provider in [*plugin.providers(), *text_tools.providers()]:
            broker.register(provider)
        fuel = await broker.invoke(ActionCall("spin", b"{}"))
        assert fuel.status == ActionStatus.ERROR
        assert fuel.error.code == "CAPABILITY_ERROR"
        assert fuel.error.details["kind"] == ErrorKind.FUEL
        trap = await broker.invoke(ActionCall("trap", b"{}"))
        assert trap.error.details["kind"] == ErrorKind.TRAP
        assert "integer divide by zero" in trap.error.message
        ok = await broker.invoke(ActionCall("text.upper", b'{"text": "fine"}'))
        assert json.loads(ok.output) == {"text": "FINE"}


async def test_a_broker_timeout_shorter_than_the_plugin_deadline(make_plugin):
    plugin = make_plugin("attacks", ATTACKS, limits={"fuel": 10**10, "timeout_ms": 10_000})
    async with ActionBroker() as broker:
        for provider in plugin.providers():
            broker.register(provider)
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await broker.invoke(ActionCall("spin", b"{}", timeout_ms=100))
        assert result.status in (ActionStatus.TIMEOUT, ActionStatus.ERROR)
        assert (result.error.code, result.error.details.get("kind")) in (
            ("TIMEOUT", None),
            ("CAPABILITY_ERROR", "timeout"),
        )
        assert loop.time() - started < 5
        # the guest was stopped by its own deadline (the call's 100 ms), not left spinning
        for _ in range(100):
            if plugin.in_flight == 0:
                break
            await asyncio.sleep(0.02)
        assert plugin.in_flight == 0
        ok = await broker.invoke(ActionCall("echo", b"[1]"))
        assert json.loads(ok.output) == [1]


async def test_calls_run_off_the_event_loop(make_plugin):
    plugin = make_plugin("attacks", ATTACKS, limits={"fuel": 10**10, "timeout_ms": 300})
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        with pytest.raises(CapabilityError) as caught:
            await plugin.invoke("spin", b"{}")
    finally:
        task.cancel()
    assert caught.value.details["kind"] == ErrorKind.TIMEOUT
    assert ticks >= 10  # the loop kept running while the guest spun for 300 ms


async def test_inline_calls_run_on_the_loop_thread_within_their_deadline(make_plugin, tmp_path):
    policy = WasmPolicy(inline_max_ms=20, cache=False)
    plugin = make_plugin(
        "attacks", ATTACKS, limits={"timeout_ms": 20}, policy_override=policy, reuse=True
    )
    assert plugin.granted.inline
    threads = set()
    original = plugin._runner.call

    def spy(*args):
        threads.add(threading.get_ident())
        return original(*args)

    plugin._runner.call = spy
    assert json.loads(await plugin.invoke("count", b"{}")) == {"count": 1}
    assert threads == {threading.get_ident()}
    with pytest.raises(CapabilityError) as caught:
        await plugin.invoke("spin", b"{}")
    assert caught.value.details["kind"] in (ErrorKind.FUEL, ErrorKind.TIMEOUT)


async def test_concurrency_is_bounded_and_the_excess_is_turned_away(make_plugin):
    plugin = make_plugin(
        "attacks",
        ATTACKS,
        limits={"fuel": 10**10, "timeout_ms": 400, "max_concurrency": 2},
    )
    calls = [asyncio.ensure_future(plugin.invoke("spin", b"{}")) for _ in range(30)]
    await asyncio.sleep(0.05)
    assert plugin.in_flight == 18  # 2 running, 16 waiting: 2 * (1 + 8)
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    codes = sorted({(e.code, e.details.get("kind"), e.retryable) for e in outcomes})
    assert all(isinstance(e, CapabilityError) for e in outcomes)
    assert ("PROVIDER_UNAVAILABLE", None, True) in codes
    assert ("CAPABILITY_ERROR", "timeout", False) in codes
    busy = [e for e in outcomes if e.code == "PROVIDER_UNAVAILABLE"]
    assert len(busy) == 12
    assert "calls in flight, the bound is 18" in busy[0].message
    assert plugin.in_flight == 0
    assert json.loads(await plugin.invoke("echo", b"[1]")) == [1]


async def test_closing_the_last_provider_closes_the_plugin(make_plugin):
    plugin = make_plugin("attacks", ATTACKS)
    providers = plugin.providers()
    async with ActionBroker() as broker:
        for provider in providers:
            broker.register(provider)
        assert json.loads((await broker.invoke(ActionCall("echo", b"[1]"))).output) == [1]
        await broker.unregister("echo")
        assert (await broker.invoke(ActionCall("count", b"{}"))).status == ActionStatus.OK
    # the broker closed every provider: the plugin takes no more calls
    with pytest.raises(CapabilityError) as caught:
        await plugin.invoke("echo", b"[1]")
    assert caught.value.code == "PROVIDER_UNAVAILABLE" and caught.value.retryable


async def test_an_unknown_capability_on_the_plugin(text_tools):
    with pytest.raises(CapabilityError) as caught:
        await text_tools.invoke("nope", b"{}")
    assert caught.value.code == "NOT_FOUND"
    assert "offers json.echo 1.0, text.upper 1.0" in caught.value.message


async def test_provider_invoke_directly(text_tools):
    provider = next(p for p in text_tools.providers() if p.descriptor.name == "text.upper")
    assert isinstance(provider, WasmProvider)
    out = await provider.invoke(ActionCall("text.upper", b'{"text": "x"}'))
    assert json.loads(out) == {"text": "X"}
    assert provider.max_concurrency == text_tools.granted.limits.max_concurrency
    assert provider.validates_input is False
