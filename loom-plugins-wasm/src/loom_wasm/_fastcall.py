"""The hot path of a cap-v1 call, on wasmtime's C API through ctypes.

``Func.__call__`` re-reads the function's type and converts every value on each call
(about 11 µs plus 5 µs per argument, measured here); ``instance.exports()`` wraps every
export; even wasmtime-py's own ``_ffi`` wrappers add a Python frame and ctypes argument
conversion to each C call. The loader checks each export's signature once, so a call here
goes through ``wasmtime_func_call_unchecked`` with a preallocated raw value array, and every
C function is a private ctypes function pointer of our own (``dll[name]``, never shared with
wasmtime-py) called with arguments built once: a whole cap-v1 call (alloc, write, call,
read) costs about 3 µs instead of 10. This module is the only one that touches wasmtime-py's
private ``_ffi``; the distribution pins wasmtime to one major version for that reason, and
the tests run every guest through it.

The pointers have no ``argtypes`` (checking them costs about 0.4 µs per call), so every
argument passed to them here is a ctypes object of the C type: a ``c_void_p``, a
``c_size_t``, a ``c_uint64`` or a ``byref``. Never pass a Python int, which ctypes would
narrow to a C ``int``.

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

__all__ = ["BoundFunc", "GuestMemory", "OutOfBounds", "arm", "context_of", "instantiate"]

_byref = ctypes.byref
_void_p = ctypes.c_void_p
_size_t = ctypes.c_size_t
_u64 = ctypes.c_uint64
_string_at = ctypes.string_at
_memmove = ctypes.memmove
_TrapPtr = ctypes.POINTER(ffi.wasm_trap_t)
_ErrorPtr = ctypes.POINTER(ffi.wasmtime_error_t)


def _own(name: str, restype: Any) -> Any:
    # dll[name] makes a new function pointer each time (dll.name is cached and shared with
    # wasmtime-py, whose restype and argtypes must stay as they are).
    function = ffi.dll[name]
    function.restype = restype
    return function


_call_unchecked = _own("wasmtime_func_call_unchecked", _void_p)
_memory_data = _own("wasmtime_memory_data", _void_p)
_memory_size = _own("wasmtime_memory_data_size", _size_t)
_set_fuel = _own("wasmtime_context_set_fuel", _void_p)
_set_deadline = _own("wasmtime_context_set_epoch_deadline", None)


class OutOfBounds(Exception):  # internal signal, turned into an ABI error
    """A guest pointer and length reach outside the guest's memory."""


def _error(address: int) -> WasmtimeError:
    return WasmtimeError._from_ptr(ctypes.cast(_void_p(address), _ErrorPtr))  # ExitTrap too


def context_of(store: Store) -> _void_p:
    """The store's context as a ``c_void_p``, for :func:`arm` (valid until the store closes)."""
    return ctypes.cast(store._context(), _void_p)


def arm(context: _void_p, fuel: _u64, ticks: _u64) -> None:
    """Give the store ``fuel`` and a deadline ``ticks`` epochs from now.

    Args:
        context: the store's context, from :func:`context_of`.
        fuel: the fuel, as a ``c_uint64``.
        ticks: epoch ticks from now, as a ``c_uint64``.
    """
    failed = _set_fuel(context, fuel)
    if failed:
        raise _error(failed)
    _set_deadline(context, ticks)


class Instance:
    """An instance of a core module in a store, with exports looked up by name.

    Attributes:
        context: the store's context, for :func:`arm`.
    """

    def __init__(self, store: Store, raw: Any) -> None:
        self._store = store  # keeps the context alive
        self._ctx = store._context()
        self.context = context_of(store)
        self._raw = raw

    def extern(self, name: str) -> Any | None:
        """The export ``name`` as a raw ``wasmtime_extern_t``, or None."""
        item = ffi.wasmtime_extern_t()
        encoded = name.encode()
        found = ffi.wasmtime_instance_export_get(
            self._ctx, _byref(self._raw), encoded, len(encoded), _byref(item)
        )
        return item if found else None

    def func(self, name: str, params: int, results: int) -> BoundFunc:
        """The function export ``name``, bound for calls with ``params`` i32 arguments.

        The caller has checked the signature at load time: the call is unchecked.
        """
        item = self.extern(name)
        if item is None or item.kind != ffi.WASMTIME_EXTERN_FUNC.value:
            raise LookupError(f"no function export {name!r}")
        return BoundFunc(self.context, item.of.func, params, results)

    def memory(self, name: str = "memory") -> GuestMemory:
        """The memory export ``name``."""
        item = self.extern(name)
        if item is None or item.kind != ffi.WASMTIME_EXTERN_MEMORY.value:
            raise LookupError(f"no memory export {name!r}")
        return GuestMemory(self.context, item.of.memory)


