"""A loaded WASM plugin: its manifest, grants and runner, and its calls (sync and async)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from loom.actions import CapabilityError, ErrorCode
from loom_wasm._classify import CallFailure
from loom_wasm._engine import TICK_MS
from loom_wasm._errors import ErrorKind, call_error
from loom_wasm._gate import Busy, Gate
from loom_wasm._inline import TINY_FRESH_S, TINY_S, CostWatch
from loom_wasm._manifest import CapabilitySpec, PluginManifest
from loom_wasm._policy import Granted

if TYPE_CHECKING:
    from loom_wasm._provider import WasmProvider

__all__ = ["GRACE_S", "Runner", "WasmPlugin"]

#: Extra wait beyond a call's deadline before the caller gives up on its worker thread.
GRACE_S = 0.25 + TICK_MS / 1000

_decode = json.JSONDecoder().decode


@dataclass(frozen=True, slots=True)
class _Cap:
    spec: CapabilitySpec
    export: str
    watch: CostWatch | None


class _Leashed(Exception):  # internal: an inline call outran the leash, run it on a worker
    """The inline leash, not the call's own deadline, stopped the call."""


class Runner(Protocol):
    """What runs a plugin's calls: ``CoreRunner`` or ``ComponentRunner``."""

    def probe(self) -> None: ...
    def call(self, export: str, payload: bytes, budget_ms: int, timeout_ms: int) -> bytes: ...
    def close(self) -> None: ...


