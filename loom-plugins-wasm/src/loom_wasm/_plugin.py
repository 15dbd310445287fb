"""A loaded WASM plugin: its manifest, grants and runner, and its calls (sync and async)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from loom.actions import CapabilityError, ErrorCode
from loom_wasm._classify import CallFailure
from loom_wasm._engine import TICK_MS
from loom_wasm._errors import ErrorKind, call_error
from loom_wasm._gate import Busy, Gate
from loom_wasm._manifest import CapabilitySpec, PluginManifest
from loom_wasm._policy import Granted

if TYPE_CHECKING:
    from loom_wasm._provider import WasmProvider

__all__ = ["GRACE_S", "Runner", "WasmPlugin"]

#: Extra wait beyond a call's deadline before the caller gives up on its worker thread.
GRACE_S = 0.25 + TICK_MS / 1000


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
        for spec in self.manifest.capabilities:
            if spec.name == name and (not version or spec.version == version):
                return spec
        offered = ", ".join(f"{s.name} {s.version}" for s in self.manifest.capabilities)
        raise CapabilityError(
            ErrorCode.NOT_FOUND,
            f"wasm plugin {self.name!r} has no capability {name!r}"
            f"{f' version {version!r}' if version else ''}; it offers {offered}",
        )

    def _timeout_ms(self, timeout_ms: int | None) -> int:
        limit = self.granted.limits.timeout_ms
        return min(limit, timeout_ms) if timeout_ms and timeout_ms > 0 else limit

    def _run(self, spec: CapabilitySpec, payload: bytes, timeout_ms: int, deadline: float) -> bytes:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            raise CallFailure(
                ErrorKind.TIMEOUT,
                f"its {timeout_ms} ms deadline passed while the call waited for a worker",
                {"timeout_ms": str(timeout_ms)},
            )
        export = self.manifest.export_of(spec)
        data = self._runner.call(export, payload, remaining_ms, timeout_ms)
        try:
            json.loads(data)
        except ValueError as exc:  # UnicodeDecodeError is a ValueError too
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
        spec = self.capability(capability, version)
        self._check_open(spec)
        timeout = self._timeout_ms(timeout_ms)
        deadline = time.monotonic() + timeout / 1000
        try:
            return self._run(spec, payload, timeout, deadline)
        except CallFailure as failure:
            raise self._error(spec, failure) from None

    async def invoke(
        self, capability: str, payload: bytes, *, timeout_ms: int | None = None, version: str = ""
    ) -> bytes:
        """Run a capability on a worker thread, off the event loop; same contract as :meth:`call`.

        With ``granted.inline`` (a deadline within the policy's ``inline_max_ms``) the call
        runs on the event loop's thread instead, blocking it for at most that deadline.
        Otherwise at most ``limits.max_concurrency`` calls of this plugin run at once and a
        bounded number wait; beyond that, or after :meth:`close`, the call fails
        ``PROVIDER_UNAVAILABLE`` (retryable).
        """
        spec = self.capability(capability, version)
        self._check_open(spec)
        timeout = self._timeout_ms(timeout_ms)
        deadline = time.monotonic() + timeout / 1000
        if self.granted.inline:
            try:
                return self._run(spec, payload, timeout, deadline)
            except CallFailure as failure:
                raise self._error(spec, failure) from None
        try:
            return await self._gate.run(
                lambda: self._run(spec, payload, timeout, deadline), timeout / 1000 + GRACE_S
            )
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
