"""ActionBroker: registry, invoke and its codes, idempotency, concurrency bound, circuit
breaker, version selection, the capability directory (UPSTREAM.md §5, AC5.1-5.3)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable

import pytest

from loom import ActionCall, ActionStatus, CapabilityDescriptor, ProviderKind
from loom.actions import (
    ActionBroker,
    BreakerState,
    CapabilityError,
    CircuitBreakerPolicy,
    ErrorCode,
    NativeProvider,
    Provider,
    capability,
)
from loom.actions._bench import broker_invoke_native, python_call
from loom.directory import CapabilityDirectory

Behaviour = Callable[[ActionCall], Awaitable[bytes]]


class FunctionProvider(Provider):
    """A provider of any kind that runs ``behaviour`` and counts its runs."""

    def __init__(
        self,
        name: str,
        behaviour: Behaviour,
        *,
        version: str = "1.0",
        metadata: dict[str, str] | None = None,
        kind: ProviderKind = ProviderKind.GRPC,
        max_concurrency: int | None = None,
    ) -> None:
        self.descriptor = CapabilityDescriptor(name, version, kind, metadata or {})
        self.behaviour = behaviour
        self.max_concurrency = max_concurrency
        self.runs = 0
        self.calls: list[ActionCall] = []
        self.closed = False

    async def invoke(self, call: ActionCall) -> bytes:
        self.runs += 1
        self.calls.append(call)
        return await self.behaviour(call)

    async def close(self) -> None:
        self.closed = True


def answer(output: bytes) -> Behaviour:
    async def behaviour(call: ActionCall) -> bytes:
        return output

    return behaviour


def echo_payload() -> Behaviour:
    async def behaviour(call: ActionCall) -> bytes:
        return call.payload

    return behaviour


def raising(exc: BaseException) -> Behaviour:
    async def behaviour(call: ActionCall) -> bytes:
        raise exc

    return behaviour


def gated(gate: asyncio.Event, output: bytes = b"done") -> Behaviour:
    async def behaviour(call: ActionCall) -> bytes:
        await gate.wait()
        return output

    return behaviour


async def hang(call: ActionCall) -> bytes:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Yield to the loop until ``predicate()`` holds (at most 2 s)."""
    async with asyncio.timeout(2):
        while not predicate():
            await asyncio.sleep(0)
    assert predicate(), what


async def settle() -> None:
    """Let every ready task run a few rounds."""
    for _ in range(20):
        await asyncio.sleep(0)


def code_of(result: object) -> str | None:
    error = getattr(result, "error", None)
    return None if error is None else error.code


# -- AC5.1 -----------------------------------------------------------------------------------


async def test_ac5_1_echo_and_highest_version() -> None:
    async with ActionBroker() as broker:
        broker.register(FunctionProvider("echo", echo_payload(), version="1.0.0"))
        result = await broker.invoke(ActionCall("echo", b"hello", version="1.0.0"))
        assert result.status is ActionStatus.OK and result.output == b"hello"
        assert result.error is None

        broker.register(FunctionProvider("test.any", answer(b"v1"), version="1.0.0"))
        broker.register(FunctionProvider("test.any", answer(b"v2"), version="2.0.0"))
        result = await broker.invoke(ActionCall("test.any"))
        assert result.output == b"v2"


async def test_version_selection_is_numeric_exact_or_highest() -> None:
    async with ActionBroker() as broker:
        for version in ("1.9", "1.10", "1.2"):
            broker.register(FunctionProvider("v", answer(version.encode()), version=version))
        assert (await broker.invoke(ActionCall("v"))).output == b"1.10"  # not "1.9"
        assert (await broker.invoke(ActionCall("v", version="1.9"))).output == b"1.9"
        missing = await broker.invoke(ActionCall("v", version="3.0"))
        assert missing.status is ActionStatus.ERROR
        assert code_of(missing) == ErrorCode.NOT_FOUND
        assert "no version '3.0'" in missing.error.message  # type: ignore[union-attr]
        assert "1.2, 1.9, 1.10" in missing.error.message  # type: ignore[union-attr]
        await broker.unregister("v", "1.10")
        assert (await broker.invoke(ActionCall("v"))).output == b"1.9"
        assert broker.describe("v").version == "1.9"  # type: ignore[union-attr]


