"""Running cap-v1 core modules: a fresh Store and instance per call, or a pool of reused ones.

Per plugin, once: link WASI (with ``poll_oneoff`` and, unless granted, the clocks shadowed
by stubs that answer ENOTSUP) and pre-instantiate. Per call: a Store with the memory cap
and a WasiConfig holding only the granted directories and variables, armed with fuel and
an epoch deadline before any guest code runs, so the start function, ``_initialize`` and
the call share one budget (and one inline leash); then the call and ``store.close()``. A
reused instance is re-armed with fuel and a deadline before every call and dropped after any
failure other than one the guest reported itself.
"""

from __future__ import annotations

import ctypes
import threading
from typing import TYPE_CHECKING, Any

from loom_wasm import _fastcall as fast
from loom_wasm._abi import ABI_VERSION, WASI_P1, CoreShape
from loom_wasm._classify import CallFailure, classify, decode_guest_error
from loom_wasm._engine import close_at_exit, deadline_ticks, engine, ticker
from loom_wasm._errors import ErrorKind

if TYPE_CHECKING:
    import wasmtime

    from loom_wasm._policy import Granted

__all__ = ["CoreRunner"]

#: WASI errno "not supported", returned by the stubs.
ENOTSUP = 58
_STDERR_CAP = 4096
_u64 = ctypes.c_uint64
_ERROR_FLAG = 1 << 31


