"""The broker's eager first step: a call that suspends is resumed exactly as ``await``
would have (values, exceptions, cancellation, timeouts), and one that does not suspend
never arms a timer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator
from typing import Any

import pytest

from loom import ActionCall, ActionStatus, CapabilityDescriptor, ProviderKind
from loom.actions import ActionBroker, ErrorCode, Provider
from loom.actions._eager import Resume


class Steps(Provider):
    """Suspends ``hops`` times (on futures the test or the loop resolves), then answers."""

    def __init__(self, name: str, hops: int, *, catch_cancel: bool = False) -> None:
        self.descriptor = CapabilityDescriptor(name, "1.0", ProviderKind.NATIVE, {})
        self.hops = hops
        self.catch_cancel = catch_cancel
        self.seen: list[int] = []
        self.cleaned_up = asyncio.Event()

    async def invoke(self, call: ActionCall) -> bytes:
        loop = asyncio.get_running_loop()
        self.seen.clear()
        try:
            for hop in range(self.hops):
                future: asyncio.Future[int] = loop.create_future()
                loop.call_soon(future.set_result, hop)
                self.seen.append(await future)
                await asyncio.sleep(0)  # a bare yield (None) passes through too
            await asyncio.sleep(float(call.payload or b"0"))
            return b"steps:%d" % len(self.seen)
        except asyncio.CancelledError:
            if self.catch_cancel:
                return b"caught"
            raise
        finally:
            self.cleaned_up.set()


class NotACoroutine(Provider):
    """Returns a plain future from ``invoke``: the broker must await it under the timeout."""

    def __init__(self) -> None:
        self.descriptor = CapabilityDescriptor("future", "1.0", ProviderKind.NATIVE, {})

    def invoke(self, call: ActionCall) -> Awaitable[bytes]:  # type: ignore[override]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        if call.payload != b"never":
            loop.call_later(0.001, future.set_result, b"from a future")
        return future


async def test_a_suspending_provider_is_resumed_with_every_value() -> None:
    async with ActionBroker() as broker:
        steps = Steps("steps", hops=5)
        broker.register(steps)
        result = await broker.invoke(ActionCall("steps"))
        assert result.status is ActionStatus.OK, result.error
        assert result.output == b"steps:5"
        assert steps.seen == [0, 1, 2, 3, 4]


async def test_a_provider_that_suspends_then_overruns_times_out_and_cleans_up() -> None:
    async with ActionBroker() as broker:
        steps = Steps("slow", hops=2)
        broker.register(steps)
        result = await broker.invoke(ActionCall("slow", b"10", timeout_ms=30))
        assert result.status is ActionStatus.TIMEOUT
        assert result.error is not None and result.error.details["phase"] == "running"
        assert steps.cleaned_up.is_set()  # the CancelledError reached the provider


async def test_cancelling_the_caller_cancels_the_resumed_provider() -> None:
    async with ActionBroker() as broker:
        steps = Steps("slow", hops=1)
        broker.register(steps)
        task = asyncio.create_task(broker.invoke(ActionCall("slow", b"10")))
        while not steps.seen:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert steps.cleaned_up.is_set()
        assert (await broker.invoke(ActionCall("slow", b"0"))).output == b"steps:1"


async def test_a_provider_that_swallows_the_timeout_still_answers_timeout() -> None:
    # asyncio.timeout turns the cancellation it caused into TimeoutError only if it
    # propagates; a provider that catches it and answers is answered as it chose.
    async with ActionBroker() as broker:
        broker.register(Steps("stubborn", hops=1, catch_cancel=True))
        result = await broker.invoke(ActionCall("stubborn", b"10", timeout_ms=30))
        assert result.status is ActionStatus.OK
        assert result.output == b"caught"


async def test_a_provider_returning_a_plain_awaitable_is_awaited_under_the_timeout() -> None:
    async with ActionBroker() as broker:
        broker.register(NotACoroutine())
        assert (await broker.invoke(ActionCall("future"))).output == b"from a future"
        late = await broker.invoke(ActionCall("future", b"never", timeout_ms=20))
        assert late.status is ActionStatus.TIMEOUT
        assert late.error is not None and late.error.code == ErrorCode.TIMEOUT


async def test_a_call_that_never_suspends_arms_no_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    class Instant(Provider):
        descriptor = CapabilityDescriptor("instant", "1.0", ProviderKind.NATIVE, {})

        async def invoke(self, call: ActionCall) -> bytes:
            return b"now"

    loop = asyncio.get_running_loop()
    scheduled: list[Any] = []
    original = loop.call_at

    def counting_call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        scheduled.append(callback)
        return original(when, callback, *args, **kwargs)

    async with ActionBroker() as broker:
        broker.register(Instant())
        monkeypatch.setattr(loop, "call_at", counting_call_at)
        for _ in range(10):
            assert (await broker.invoke(ActionCall("instant"))).output == b"now"
        monkeypatch.undo()
    assert scheduled == []


def test_resume_closes_the_coroutine_when_it_is_closed() -> None:
    closed: list[bool] = []

    async def inner() -> int:
        try:
            await asyncio.sleep(10)
        finally:
            closed.append(True)
        return 1

    async def drive() -> None:
        coro = inner()
        pending = coro.send(None)
        awaiting: Generator[Any, Any, Any] = Resume(coro, pending).__await__()
        assert next(awaiting) is pending
        awaiting.close()
        assert closed == [True]
        pending.cancel()

    asyncio.run(drive())