# -- AC5.2 and every code ---------------------------------------------------------------------


async def test_ac5_2_unknown_capability_is_not_found() -> None:
    async with ActionBroker() as broker:
        result = await broker.invoke(ActionCall("no.such", b"{}", id="c1"))
        assert result.id == "c1"
        assert result.status is ActionStatus.ERROR
        assert code_of(result) == ErrorCode.NOT_FOUND
        assert "no.such" in result.error.message  # type: ignore[union-attr]
        assert broker.stats.failed == {"NOT_FOUND": 1}


async def test_ac5_2_provider_exception_is_capability_error() -> None:
    async with ActionBroker() as broker:
        broker.register(FunctionProvider("boom", raising(RuntimeError("disk on fire"))))
        result = await broker.invoke(ActionCall("boom"))
        assert result.status is ActionStatus.ERROR
        assert code_of(result) == ErrorCode.CAPABILITY_ERROR
        assert "disk on fire" in result.error.message  # type: ignore[union-attr]


async def test_ac5_2_timeout_and_the_broker_goes_on() -> None:
    async with ActionBroker() as broker:
        broker.register(FunctionProvider("slow", hang))
        broker.register(FunctionProvider("fast", answer(b"ok")))
        result = await broker.invoke(ActionCall("slow", timeout_ms=50))
        assert result.status is ActionStatus.TIMEOUT
        assert code_of(result) == ErrorCode.TIMEOUT
        assert result.error.message == "Action timed out"  # type: ignore[union-attr]
        assert result.error.details["timeout_ms"] == "50"  # type: ignore[union-attr]
        assert (await broker.invoke(ActionCall("fast"))).output == b"ok"
        again = await broker.invoke(ActionCall("slow", timeout_ms=20))
        assert again.status is ActionStatus.TIMEOUT  # a second hang is answered too


@pytest.mark.parametrize("timeout_ms", [0, -5])
async def test_timeout_zero_or_less_takes_the_default(timeout_ms: int) -> None:
    async with ActionBroker(default_timeout_ms=40) as broker:
        broker.register(FunctionProvider("slow", hang))
        result = await broker.invoke(ActionCall("slow", timeout_ms=timeout_ms))
        assert result.status is ActionStatus.TIMEOUT
        assert result.error.details["timeout_ms"] == "40"  # type: ignore[union-attr]


async def test_a_sync_capability_that_hangs_times_out_without_blocking_the_loop() -> None:
    release = threading.Event()

    @capability("stuck")
    def stuck() -> str:
        release.wait(10)
        return "late"

    @capability("quick")
    async def quick() -> str:
        return "quick"

    async with ActionBroker() as broker:
        broker.register(NativeProvider(stuck))
        broker.register(NativeProvider(quick))
        try:
            result = await broker.invoke(ActionCall("stuck", timeout_ms=50))
            assert result.status is ActionStatus.TIMEOUT
            assert (await broker.invoke(ActionCall("quick"))).output == b'"quick"'
        finally:
            release.set()


