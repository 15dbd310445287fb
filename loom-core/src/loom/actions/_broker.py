"""The ActionBroker: the registry of capabilities and the one way to invoke them."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import CoroutineType, TracebackType

from loom._action import ActionCall, ActionResult, ActionStatus, CapabilityDescriptor
from loom._envelope import DEFAULT_TTL, Envelope
from loom.actions._breaker import BreakerState, CircuitBreaker, CircuitBreakerPolicy
from loom.actions._eager import Resume
from loom.actions._native import NativeProvider
from loom.actions._provider import CapabilityError, ErrorCode, Provider
from loom.actions._results import (
    TIMED_OUT,
    copy_result,
    failure,
    from_capability_error,
    is_cacheable,
)
from loom.actions._schema import PayloadValidator, compile_input_validator
from loom.contributions import Capability
from loom.directory import CapabilityDirectory, _version_key
from loom.telemetry import _switch
from loom.topics import thread_reply_topic

__all__ = ["ActionBroker", "BrokerStats"]

log = logging.getLogger("loom.actions")

_DEFAULT_TTL = str(DEFAULT_TTL)
_BREAKER_FAILURES = frozenset({ErrorCode.PROVIDER_UNAVAILABLE, ErrorCode.TIMEOUT})


@dataclass
class BrokerStats:
    """Counters of one broker since it was made.

    Attributes:
        ok: calls that returned ACTION_OK from a provider.
        failed: calls that did not, by error code (NOT_FOUND, TIMEOUT, ...).
        cache_hits: repeated call ids answered from the idempotency cache.
        joined: repeated call ids that waited for the first one still running.
        by_capability: calls by capability name, then by outcome: ``"OK"`` or the error
            code. Calls for a capability that is not registered count under ``""``, so
            that names callers make up cannot grow this without bound.
    """

    ok: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    joined: int = 0
    by_capability: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class _Entry:
    provider: Provider
    descriptor: CapabilityDescriptor
    validate: PayloadValidator | None
    slots: asyncio.Semaphore
    breaker: CircuitBreaker
    waiting: int = 0


class ActionBroker:
    """Registry of capabilities; runs :class:`~loom.ActionCall` through their providers.

    :meth:`invoke` never raises for a problem with the call: every outcome is an
    :class:`~loom.ActionResult` (see ``docs/actions.md`` for the codes). It gives every
    provider kind the same rules: envelope headers filled in, idempotency by call id,
    version selection, input validation, a timeout, a bound on concurrent calls and a
    circuit breaker.

    Args:
        default_timeout_ms: the timeout of a call whose ``timeout_ms`` is 0 or less.
        idempotency_size: results remembered by call id (least recently used go first);
            0 remembers none.
        max_concurrency: calls one provider runs at once, unless it sets its own
            ``max_concurrency``.
        max_waiting: calls that may wait for a provider's free slot; more are answered
            PROVIDER_UNAVAILABLE at once.
        breaker: when a failing provider's circuit opens and is probed again.
        directory: kept current as providers come and go; a new one when None.
        clock: monotonic seconds, for the circuit breaker.

    Example:
        >>> import asyncio
        >>> from loom import ActionCall
        >>> @capability("echo")
        ... async def echo(text: str) -> str:
        ...     return text
        >>> async def main() -> bytes:
        ...     async with ActionBroker() as broker:
        ...         broker.register(NativeProvider(echo))
        ...         return (await broker.invoke(ActionCall("echo", b'{"text":"hi"}'))).output
        >>> asyncio.run(main())
        b'"hi"'
    """

    def __init__(
        self,
        *,
        default_timeout_ms: int = 30_000,
        idempotency_size: int = 1024,
        max_concurrency: int = 64,
        max_waiting: int = 1024,
        breaker: CircuitBreakerPolicy | None = None,
        directory: CapabilityDirectory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for label, value, low in (
            ("default_timeout_ms", default_timeout_ms, 1),
            ("idempotency_size", idempotency_size, 0),
            ("max_concurrency", max_concurrency, 1),
            ("max_waiting", max_waiting, 0),
        ):
            if value < low:
                raise ValueError(f"{label} must be >= {low}, got {value}")
        self.default_timeout_ms = default_timeout_ms
        self.idempotency_size = idempotency_size
        self.max_concurrency = max_concurrency
        self.max_waiting = max_waiting
        self.breaker_policy = breaker or CircuitBreakerPolicy()
        self.directory = CapabilityDirectory() if directory is None else directory
        self.stats = BrokerStats()
        self._clock = clock
        self._entries: dict[str, dict[str, _Entry]] = {}
        self._latest: dict[str, _Entry] = {}
        self._results: OrderedDict[str, ActionResult] = OrderedDict()
        # Calls running now, by id; a future only once a duplicate waits for one.
        self._running: dict[str, asyncio.Future[ActionResult] | None] = {}

    async def __aenter__(self) -> ActionBroker:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- registry -------------------------------------------------------------------------

    def register(self, provider: Provider) -> Provider | None:
        """Add a provider under its descriptor's name and version.

        A provider already registered under the same name and version is replaced (calls
        go to the new one) and returned, so that its owner can close it.

        Raises:
            ValueError: the descriptor has no name.
        """
        descriptor = provider.descriptor
        if not descriptor.name:
            raise ValueError(f"provider {provider!r} has a descriptor without a name")
        descriptor = dataclasses.replace(descriptor, metadata=dict(descriptor.metadata))
        validate = None
        if not provider.validates_input:
            validate = compile_input_validator(descriptor.name, descriptor.metadata)
        limit = provider.max_concurrency or self.max_concurrency
        entry = _Entry(
            provider,
            descriptor,
            validate,
            asyncio.Semaphore(limit),
            CircuitBreaker(self.breaker_policy, self._clock),
        )
        versions = self._entries.setdefault(descriptor.name, {})
        old = versions.get(descriptor.version)
        versions[descriptor.version] = entry
        self._latest[descriptor.name] = versions[max(versions, key=_version_key)]
        self.directory.register(descriptor)
        return None if old is None or old.provider is provider else old.provider

    def register_contribution(self, capability: Capability) -> NativeProvider:
        """Register a ``loom_capabilities`` record (its handler a plain or
        :func:`~loom.actions.capability` function) and return its provider."""
        provider = NativeProvider.from_contribution(capability)
        self.register(provider)
        return provider

    def register_contributions(self, capabilities: Iterable[Capability]) -> list[NativeProvider]:
        """Register every record, e.g. ``host.capabilities()``."""
        return [self.register_contribution(c) for c in capabilities]

    async def unregister(self, name: str, version: str | None = None) -> list[CapabilityDescriptor]:
        """Remove one version of a capability, or every version, and close their providers.

        A provider whose ``close()`` fails is logged; it is removed all the same. Calls
        already running go on with the provider they started with.

        Returns:
            The descriptors removed (none for an unknown name or version).
        """
        versions = self._entries.get(name)
        if versions is None:
            return []
        if version is None:
            removed = list(versions.values())
            versions.clear()
        else:
            gone = versions.pop(version, None)
            removed = [] if gone is None else [gone]
        if versions:
            self._latest[name] = versions[max(versions, key=_version_key)]
        else:
            self._entries.pop(name, None)
            self._latest.pop(name, None)
        for entry in removed:
            self.directory.unregister(name, entry.descriptor.version)
        for entry in removed:
            try:
                await entry.provider.close()
            except Exception:  # a provider's close must not stop the others
                log.exception(
                    "closing the provider of %s:%s failed", name, entry.descriptor.version
                )
        return [e.descriptor for e in removed]

    async def aclose(self) -> None:
        """Unregister every capability, closing every provider."""
        for name in sorted(self._entries):
            await self.unregister(name)

    def list_capabilities(self) -> list[CapabilityDescriptor]:
        """Every registered capability, by name then version (copies)."""
        return [
            dataclasses.replace(e.descriptor, metadata=dict(e.descriptor.metadata))
            for name in sorted(self._entries)
            for e in sorted(self._entries[name].values(), key=_entry_version)
        ]

    def describe(self, name: str, version: str = "") -> CapabilityDescriptor | None:
        """The descriptor a call for ``name`` at ``version`` would run ("" = newest), or None."""
        entry = self._resolve(name, version)
        return None if entry is None else dataclasses.replace(entry.descriptor)

    def provider(self, name: str, version: str = "") -> Provider | None:
        """The provider a call for ``name`` at ``version`` would run ("" = newest), or None."""
        entry = self._resolve(name, version)
        return None if entry is None else entry.provider

    def breaker_state(self, name: str, version: str = "") -> BreakerState | None:
        """The circuit state of the provider a call would run, or None."""
        entry = self._resolve(name, version)
        return None if entry is None else entry.breaker.state

    def _resolve(self, name: str, version: str) -> _Entry | None:
        if version:
            versions = self._entries.get(name)
            return None if versions is None else versions.get(version)
        return self._latest.get(name)

    # -- invoke ---------------------------------------------------------------------------

    async def invoke(self, call: ActionCall) -> ActionResult:
        """Run ``call`` and return its result; never raises for a problem with the call.

        In order: the envelope headers are filled in (a missing thread id becomes the call
        id) and ``call.correlation_id`` is set; a result remembered for ``call.id`` is
        returned (or, while that call still runs, awaited); the capability is looked up
        (an empty version takes the newest); the circuit breaker is asked; the payload is
        validated; the provider runs within the timeout and the concurrency bound.

        With tracing on (:mod:`loom.telemetry`) the call is an invoke span, and the
        provider's run a child span whose W3C ``traceparent`` is written into
        ``call.headers``.
        """
        trace = _switch.invoke  # None unless tracing is on: then no telemetry code runs
        if trace is not None:
            return await trace(call, self._invoke)
        return await self._invoke(call)

    async def _invoke(self, call: ActionCall) -> ActionResult:
        _fill_envelope(call)
        call_id = call.id
        results = self._results
        cached = results.get(call_id)
        if cached is not None:
            results.move_to_end(call_id)
            self.stats.cache_hits += 1
            return copy_result(cached)
        if call_id in self._running:
            return await self._join(call)
        entry = self._resolve(call.capability, call.version)
        if entry is None:
            return self._count(self._not_found(call), "")
        running = self._running
        running[call_id] = None
        try:
            result = await self._execute(entry, call)
        except BaseException:
            waiters = running.pop(call_id, None)
            if waiters is not None:
                waiters.cancel()  # they run the call themselves (see _join)
            raise
        waiters = running.pop(call_id, None)
        if self.idempotency_size and is_cacheable(result):
            results[call_id] = result
            if len(results) > self.idempotency_size:
                results.popitem(last=False)
        if waiters is not None:
            waiters.set_result(result)
        return self._count(result, entry.descriptor.name)

    async def _join(self, call: ActionCall) -> ActionResult:
        """Wait for the call with the same id that is running now, and share its result."""
        future = self._running[call.id]
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._running[call.id] = future
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and (task is None or not task.cancelling()):
                # The first caller was cancelled, not us: the call is ours to run now
                # (inside our caller's invoke span, if tracing: not a second one).
                return await self._invoke(call)
            raise
        self.stats.joined += 1
        return copy_result(result)

    async def _execute(self, entry: _Entry, call: ActionCall) -> ActionResult:
        breaker = entry.breaker
        if not breaker.admit():
            return self._unavailable(entry, call, "circuit_open", breaker.retry_after_s())
        timeout_ms = call.timeout_ms if call.timeout_ms > 0 else self.default_timeout_ms
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        slots = entry.slots
        reached = False  # whether the provider was called
        scope: asyncio.Timeout | None = None  # armed only where the call has to wait
        try:
            if slots.locked():
                if entry.waiting >= self.max_waiting:
                    breaker.released()
                    return self._unavailable(entry, call, "overloaded", 0.0)
                entry.waiting += 1
                try:
                    async with asyncio.timeout_at(deadline) as scope:
                        await slots.acquire()
                finally:
                    entry.waiting -= 1
            else:
                await slots.acquire()  # free: returns without suspending
            try:
                if entry.validate is not None:
                    entry.validate(call.payload)
                reached = True
                run = _switch.capability  # None unless tracing is on
                if run is None:
                    awaitable = entry.provider.invoke(call)
                else:
                    awaitable = run(entry.provider, entry.descriptor, call)
                if type(awaitable) is CoroutineType:
                    try:
                        pending = awaitable.send(None)
                    except StopIteration as done:
                        output = done.value  # finished without waiting: no timer needed
                    else:
                        async with asyncio.timeout_at(deadline) as scope:
                            output = await Resume(awaitable, pending)
                else:
                    async with asyncio.timeout_at(deadline) as scope:
                        output = await awaitable
            finally:
                slots.release()
        except TimeoutError as exc:
            if not reached:
                breaker.released()
            else:
                self._failed(entry)
            expired = scope is not None and scope.expired()
            return failure(
                call.id,
                ErrorCode.TIMEOUT,
                TIMED_OUT if expired else str(exc) or TIMED_OUT,
                {"timeout_ms": str(timeout_ms), "phase": "running" if reached else "queued"},
                ActionStatus.TIMEOUT,
            )
        except CapabilityError as exc:
            if not reached:
                breaker.released()  # our own validation refused it
            elif exc.retryable or exc.code in _BREAKER_FAILURES:
                self._failed(entry)
            else:
                breaker.succeeded()  # the provider answered, deliberately
            return from_capability_error(call.id, exc)
        except asyncio.CancelledError:
            breaker.released()
            raise
        except Exception as exc:  # any provider failure is the caller's result
            self._failed(entry)
            log.warning(
                "capability %s:%s raised %s: %s",
                entry.descriptor.name,
                entry.descriptor.version,
                type(exc).__name__,
                exc,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            return failure(call.id, ErrorCode.CAPABILITY_ERROR, str(exc) or type(exc).__name__)
        breaker.succeeded()
        return ActionResult(call.id, ActionStatus.OK, output)

    def _failed(self, entry: _Entry) -> None:
        breaker = entry.breaker
        was_open = breaker.state is BreakerState.OPEN
        breaker.failed()
        if not was_open and breaker.state is BreakerState.OPEN:
            d = entry.descriptor
            log.warning(
                "circuit of %s:%s opened after %d consecutive failures; probing again in %g s",
                d.name,
                d.version,
                breaker.consecutive_failures,
                breaker.policy.reset_timeout_s,
            )

    def _unavailable(
        self, entry: _Entry, call: ActionCall, reason: str, retry_after_s: float
    ) -> ActionResult:
        d = entry.descriptor
        if reason == "circuit_open":
            text = f"capability {d.name}:{d.version} is unavailable: its circuit is open"
        else:
            text = f"capability {d.name}:{d.version} is overloaded: {self.max_waiting} calls wait"
        details = {"reason": reason}
        if retry_after_s:
            details["retry_after_ms"] = str(int(retry_after_s * 1000))
        return failure(call.id, ErrorCode.PROVIDER_UNAVAILABLE, text, details)

    def _not_found(self, call: ActionCall) -> ActionResult:
        versions = self._entries.get(call.capability)
        if versions:
            have = ", ".join(sorted(versions, key=_version_key))
            text = f"capability {call.capability!r} has no version {call.version!r} (has {have})"
        else:
            text = f"no capability named {call.capability!r}"
        return failure(call.id, ErrorCode.NOT_FOUND, text, {"capability": call.capability})

    def _count(self, result: ActionResult, capability: str) -> ActionResult:
        error = result.error
        stats = self.stats
        if error is None:
            stats.ok += 1
            code = "OK"
        else:
            code = error.code
            stats.failed[code] = stats.failed.get(code, 0) + 1
        codes = stats.by_capability.get(capability)
        if codes is None:
            codes = stats.by_capability[capability] = {}
        codes[code] = codes.get(code, 0) + 1
        return result


def _entry_version(entry: _Entry) -> tuple[tuple[int, int | str], ...]:
    return _version_key(entry.descriptor.version)


def _fill_envelope(call: ActionCall) -> None:
    """Envelope headers on the call (AC1.3), the call's own correlation id kept if set."""
    headers = call.headers
    if not headers:
        # What Envelope.from_metadata gives for no headers, without its fourteen lookups:
        # most in-process calls come without an envelope.
        thread_id = call.id
        correlation_id = call.correlation_id or thread_id
        headers["thread_id"] = thread_id
        headers["correlation_id"] = correlation_id
        headers["sender"] = ""
        headers["reply_to"] = thread_reply_topic(thread_id)
        headers["ttl"] = _DEFAULT_TTL
        headers["hop"] = "0"
        headers["ts"] = str(time.time_ns() // 1_000_000)
        call.correlation_id = correlation_id
        return
    if call.correlation_id and "correlation_id" not in headers:
        headers["correlation_id"] = call.correlation_id
    envelope = Envelope.from_metadata(headers, call.id)
    headers.update(envelope.to_metadata())
    call.correlation_id = envelope.correlation_id
