"""The hot path of a cap-v1 call, on wasmtime's C API through wasmtime-py's ctypes bindings.

``Func.__call__`` re-reads the function's type and converts every value on each call
(about 11 µs plus 5 µs per argument, measured here); ``instance.exports()``
wraps every export. The loader checks each export's signature once, so a call can use
preallocated argument arrays and ``wasmtime_func_call`` directly, which brings a call to
about 3 µs. This module is the only one that touches wasmtime-py's private ``_ffi``; the
distribution pins wasmtime to one major version for that reason, and the tests run every
guest through it.

Memory reads and writes are bounds-checked against the memory's current size: a guest
pointer is never trusted.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

from wasmtime import _ffi as ffi
from wasmtime._error import WasmtimeError
from wasmtime._trap import Trap

if TYPE_CHECKING:
    from wasmtime import InstancePre, Store

__all__ = ["BoundFunc", "GuestMemory", "OutOfBounds", "instantiate"]

_byref = ctypes.byref


class OutOfBounds(Exception):  # internal signal, turned into an ABI error
    """A guest pointer and length reach outside the guest's memory."""


def _raise(error: Any, trap: Any) -> None:
    if error:
        raise WasmtimeError._from_ptr(error)  # an ExitTrap for proc_exit
    if trap:
        raise Trap._from_ptr(trap)


class Instance:
    """An instance of a core module in a store, with exports looked up by name."""

    def __init__(self, store: Store, raw: Any) -> None:
        self._context = store._context()
        self._raw = raw

    def extern(self, name: str) -> Any | None:
        """The export ``name`` as a raw ``wasmtime_extern_t``, or None."""
        item = ffi.wasmtime_extern_t()
        encoded = name.encode()
        found = ffi.wasmtime_instance_export_get(
            self._context, _byref(self._raw), encoded, len(encoded), _byref(item)
        )
        return item if found else None

    def func(self, name: str, params: int, results: int) -> BoundFunc:
        """The function export ``name``, bound for calls with ``params`` i32 arguments.

        The caller has checked the signature at load time.
        """
        item = self.extern(name)
        if item is None or item.kind != ffi.WASMTIME_EXTERN_FUNC.value:
            raise LookupError(f"no function export {name!r}")
        return BoundFunc(self._context, item.of.func, params, results)

    def memory(self, name: str = "memory") -> GuestMemory:
        """The memory export ``name``."""
        item = self.extern(name)
        if item is None or item.kind != ffi.WASMTIME_EXTERN_MEMORY.value:
            raise LookupError(f"no memory export {name!r}")
        return GuestMemory(self._context, item.of.memory)


def instantiate(pre: InstancePre, store: Store) -> Instance:
    """Instantiate a pre-linked module in ``store``.

    Raises:
        wasmtime.Trap: the start function trapped (or ran out of fuel or time).
        wasmtime.WasmtimeError: instantiation failed (a limit, a missing import).
    """
    raw = ffi.wasmtime_instance_t()
    trap = ctypes.POINTER(ffi.wasm_trap_t)()
    error = ffi.wasmtime_instance_pre_instantiate(
        pre.ptr(), store._context(), _byref(raw), _byref(trap)
    )
    _raise(error, trap)
    return Instance(store, raw)


class BoundFunc:
    """A guest function taking i32 arguments, with its argument arrays allocated once."""

    def __init__(self, context: Any, func: Any, params: int, results: int) -> None:
        self._context = context
        self._func = func
        self._params = (ffi.wasmtime_val_t * params)()
        for slot in self._params:
            slot.kind = ffi.WASMTIME_I32
        self._nparams = params
        self._results = (ffi.wasmtime_val_t * results)()
        self._nresults = results

    def __call__(self, *args: int) -> Any:
        """Call with i32 arguments; returns the first result's raw value union (or None)."""
        params = self._params
        for index, value in enumerate(args):
            params[index].of.i32 = value
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        error = ffi.wasmtime_func_call(
            self._context,
            _byref(self._func),
            params,
            self._nparams,
            self._results,
            self._nresults,
            _byref(trap),
        )
        _raise(error, trap)
        return self._results[0].of if self._nresults else None


class GuestMemory:
    """A guest's linear memory; every access is checked against its current size."""

    def __init__(self, context: Any, memory: Any) -> None:
        self._context = context
        self._memory = memory

    def size(self) -> int:
        """The memory's current size in bytes."""
        return int(ffi.wasmtime_memory_data_size(self._context, _byref(self._memory)))

    def _address(self, offset: int, length: int) -> int:
        if offset < 0 or length < 0 or offset + length > self.size():
            raise OutOfBounds(
                f"[{offset}, {offset + length}) is outside the guest memory of {self.size()} bytes"
            )
        if length == 0:
            return 0
        base = ffi.wasmtime_memory_data(self._context, _byref(self._memory))
        return ctypes.addressof(base.contents) + offset

    def write(self, offset: int, data: bytes) -> None:
        """Copy ``data`` into guest memory at ``offset``."""
        if not data:
            self._address(offset, 0)  # still checks the offset
            return
        ctypes.memmove(self._address(offset, len(data)), data, len(data))

    def read(self, offset: int, length: int) -> bytes:
        """Copy ``length`` bytes out of guest memory from ``offset``."""
        if length == 0:
            self._address(offset, 0)
            return b""
        return ctypes.string_at(self._address(offset, length), length)