async def test_capability_error_codes_and_statuses() -> None:
    async with ActionBroker() as broker:
        broker.register(
            FunctionProvider(
                "custom",
                raising(CapabilityError("INVALID_QUERY", "empty query", details={"q": ""})),
            )
        )
        broker.register(
            FunctionProvider(
                "flaky",
                raising(CapabilityError(ErrorCode.PROVIDER_UNAVAILABLE, "down", retryable=True)),
            )
        )
        broker.register(
            FunctionProvider("remote.late", raising(CapabilityError(ErrorCode.TIMEOUT, "late")))
        )
        broker.register(FunctionProvider("own.timeout", raising(TimeoutError("upstream slow"))))

        custom = await broker.invoke(ActionCall("custom"))
        assert custom.status is ActionStatus.ERROR
        assert (custom.error.code, custom.error.message) == ("INVALID_QUERY", "empty query")  # type: ignore[union-attr]
        assert custom.error.details == {"q": ""}  # type: ignore[union-attr]

        flaky = await broker.invoke(ActionCall("flaky"))
        assert flaky.status is ActionStatus.RETRYABLE
        assert code_of(flaky) == ErrorCode.PROVIDER_UNAVAILABLE

        late = await broker.invoke(ActionCall("remote.late"))
        assert late.status is ActionStatus.TIMEOUT and code_of(late) == "TIMEOUT"

        own = await broker.invoke(ActionCall("own.timeout", timeout_ms=10_000))
        assert own.status is ActionStatus.TIMEOUT
        assert own.error.message == "upstream slow"  # type: ignore[union-attr]


# -- input validation for providers that do not validate themselves --------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "n": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["n"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        (b'{"n": "x"}', "$.n", "is not of type 'integer'"),
        (b"{}", "$.n", "'n' is a required property"),
        (b'{"n": 1, "tags": ["a", 2]}', "$.tags[1]", "is not of type 'string'"),
        (b'{"n": 1, "extra": true}', "$", "'extra' was unexpected"),
        (b"not json", "$", "payload is not JSON"),
        (b"[1, 2]", "$", "is not of type 'object'"),
    ],
)
async def test_json_schema_failure_is_invalid_params_naming_the_field(
    payload: bytes, field: str, words: str
) -> None:
    provider = FunctionProvider(
        "count", echo_payload(), metadata={"input_schema": json.dumps(SCHEMA)}
    )
    async with ActionBroker() as broker:
        broker.register(provider)
        result = await broker.invoke(ActionCall("count", payload))
        assert result.status is ActionStatus.ERROR
        assert code_of(result) == ErrorCode.INVALID_PARAMS
        assert result.error.details["field"] == field  # type: ignore[union-attr]
        assert result.error.message.startswith(f"{field}: ")  # type: ignore[union-attr]
        assert words in result.error.message  # type: ignore[union-attr]
        assert provider.runs == 0
        ok = await broker.invoke(ActionCall("count", b'{"n": 3, "tags": ["a"]}'))
        assert ok.status is ActionStatus.OK and provider.runs == 1


async def test_upstream_schema_key_is_read_and_a_bad_schema_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = FunctionProvider("up", echo_payload(), metadata={"schema": json.dumps(SCHEMA)})
    broken = FunctionProvider("broken", echo_payload(), metadata={"input_schema": '{"type": 5}'})
    garbage = FunctionProvider("garbage", echo_payload(), metadata={"input_schema": "{nope"})
    async with ActionBroker() as broker:
        broker.register(upstream)
        with caplog.at_level(logging.WARNING, logger="loom.actions"):
            broker.register(broken)
            broker.register(garbage)
        assert "capability 'broken': input schema ignored" in caplog.text
        assert "capability 'garbage': input schema ignored" in caplog.text
        assert code_of(await broker.invoke(ActionCall("up", b"{}"))) == ErrorCode.INVALID_PARAMS
        # The capability with the unusable schema still runs, unvalidated.
        assert (await broker.invoke(ActionCall("broken", b"{}"))).status is ActionStatus.OK
        assert (await broker.invoke(ActionCall("garbage", b"x"))).output == b"x"


# -- envelope headers -------------------------------------------------------------------------