class WasmPlugin:
    """A loaded plugin, ready to run its capabilities.

    Load one with :func:`~loom_wasm.load_plugin`. Calls run in worker threads (:meth:`invoke`) or in
    the calling thread (:meth:`call`); either way every limit is enforced.

    Attributes:
        manifest: the validated manifest.
        manifest_path: its file.
        module_path: the module's file.
        sha256: the module file's SHA-256.
        granted: what it was granted, its limits, and what was refused.
        imports: the module's imports, described.
        exports: the module's exports, described.
        cache: how the compiled code was obtained: ``hit``, ``miss`` or ``off: <reason>``.
    """

    def __init__(
        self,
        manifest: PluginManifest,
        manifest_path: Path,
        module_path: Path,
        sha256: str,
        granted: Granted,
        runner: Runner,
        imports: tuple[str, ...],
        exports: tuple[str, ...],
        cache: str,
    ) -> None:
        self.manifest = manifest
        self.manifest_path = manifest_path
        self.module_path = module_path
        self.sha256 = sha256
        self.granted = granted
        self.imports = imports
        self.exports = exports
        self.cache = cache
        self._runner = runner
        self._gate = Gate(manifest.name, granted.limits.max_concurrency)
        self._leash_ms = granted.inline_leash_ms
        self._caps: dict[tuple[str, str], _Cap] = {}
        tiny_s = TINY_S if granted.reuse else TINY_FRESH_S
        for spec in reversed(manifest.capabilities):  # the first listed wins for ""
            watch = CostWatch(tiny_s) if self._leash_ms else None
            cap = _Cap(spec, manifest.export_of(spec), watch)
            self._caps[spec.name, spec.version] = cap
            self._caps[spec.name, ""] = cap
        self._users = 0
        self._closed = False

    @property
    def name(self) -> str:
        """The plugin's name."""
        return self.manifest.name

    @property
    def in_flight(self) -> int:
        """Calls running or waiting now."""
        return self._gate.in_flight

    def capability(self, name: str, version: str = "") -> CapabilitySpec:
        """The capability ``name`` (of ``version``, or the first listed if empty).

        Raises:
            CapabilityError: ``NOT_FOUND`` when the plugin has no such capability.
        """
        return self._cap(name, version).spec

    def _cap(self, name: str, version: str) -> _Cap:
        cap = self._caps.get((name, version))
        if cap is not None:
            return cap
        offered = ", ".join(f"{s.name} {s.version}" for s in self.manifest.capabilities)
        raise CapabilityError(
            ErrorCode.NOT_FOUND,
            f"wasm plugin {self.name!r} has no capability {name!r}"
            f"{f' version {version!r}' if version else ''}; it offers {offered}",
        )

    def cost_watch(self, name: str, version: str = "") -> CostWatch | None:
        """A capability's observed cost, or None when it never goes inline on it.

        Raises:
            CapabilityError: ``NOT_FOUND`` when the plugin has no such capability.
        """
        return self._cap(name, version).watch

    def _timeout_ms(self, timeout_ms: int | None) -> int:
        limit = self.granted.limits.timeout_ms
        return min(limit, timeout_ms) if timeout_ms and timeout_ms > 0 else limit

    def _run(
        self, cap: _Cap, payload: bytes, timeout_ms: int, deadline: float, leash_ms: int
    ) -> bytes:
        """Run one call in this thread; ``leash_ms`` (if not 0) cuts its deadline.

        Raises:
            CallFailure: classified.
            _Leashed: the leash stopped it (its own deadline had not passed).
        """
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            raise CallFailure(
                ErrorKind.TIMEOUT,
                f"its {timeout_ms} ms deadline passed while the call waited for a worker",
                {"timeout_ms": str(timeout_ms)},
            )
        leashed = 0 < leash_ms < remaining_ms
        try:
            data = self._runner.call(
                cap.export,
                payload,
                leash_ms if leashed else remaining_ms,
                leash_ms if leashed else timeout_ms,
            )
        except CallFailure as failure:
            if leashed and failure.kind is ErrorKind.TIMEOUT:
                raise _Leashed from None
            raise
        try:
            _decode(data.decode())  # UnicodeDecodeError is a ValueError too
        except ValueError as exc:
            preview = data[:80].decode("utf-8", "replace")
            raise CallFailure(
                ErrorKind.OUTPUT,
                f"output is not UTF-8 JSON ({exc}); it starts {preview!r}",
                discard=False,
            ) from None
        return data

    def _check_open(self, spec: CapabilitySpec) -> None:
        if self._closed:
            raise CapabilityError(
                ErrorCode.PROVIDER_UNAVAILABLE,
                f"wasm plugin {self.name!r} is closed",
                details={"plugin": self.name, "capability": spec.name},
                retryable=True,
            )

    def _error(self, spec: CapabilitySpec, failure: CallFailure) -> CapabilityError:
        return call_error(
            failure.kind,
            failure.message,
            plugin=self.name,
            capability=spec.name,
            code=failure.code,
            details=failure.details,
        )

    def call(
        self, capability: str, payload: bytes, *, timeout_ms: int | None = None, version: str = ""
    ) -> bytes:
        """Run a capability in this thread and return its JSON output.

        Args:
            capability: its name.
            payload: UTF-8 JSON input.
            timeout_ms: a deadline shorter than the plugin's own, if any.
            version: the capability's version; empty for the first listed.

        Raises:
            CapabilityError: ``CAPABILITY_ERROR`` with ``details["kind"]`` (an
                :class:`ErrorKind`), ``NOT_FOUND``, or a code the guest chose.
        """
        cap = self._cap(capability, version)
        self._check_open(cap.spec)
        timeout = self._timeout_ms(timeout_ms)
        deadline = time.monotonic() + timeout / 1000
        try:
            return self._run(cap, payload, timeout, deadline, 0)
        except CallFailure as failure:
            raise self._error(cap.spec, failure) from None

    async def invoke(
        self, capability: str, payload: bytes, *, timeout_ms: int | None = None, version: str = ""
    ) -> bytes:
        """Run a capability off the event loop (or inline: below); same contract as :meth:`call`.

        At most ``limits.max_concurrency`` calls of this plugin run at once on its worker
        threads and a bounded number wait; beyond that, or after :meth:`close`, the call
        fails ``PROVIDER_UNAVAILABLE`` (retryable). Two cases run on the event loop's thread
        instead, blocking it for at most the policy's ``inline_max_ms``: every call when
        ``granted.inline`` (the plugin's deadline is within it), and, when
        ``granted.inline_leash_ms``, the calls of a capability seen to be tiny (a call that
        outruns the leash is re-run on a worker; see :class:`~loom_wasm._inline.CostWatch`).
        """
        cap = self._cap(capability, version)
        spec = cap.spec
        if self._closed:
            self._check_open(spec)
        timeout = self._timeout_ms(timeout_ms)
        deadline = time.monotonic() + timeout / 1000
        watch = cap.watch
        if self.granted.inline:
            try:
                return self._run(cap, payload, timeout, deadline, 0)
            except CallFailure as failure:
                raise self._error(spec, failure) from None
        if watch is not None and watch.inline:
            started = time.perf_counter()
            try:
                data = self._run(cap, payload, timeout, deadline, self._leash_ms)
            except _Leashed:
                # Run it again on a worker, below. The epoch can jump several ticks at once
                # (the ticker thread slept late), so only a call that ran about as long as
                # the leash proves that the capability is not tiny; a shorter one counts
                # as what it took.
                elapsed = time.perf_counter() - started
                if elapsed * 2000 >= self._leash_ms:
                    watch.demote()
                else:
                    watch.saw_inline(elapsed)
            except CallFailure as failure:
                watch.saw_inline(time.perf_counter() - started)
                raise self._error(spec, failure) from None
            else:
                watch.saw_inline(time.perf_counter() - started)
                return data
        work = (
            partial(self._run, cap, payload, timeout, deadline, 0)
            if watch is None
            else partial(self._timed_run, cap, watch, payload, timeout, deadline)
        )
        try:
            return await self._gate.run(work, timeout / 1000 + GRACE_S)
        except CallFailure as failure:
            raise self._error(spec, failure) from None
        except Busy as exc:
            raise CapabilityError(
                ErrorCode.PROVIDER_UNAVAILABLE,
                f"wasm plugin {self.name!r}: {exc}",
                details={"plugin": self.name, "capability": spec.name},
                retryable=True,
            ) from None
        except TimeoutError:
            late = CallFailure(
                ErrorKind.TIMEOUT,
                f"did not finish within its {timeout} ms deadline (blocked in a host call); its "
                "worker stays busy until the guest returns",
                {"timeout_ms": str(timeout)},
            )
            raise self._error(spec, late) from None

    def _timed_run(
        self, cap: _Cap, watch: CostWatch, payload: bytes, timeout: int, deadline: float
    ) -> bytes:
        started = time.perf_counter()
        try:
            return self._run(cap, payload, timeout, deadline, 0)
        finally:
            watch.saw(time.perf_counter() - started)

    def providers(self) -> list[WasmProvider]:
        """One :class:`~loom_wasm.WasmProvider` per capability; the last one closed closes this."""
        from loom_wasm._provider import WasmProvider

        made = [WasmProvider(self, spec) for spec in self.manifest.capabilities]
        self._users += len(made)
        return made

    def release(self) -> None:
        """A provider let go; close when none holds this plugin any more."""
        self._users -= 1
        if self._users <= 0:
            self.close()

    def close(self) -> None:
        """Refuse new calls, drop waiting ones and close reused instances."""
        if self._closed:
            return
        self._closed = True
        self._gate.close()
        self._runner.close()

    def describe(self) -> dict[str, object]:
        """What ``loom wasm inspect`` shows: manifest, grants, refusals, imports, exports."""
        granted = self.granted
        return {
            "name": self.name,
            "version": self.manifest.version,
            "abi": self.manifest.abi,
            "manifest": str(self.manifest_path),
            "module": str(self.module_path),
            "sha256": self.sha256,
            "cache": self.cache,
            "reuse_instance": granted.reuse,
            "inline": granted.inline,
            "inline_leash_ms": granted.inline_leash_ms,
            "limits": granted.limits.model_dump(),
            "granted": {
                "dirs": [
                    {"host": str(d.host), "guest": d.guest, "mode": "rw" if d.writable else "ro"}
                    for d in granted.dirs
                ],
                "env": [name for name, _ in granted.env],
                "clock": granted.clock,
            },
            "refused": list(granted.refused),
            "imports": list(self.imports),
            "exports": list(self.exports),
            "capabilities": [
                {**spec.model_dump(), "export": self.manifest.export_of(spec)}
                for spec in self.manifest.capabilities
            ],
        }
