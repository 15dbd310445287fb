"""Running component-v1 plugins: components exporting ``func(input: string) -> string``.

WASI preview 2 comes from wasmtime (``Linker.add_wasip2``), with the same per-call Store,
limits, fuel, epoch deadline and granted directories and variables as core modules. One
difference, from wasmtime-py: a component's ``poll`` cannot be shadowed, so a component
that imports ``wasi:clocks`` (which needs the clock grant) can block in a sleep that the
epoch does not interrupt. The provider then answers TIMEOUT at the deadline and the worker
thread stays counted against the plugin's concurrency until the guest wakes.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from loom_wasm._classify import CallFailure, classify
from loom_wasm._engine import close_at_exit, deadline_ticks, engine, ticker
from loom_wasm._errors import ErrorKind

if TYPE_CHECKING:
    import wasmtime
    import wasmtime.component

    from loom_wasm._policy import Granted

__all__ = ["ComponentRunner"]


class _Live:
    __slots__ = ("funcs", "store")

    def __init__(self, runner: ComponentRunner, fuel: int, ticks: int) -> None:
        import wasmtime

        self.store = store = wasmtime.Store(engine())
        try:
            store.set_limits(memory_size=runner.granted.limits.memory_bytes)
            config = wasmtime.WasiConfig()
            for grant in runner.granted.dirs:
                config.preopen_dir(str(grant.host), grant.guest, grant.writable)
            if runner.granted.env:
                config.env = [list(pair) for pair in runner.granted.env]
            store.set_wasi(config)
            store.set_fuel(fuel)
            store.set_epoch_deadline(ticks)
            instance = runner.linker.instantiate(store, runner.component)
            self.funcs: dict[str, Any] = {}
            for name in runner.exports:
                func = instance.get_func(store, name)
                if func is None:  # checked at load; a component cannot lose an export
                    raise CallFailure(ErrorKind.ABI, f"no export {name!r}")
                self.funcs[name] = func
        except BaseException:
            store.close()
            raise

    def arm(self, fuel: int, ticks: int) -> None:
        self.store.set_fuel(fuel)
        self.store.set_epoch_deadline(ticks)

    def run(self, export: str, text: str, max_output: int) -> bytes:
        func = self.funcs[export]
        out = func(self.store, text)
        func.post_return(self.store)
        if not isinstance(out, str):
            raise CallFailure(
                ErrorKind.ABI, f"{export} returned {type(out).__name__}, not a string"
            )
        data = out.encode("utf-8")
        if len(data) > max_output:
            raise CallFailure(
                ErrorKind.OUTPUT,
                f"output of {len(data)} bytes is over the cap of {max_output} bytes",
                {"max_output_bytes": str(max_output)},
                discard=False,
            )
        return data

    def close(self) -> None:
        self.store.close()


class ComponentRunner:
    """Runs the capabilities of one component-v1 plugin."""

    def __init__(
        self, component: wasmtime.component.Component, granted: Granted, exports: set[str]
    ) -> None:
        import wasmtime.component

        self.component = component
        self.granted = granted
        self.exports = frozenset(exports)
        self.linker = wasmtime.component.Linker(engine())
        self.linker.add_wasip2()
        self._pool: list[_Live] = []
        self._lock = threading.Lock()
        self._closed = False
        close_at_exit(self)

    def probe(self) -> None:
        """Instantiate once; raises ValueError if that fails."""
        limits = self.granted.limits
        clock = ticker()
        clock.enter()
        try:
            _Live(self, limits.fuel, deadline_ticks(limits.timeout_ms)).close()
        except Exception as exc:
            failure = classify(
                exc,
                fuel=limits.fuel,
                timeout_ms=limits.timeout_ms,
                memory_cap=limits.memory_bytes,
                memory_now=None,
            )
            raise ValueError(f"instantiation failed: {failure.message}") from exc
        finally:
            clock.leave()

    def call(self, export: str, payload: bytes, budget_ms: int, timeout_ms: int) -> bytes:
        """Run one call in this thread; blocks until it ends (see ``CoreRunner.call``).

        Raises:
            CallFailure: classified.
        """
        limits = self.granted.limits
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CallFailure(ErrorKind.ABI, f"input is not UTF-8: {exc}", discard=False) from None
        ticks = deadline_ticks(budget_ms)
        clock = ticker()
        clock.enter()
        try:
            live = self._take(limits.fuel, ticks, timeout_ms)
            try:
                data = live.run(export, text, limits.max_output_bytes)
            except CallFailure as reported:
                self._put(live, keep=not reported.discard)
                raise
            except Exception as exc:
                live.close()
                raise classify(
                    exc,
                    fuel=limits.fuel,
                    timeout_ms=timeout_ms,
                    memory_cap=limits.memory_bytes,
                    memory_now=None,
                ) from exc
            self._put(live, keep=True)
            return data
        finally:
            clock.leave()

    def _take(self, fuel: int, ticks: int, timeout_ms: int) -> _Live:
        if self.granted.reuse:
            with self._lock:
                live = self._pool.pop() if self._pool else None
            if live is not None:
                live.arm(fuel, ticks)
                return live
        try:
            return _Live(self, fuel, ticks)
        except CallFailure:
            raise
        except Exception as exc:
            raise classify(
                exc,
                fuel=fuel,
                timeout_ms=timeout_ms,
                memory_cap=self.granted.limits.memory_bytes,
                memory_now=None,
            ) from exc

    def _put(self, live: _Live, *, keep: bool) -> None:
        if keep and self.granted.reuse:
            with self._lock:
                if not self._closed and len(self._pool) < self.granted.limits.max_concurrency:
                    self._pool.append(live)
                    return
        live.close()

    def close(self) -> None:
        """Close pooled instances."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, []
        for live in pool:
            live.close()