async def test_envelope_headers_are_filled_with_the_call_id_as_fallback() -> None:
    provider = FunctionProvider("seen", answer(b""))
    async with ActionBroker() as broker:
        broker.register(provider)
        call = ActionCall("seen", id="call-7")
        await broker.invoke(call)
        headers = provider.calls[-1].headers
        assert headers["thread_id"] == "call-7"
        assert headers["correlation_id"] == "call-7" == call.correlation_id
        assert headers["reply_to"] == "thread.call-7.reply"
        assert (headers["ttl"], headers["hop"], headers["sender"]) == ("16", "0", "")
        assert int(headers["ts"]) > 0

        await broker.invoke(ActionCall("seen", correlation_id="c"))
        assert provider.calls[-1].headers["correlation_id"] == "c"

        await broker.invoke(
            ActionCall("seen", headers={"loom.thread_id": "t9", "sender": "agent.a"})
        )
        headers = provider.calls[-1].headers
        assert headers["thread_id"] == "t9" == headers["correlation_id"]
        assert headers["sender"] == "agent.a"
        assert provider.calls[-1].correlation_id == "t9"


# -- AC5.3 registry and idempotency -----------------------------------------------------------


async def test_ac5_3_registered_twice_only_the_second_runs() -> None:
    first = FunctionProvider("dup", answer(b"first"))
    second = FunctionProvider("dup", answer(b"second"))
    async with ActionBroker() as broker:
        assert broker.register(first) is None
        assert broker.register(second) is first  # handed back for its owner to close
        assert (await broker.invoke(ActionCall("dup"))).output == b"second"
        assert (first.runs, second.runs) == (0, 1)
        assert len(broker.list_capabilities()) == 1


async def test_ac5_3_same_call_id_runs_once_with_equal_results() -> None:
    provider = FunctionProvider("once", echo_payload())
    async with ActionBroker() as broker:
        broker.register(provider)
        first = await broker.invoke(ActionCall("once", b"a", id="same"))
        second = await broker.invoke(ActionCall("once", b"b", id="same"))
        assert provider.runs == 1
        assert first == second and first is not second
        assert second.output == b"a"
        assert broker.stats.cache_hits == 1


async def test_errors_and_timeouts_are_remembered_but_retryable_results_are_not() -> None:
    attempts: list[int] = []

    async def flaky(call: ActionCall) -> bytes:
        attempts.append(1)
        if len(attempts) == 1:
            raise CapabilityError(ErrorCode.PROVIDER_UNAVAILABLE, "warming up", retryable=True)
        return b"up"

    async with ActionBroker() as broker:
        broker.register(FunctionProvider("flaky", flaky))
        broker.register(FunctionProvider("boom", raising(ValueError("bad"))))
        broker.register(FunctionProvider("slow", hang))
        first = await broker.invoke(ActionCall("flaky", id="r"))
        assert first.status is ActionStatus.RETRYABLE
        retry = await broker.invoke(ActionCall("flaky", id="r"))
        assert retry.status is ActionStatus.OK and len(attempts) == 2

        for name, timeout in (("boom", 0), ("slow", 20)):
            a = await broker.invoke(ActionCall(name, id=f"id-{name}", timeout_ms=timeout))
            b = await broker.invoke(ActionCall(name, id=f"id-{name}", timeout_ms=timeout))
            assert a == b and a.status is not ActionStatus.OK
        assert broker.stats.cache_hits == 2


async def test_idempotency_window_is_bounded_lru() -> None:
    provider = FunctionProvider("n", answer(b"x"))
    async with ActionBroker(idempotency_size=2) as broker:
        broker.register(provider)
        for call_id in ("a", "b", "a", "c"):  # "a" is used again, so "b" is the oldest
            await broker.invoke(ActionCall("n", id=call_id))
        assert provider.runs == 3
        await broker.invoke(ActionCall("n", id="a"))
        assert provider.runs == 3
        await broker.invoke(ActionCall("n", id="b"))
        assert provider.runs == 4


async def test_concurrent_duplicates_share_one_execution() -> None:
    gate = asyncio.Event()
    provider = FunctionProvider("shared", gated(gate, b"result"))
    async with ActionBroker() as broker:
        broker.register(provider)
        tasks = [
            asyncio.create_task(broker.invoke(ActionCall("shared", id="dup"))) for _ in range(3)
        ]
        await until(lambda: provider.runs == 1, "the first call runs")
        await settle()
        assert provider.runs == 1
        gate.set()
        results = await asyncio.gather(*tasks)
        assert provider.runs == 1
        assert all(r.output == b"result" and r.status is ActionStatus.OK for r in results)
        assert broker.stats.joined == 2