class _Capped:
    """A WASI stderr sink that keeps the first few KiB."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = bytearray()

    def __call__(self, chunk: bytes) -> None:
        room = _STDERR_CAP - len(self.data)
        if room > 0:
            self.data += chunk[:room]


def _stub(*_args: Any) -> int:
    return ENOTSUP


def _link(module: wasmtime.Module, shape: CoreShape, clock: bool) -> wasmtime.InstancePre:
    import wasmtime

    linker = wasmtime.Linker(engine())
    if shape.wasi:
        linker.define_wasi()
        linker.allow_shadowing = True
        i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
        stubs = {"poll_oneoff": wasmtime.FuncType([i32, i32, i32, i32], [i32])}
        if not clock:
            stubs["clock_time_get"] = wasmtime.FuncType([i32, i64, i32], [i32])
            stubs["clock_res_get"] = wasmtime.FuncType([i32, i32], [i32])
        for name, ty in stubs.items():
            linker.define_func(WASI_P1, name, ty, _stub)
    return linker.instantiate_pre(module)


class _Live:
    """One instance in its own Store."""

    __slots__ = (
        "alloc",
        "context",
        "funcs",
        "instance",
        "memory",
        "stderr",
        "store",
        "store_cap",
    )

    def __init__(self, runner: CoreRunner) -> None:
        """The Store alone, capped and configured: no guest code runs yet."""
        import wasmtime

        self.store = store = wasmtime.Store(engine())
        self.store_cap = runner.memory_cap
        self.memory: fast.GuestMemory | None = None
        self.stderr: _Capped | None = None
        try:
            store.set_limits(memory_size=runner.memory_cap, instances=1, memories=1)
            if runner.shape.wasi:
                config = wasmtime.WasiConfig()
                for grant in runner.granted.dirs:
                    config.preopen_dir(str(grant.host), grant.guest, grant.writable)
                if runner.granted.env:
                    config.env = [list(pair) for pair in runner.granted.env]
                self.stderr = _Capped()
                config.stderr_custom = self.stderr
                store.set_wasi(config)
            self.context = fast.context_of(store)
        except BaseException:
            store.close()
            raise

    def start(self, runner: CoreRunner, fuel: int, ticks: int) -> None:
        """Arm the Store, then instantiate (the start function included) and run ``_initialize``.

        Every guest instruction of it runs under ``fuel`` and the deadline ``ticks`` away,
        and every byte of memory under the cap: the call that follows shares them. On
        failure the caller classifies (:meth:`memory_size` tells a memory bomb) and closes.
        """
        fast.arm(self.context, _u64(fuel), _u64(ticks))
        self.instance = instance = fast.instantiate(runner.pre, self.store)
        self.memory = instance.memory()
        self.alloc = instance.func("cap_alloc", 1, 1)
        self.funcs: dict[str, fast.BoundFunc] = {}  # bound on first use
        if runner.shape.initialize:
            instance.func("_initialize", 0, 0).call0()

    def arm(self, fuel: ctypes.c_uint64, ticks: ctypes.c_uint64) -> None:
        fast.arm(self.context, fuel, ticks)

    def memory_size(self) -> int | None:
        return self.memory.size() if self.memory is not None else None

    def run(self, export: str, payload: bytes, max_output: int) -> bytes:
        assert self.memory is not None
        if self.stderr is not None:
            self.stderr.data.clear()
        size = len(payload)
        try:
            ptr = self.alloc.i32(size) & 0xFFFF_FFFF
        except Exception as exc:
            cap = self.store_cap
            if size + self.memory.size() > cap:
                raise CallFailure(
                    ErrorKind.MEMORY,
                    f"an input of {size} bytes does not fit under the memory cap of {cap} bytes",
                    {"memory_bytes": str(cap)},
                ) from exc
            raise
        try:
            self.memory.write(ptr, payload)
        except fast.OutOfBounds as exc:
            raise CallFailure(ErrorKind.ABI, f"cap_alloc({size}) returned {ptr}: {exc}") from None
        func = self.funcs.get(export)
        if func is None:
            func = self.funcs[export] = self.instance.func(export, 2, 1)
        packed = func.i64_of_2(ptr, size)
        out_ptr, low = packed >> 32, packed & 0xFFFF_FFFF
        out_len = low & ~_ERROR_FLAG
        if out_len > max_output:
            raise CallFailure(
                ErrorKind.OUTPUT,
                f"output of {out_len} bytes is over the cap of {max_output} bytes",
                {"max_output_bytes": str(max_output)},
                discard=False,
            )
        try:
            data = self.memory.read(out_ptr, out_len)
        except fast.OutOfBounds as exc:
            raise CallFailure(ErrorKind.ABI, f"{export} returned an output range {exc}") from None
        if low & _ERROR_FLAG:
            raise decode_guest_error(data)
        return data

    def close(self) -> None:
        self.store.close()


class CoreRunner:
    """Runs the capabilities of one cap-v1 module.

    Attributes:
        granted: what the plugin was granted (limits included).
        shape: what the loader learned about the module.
        exports: the capability exports.
    """

    def __init__(
        self, module: wasmtime.Module, shape: CoreShape, granted: Granted, exports: set[str]
    ) -> None:
        self.granted = granted
        self.shape = shape
        self.exports = frozenset(exports)
        self.memory_cap = granted.limits.memory_bytes
        self.pre = _link(module, shape, granted.clock)
        self._pool: list[_Live] = []
        self._lock = threading.Lock()
        self._closed = False
        # read on every call
        self._reuse = granted.reuse
        self._fuel = granted.limits.fuel
        self._fuel_arg = _u64(self._fuel)
        self._max_output = granted.limits.max_output_bytes
        self._ticker = ticker()
        close_at_exit(self)

    def probe(self) -> None:
        """Instantiate once and check ``cap_abi_version()``; raises ValueError if wrong."""
        limits = self.granted.limits
        clock = ticker()
        clock.enter()
        try:
            try:
                live = self._fresh(
                    limits.fuel, deadline_ticks(limits.timeout_ms), limits.timeout_ms
                )
            except CallFailure as failure:
                raise ValueError(f"instantiation failed: {failure.message}") from failure
            try:
                version = live.instance.func("cap_abi_version", 0, 1).i32()
            except Exception as exc:
                raise ValueError(f"cap_abi_version() failed: {exc}") from exc
            finally:
                live.close()
        finally:
            clock.leave()
        if version != ABI_VERSION:
            raise ValueError(
                f"cap_abi_version() returned {version}, this host speaks {ABI_VERSION}"
            )

    def call(self, export: str, payload: bytes, budget_ms: int, timeout_ms: int) -> bytes:
        """Run one call in this thread; blocks until it ends.

        Args:
            export: the capability's export.
            payload: the input.
            budget_ms: the time left before the call's deadline.
            timeout_ms: the call's deadline, for error messages.

        Raises:
            CallFailure: classified.
        """
        fuel = self._fuel
        ticks = deadline_ticks(budget_ms)
        clock = self._ticker
        clock.enter()
        try:
            live = self._take(fuel, ticks, timeout_ms)
            try:
                data = live.run(export, payload, self._max_output)
            except CallFailure as reported:
                self._put(live, keep=not reported.discard)
                raise
            except Exception as exc:
                raise self._failed(live, exc, fuel, timeout_ms) from exc
            self._put(live, keep=True)
            return data
        finally:
            clock.leave()

    def _take(self, fuel: int, ticks: int, timeout_ms: int) -> _Live:
        if self._reuse:
            with self._lock:  # close() takes the pool under this lock
                live = self._pool.pop() if self._pool else None
            if live is not None:
                live.arm(self._fuel_arg, _u64(ticks))
                return live
        return self._fresh(fuel, ticks, timeout_ms)

    def _fresh(self, fuel: int, ticks: int, timeout_ms: int) -> _Live:
        """A new instance in a new Store, started under ``fuel`` and the deadline.

        Raises:
            CallFailure: classified, the Store closed.
        """
        try:
            live = _Live(self)
        except Exception as exc:
            raise classify(
                exc, fuel=fuel, timeout_ms=timeout_ms, memory_cap=self.memory_cap, memory_now=None
            ) from exc
        try:
            live.start(self, fuel, ticks)
        except Exception as exc:
            raise self._failed(live, exc, fuel, timeout_ms) from exc
        return live

    def _failed(self, live: _Live, exc: Exception, fuel: int, timeout_ms: int) -> CallFailure:
        """Classify what ``live`` raised, with its memory's size and stderr, and close it."""
        failure = classify(
            exc,
            fuel=fuel,
            timeout_ms=timeout_ms,
            memory_cap=self.memory_cap,
            memory_now=live.memory_size(),
            memory_initial=self.shape.min_memory_bytes,
        )
        if live.stderr is not None and live.stderr.data:
            failure.details["stderr"] = live.stderr.data.decode("utf-8", "replace")
        live.close()
        return failure

    def _put(self, live: _Live, *, keep: bool) -> None:
        if keep and self._reuse:
            with self._lock:
                if not self._closed and len(self._pool) < self.granted.limits.max_concurrency:
                    self._pool.append(live)
                    return
        live.close()

    def close(self) -> None:
        """Close pooled instances; later calls fail."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, []
        for live in pool:
            live.close()