def instantiate(pre: InstancePre, store: Store) -> Instance:
    """Instantiate a pre-linked module in ``store``.

    Raises:
        wasmtime.Trap: the start function trapped (or ran out of fuel or time).
        wasmtime.WasmtimeError: instantiation failed (a limit, a missing import).
    """
    raw = ffi.wasmtime_instance_t()
    trap = _TrapPtr()
    error = ffi.wasmtime_instance_pre_instantiate(
        pre.ptr(), store._context(), _byref(raw), _byref(trap)
    )
    if error:
        raise WasmtimeError._from_ptr(error)
    if trap:
        raise Trap._from_ptr(trap)
    return Instance(store, raw)


class BoundFunc:
    """A guest function taking i32 arguments and returning at most one value.

    Arguments and the result share one raw value array, allocated once.
    """

    __slots__ = ("_context", "_count", "_func", "_ref", "_slots", "_trap", "_trap_ref")

    def __init__(self, context: _void_p, func: Any, params: int, results: int) -> None:
        self._context = context
        self._func = func
        self._ref = _byref(func)
        size = max(params, results, 1)
        self._slots = (ffi.wasmtime_val_raw_t * size)()
        self._count = _size_t(size)
        self._trap = _TrapPtr()
        self._trap_ref = _byref(self._trap)

    def _fail(self, error: int) -> BaseException:
        if error:
            return _error(error)
        trap = Trap._from_ptr(ctypes.cast(self._trap, _TrapPtr))
        self._trap = _TrapPtr()  # that trap now belongs to the Trap object
        self._trap_ref = _byref(self._trap)
        return trap

    def call0(self) -> None:
        """Call a ``() -> ()`` or ``() -> (i32)`` function."""
        error = _call_unchecked(self._context, self._ref, self._slots, self._count, self._trap_ref)
        if error or self._trap:
            raise self._fail(error)

    def i32(self, *args: int) -> int:
        """Call with i32 arguments; returns the i32 result."""
        slots = self._slots
        for index, value in enumerate(args):
            slots[index].i32 = value
        error = _call_unchecked(self._context, self._ref, slots, self._count, self._trap_ref)
        if error or self._trap:
            raise self._fail(error)
        return slots[0].i32

    def i64_of_2(self, first: int, second: int) -> int:
        """Call a ``(i32, i32) -> i64`` function; returns the result as unsigned."""
        slots = self._slots
        slots[0].i32 = first
        slots[1].i32 = second
        error = _call_unchecked(self._context, self._ref, slots, self._count, self._trap_ref)
        if error or self._trap:
            raise self._fail(error)
        return slots[0].i64 & 0xFFFF_FFFF_FFFF_FFFF


class GuestMemory:
    """A guest's linear memory; every access is checked against its current size."""

    __slots__ = ("_context", "_memory", "_ref")

    def __init__(self, context: _void_p, memory: Any) -> None:
        self._context = context
        self._memory = memory
        self._ref = _byref(memory)

    def size(self) -> int:
        """The memory's current size in bytes."""
        return _memory_size(self._context, self._ref)  # type: ignore[no-any-return]

    def _address(self, offset: int, length: int) -> int:
        # The base can move whenever the guest runs (memory.grow): read it now.
        size = _memory_size(self._context, self._ref)
        if offset < 0 or length < 0 or offset + length > size:
            raise OutOfBounds(
                f"[{offset}, {offset + length}) is outside the guest memory of {size} bytes"
            )
        base: int | None = _memory_data(self._context, self._ref)  # None for an empty memory
        return (base or 0) + offset

    def write(self, offset: int, data: bytes) -> None:
        """Copy ``data`` into guest memory at ``offset``."""
        address = self._address(offset, len(data))
        if data:
            _memmove(address, data, len(data))

    def read(self, offset: int, length: int) -> bytes:
        """Copy ``length`` bytes out of guest memory from ``offset``."""
        address = self._address(offset, length)
        return _string_at(address, length) if length else b""