async def test_a_cancelled_first_call_leaves_its_duplicate_to_run_it() -> None:
    gate = asyncio.Event()
    provider = FunctionProvider("shared", gated(gate, b"result"))
    async with ActionBroker() as broker:
        broker.register(provider)
        first = asyncio.create_task(broker.invoke(ActionCall("shared", id="dup")))
        await until(lambda: provider.runs == 1, "the first call runs")
        second = asyncio.create_task(broker.invoke(ActionCall("shared", id="dup")))
        await settle()
        first.cancel()
        await until(lambda: provider.runs == 2, "the duplicate runs the call itself")
        gate.set()
        assert (await second).output == b"result"
        with pytest.raises(asyncio.CancelledError):
            await first


# -- concurrency bound ------------------------------------------------------------------------


async def test_concurrency_per_provider_is_bounded() -> None:
    gate = asyncio.Event()
    active = peak = 0

    async def tracked(call: ActionCall) -> bytes:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await gate.wait()
        finally:
            active -= 1
        return b"ok"

    bounded = FunctionProvider("bounded", tracked)
    other = FunctionProvider("other", answer(b"free"))
    async with ActionBroker(max_concurrency=2) as broker:
        broker.register(bounded)
        broker.register(other)
        tasks = [asyncio.create_task(broker.invoke(ActionCall("bounded"))) for _ in range(5)]
        await until(lambda: active == 2, "two calls run")
        await settle()
        assert (active, bounded.runs) == (2, 2)  # the other three wait
        # Another provider has its own slots.
        assert (await broker.invoke(ActionCall("other"))).output == b"free"
        gate.set()
        results = await asyncio.gather(*tasks)
        assert all(r.status is ActionStatus.OK for r in results)
        assert peak == 2 and bounded.runs == 5


async def test_provider_bound_waiting_timeout_and_overload() -> None:
    gate = asyncio.Event()
    provider = FunctionProvider("one", gated(gate), max_concurrency=1)
    async with ActionBroker(max_waiting=1) as broker:
        broker.register(provider)
        running = asyncio.create_task(broker.invoke(ActionCall("one")))
        await until(lambda: provider.runs == 1, "the first call runs")
        waiting = asyncio.create_task(broker.invoke(ActionCall("one", timeout_ms=5_000)))
        await settle()
        overflow = await broker.invoke(ActionCall("one"))
        assert overflow.status is ActionStatus.ERROR
        assert code_of(overflow) == ErrorCode.PROVIDER_UNAVAILABLE
        assert overflow.error.details["reason"] == "overloaded"  # type: ignore[union-attr]
        # A call that waits for a slot still honours its own timeout.
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        queued = await broker.invoke(ActionCall("one", timeout_ms=30))
        assert queued.status is ActionStatus.TIMEOUT
        assert queued.error.details["phase"] == "queued"  # type: ignore[union-attr]
        gate.set()
        assert (await running).status is ActionStatus.OK
        assert provider.runs == 1
        assert broker.breaker_state("one") is BreakerState.CLOSED  # waiting is no failure


# -- circuit breaker --------------------------------------------------------------------------


async def test_circuit_opens_answers_unavailable_then_half_open_probe_closes_it() -> None:
    now = [0.0]
    healthy = [False]
    gate = asyncio.Event()
    gate.set()

    async def sometimes(call: ActionCall) -> bytes:
        await gate.wait()
        if not healthy[0]:
            raise ConnectionError("backend down")
        return b"up"

    provider = FunctionProvider("svc", sometimes)
    policy = CircuitBreakerPolicy(failure_threshold=3, reset_timeout_s=10.0)
    async with ActionBroker(breaker=policy, clock=lambda: now[0]) as broker:
        broker.register(provider)
        for _ in range(3):
            assert code_of(await broker.invoke(ActionCall("svc"))) == ErrorCode.CAPABILITY_ERROR
        assert broker.breaker_state("svc") is BreakerState.OPEN

        refused = await broker.invoke(ActionCall("svc", id="while-open"))
        assert refused.status is ActionStatus.ERROR
        assert code_of(refused) == ErrorCode.PROVIDER_UNAVAILABLE
        assert refused.error.details == {"reason": "circuit_open", "retry_after_ms": "10000"}  # type: ignore[union-attr]
        assert provider.runs == 3  # not reached

        # Half-open: one probe goes through; it fails, so the circuit opens again.
        now[0] = 10.0
        assert code_of(await broker.invoke(ActionCall("svc"))) == ErrorCode.CAPABILITY_ERROR
        assert provider.runs == 4 and broker.breaker_state("svc") is BreakerState.OPEN
        assert code_of(await broker.invoke(ActionCall("svc"))) == ErrorCode.PROVIDER_UNAVAILABLE

        # Half-open again, the provider healthy: one probe at a time, then closed.
        now[0] = 20.0
        healthy[0] = True
        gate.clear()
        probe = asyncio.create_task(broker.invoke(ActionCall("svc")))
        await until(lambda: provider.runs == 5, "the probe runs")
        assert broker.breaker_state("svc") is BreakerState.HALF_OPEN
        second = await broker.invoke(ActionCall("svc"))
        assert code_of(second) == ErrorCode.PROVIDER_UNAVAILABLE
        gate.set()
        assert (await probe).output == b"up"
        assert broker.breaker_state("svc") is BreakerState.CLOSED
        assert (await broker.invoke(ActionCall("svc"))).output == b"up"
        # A call refused while the circuit was open was not remembered: its id runs now.
        assert (await broker.invoke(ActionCall("svc", id="while-open"))).output == b"up"


async def test_breaker_ignores_deliberate_errors_and_bad_input() -> None:
    provider = FunctionProvider(
        "strict",
        raising(CapabilityError("INVALID_QUERY", "empty")),
        metadata={"input_schema": json.dumps(SCHEMA)},
    )
    policy = CircuitBreakerPolicy(failure_threshold=1, reset_timeout_s=60)
    async with ActionBroker(breaker=policy) as broker:
        broker.register(provider)
        for _ in range(3):
            assert code_of(await broker.invoke(ActionCall("strict", b"{}"))) == "INVALID_PARAMS"
            assert code_of(await broker.invoke(ActionCall("strict", b'{"n":1}'))) == "INVALID_QUERY"
        assert broker.breaker_state("strict") is BreakerState.CLOSED


async def test_timeouts_count_as_failures() -> None:
    policy = CircuitBreakerPolicy(failure_threshold=2, reset_timeout_s=60)
    async with ActionBroker(breaker=policy) as broker:
        broker.register(FunctionProvider("slow", hang))
        for _ in range(2):
            assert code_of(await broker.invoke(ActionCall("slow", timeout_ms=10))) == "TIMEOUT"
        assert code_of(await broker.invoke(ActionCall("slow"))) == "PROVIDER_UNAVAILABLE"


def test_policy_and_broker_refuse_bad_settings() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreakerPolicy(failure_threshold=-1)
    with pytest.raises(ValueError, match="reset_timeout_s"):
        CircuitBreakerPolicy(reset_timeout_s=-1)
    with pytest.raises(ValueError, match="max_concurrency must be >= 1"):
        ActionBroker(max_concurrency=0)
    with pytest.raises(ValueError, match="default_timeout_ms"):
        ActionBroker(default_timeout_ms=0)
    with pytest.raises(ValueError, match="without a name"):
        ActionBroker().register(FunctionProvider("", answer(b"")))


# -- directory and lifecycle ------------------------------------------------------------------


async def test_directory_is_kept_current() -> None:
    directory = CapabilityDirectory()
    a1 = FunctionProvider("a", answer(b""), version="1.0")
    a2 = FunctionProvider("a", answer(b""), version="2.0", kind=ProviderKind.MCP)
    b = FunctionProvider("b", answer(b""), metadata={"desc": "bee"})
    broker = ActionBroker(directory=directory)
    assert broker.directory is directory
    for provider in (a1, a2, b):
        broker.register(provider)
    assert [(d.name, d.version) for d in directory.all()] == [
        ("a", "1.0"),
        ("a", "2.0"),
        ("b", "1.0"),
    ]
    assert directory.get("a").version == "2.0"  # type: ignore[union-attr]
    assert [d.name for d in directory.by_provider(ProviderKind.MCP)] == ["a"]
    assert directory.get("b").metadata == {"desc": "bee"}  # type: ignore[union-attr]
    assert broker.list_capabilities() == directory.all()

    removed = await broker.unregister("a", "2.0")
    assert [d.version for d in removed] == ["2.0"] and a2.closed and not a1.closed
    assert directory.versions("a") == ["1.0"]
    assert await broker.unregister("a", "9.9") == []
    assert await broker.unregister("nobody") == []

    await broker.aclose()
    assert len(directory) == 0 and a1.closed and b.closed
    assert code_of(await broker.invoke(ActionCall("b"))) == ErrorCode.NOT_FOUND


async def test_a_failing_close_is_logged_and_the_provider_still_goes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BadClose(FunctionProvider):
        async def close(self) -> None:
            raise OSError("socket gone")

    broker = ActionBroker()
    broker.register(BadClose("bad", answer(b"")))
    broker.register(FunctionProvider("good", answer(b"")))
    with caplog.at_level(logging.ERROR, logger="loom.actions"):
        await broker.aclose()
    assert "closing the provider of bad:1.0 failed" in caplog.text
    assert broker.list_capabilities() == []


async def test_list_capabilities_returns_copies() -> None:
    async with ActionBroker() as broker:
        broker.register(FunctionProvider("x", answer(b""), metadata={"k": "v"}))
        listed = broker.list_capabilities()
        listed[0].metadata["k"] = "changed"
        assert broker.list_capabilities()[0].metadata == {"k": "v"}
        assert broker.directory.get("x").metadata == {"k": "v"}  # type: ignore[union-attr]


# -- bench scenarios, at a tiny size -----------------------------------------------------------


async def test_bench_scenarios_report_their_figures() -> None:
    for scenario in (broker_invoke_native, python_call):
        figures = await scenario(0.005)
        assert [(f.metric, f.unit) for f in figures] == [
            ("p50_us", "us"),
            ("p99_us", "us"),
            ("throughput", "calls/s"),
        ]
        p50, p99, rate = (f.value for f in figures)
        assert 0 < p50 <= p99 and rate > 0


def test_importing_actions_and_tools_loads_no_validation_library() -> None:
    script = (
        "import sys, loom.actions, loom.tools\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'pydantic', 'pydantic_core', 'jsonschema', 'anyio'}))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_compiled_fast_path_agrees_with_jsonschema_on_both_verdicts():
    from loom.actions._schema import compile_input_validator

    schema = {
        "type": "object",
        "properties": {"text": {"type": "string"}, "n": {"type": "integer", "minimum": 0}},
        "required": ["text"],
        "additionalProperties": False,
    }
    validate = compile_input_validator("t", {"input_schema": json.dumps(schema)})
    assert validate is not None
    validate(b'{"text": "ok", "n": 2}')
    for payload, field in [
        (b'{"n": 2}', "$.text"),
        (b'{"text": "ok", "n": -1}', "$.n"),
        (b'{"text": 5}', "$.text"),
    ]:
        with pytest.raises(CapabilityError) as info:
            validate(payload)
        assert info.value.code == "INVALID_PARAMS"
        assert info.value.details["field"] == field
