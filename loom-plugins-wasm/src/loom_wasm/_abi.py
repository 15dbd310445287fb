"""Load-time checks of a module's imports and exports against the ABI.

A core module may import only WASI preview 1 functions from the allow-list below (no
sockets: network is not grantable), and must export ``memory``, ``cap_abi_version``,
``cap_alloc`` and one ``(i32, i32) -> i64`` function per capability. A component may
import only WASI preview 2 interfaces from its allow-list, ``wasi:clocks`` only with the
clock granted, and must export each capability as ``func(input: string) -> string``.
Anything else is a load error that names every offender.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import wasmtime
    import wasmtime.component

__all__ = [
    "ABI_VERSION",
    "WASI_P1_ALLOWED",
    "WASI_P2_ALLOWED",
    "CoreShape",
    "check_component",
    "check_core_module",
    "describe_type",
]

#: The value ``cap_abi_version()`` must return.
ABI_VERSION = 1

#: The WASI preview 1 functions a core module may import. Clock and poll functions are
#: linked to stubs unless granted (``poll_oneoff`` always: a guest blocked in a host call
#: cannot be interrupted by the epoch deadline).
WASI_P1_ALLOWED = frozenset(
    {
        "args_get",
        "args_sizes_get",
        "environ_get",
        "environ_sizes_get",
        "clock_res_get",
        "clock_time_get",
        "fd_advise",
        "fd_allocate",
        "fd_close",
        "fd_datasync",
        "fd_fdstat_get",
        "fd_fdstat_set_flags",
        "fd_fdstat_set_rights",
        "fd_filestat_get",
        "fd_filestat_set_size",
        "fd_filestat_set_times",
        "fd_pread",
        "fd_prestat_dir_name",
        "fd_prestat_get",
        "fd_pwrite",
        "fd_read",
        "fd_readdir",
        "fd_renumber",
        "fd_seek",
        "fd_sync",
        "fd_tell",
        "fd_write",
        "path_create_directory",
        "path_filestat_get",
        "path_filestat_set_times",
        "path_link",
        "path_open",
        "path_readlink",
        "path_remove_directory",
        "path_rename",
        "path_symlink",
        "path_unlink_file",
        "poll_oneoff",
        "proc_exit",
        "proc_raise",
        "random_get",
        "sched_yield",
    }
)
WASI_P1 = "wasi_snapshot_preview1"

#: WASI preview 2 interface packages a component may import (``wasi:clocks`` needs the
#: clock grant); sockets and HTTP are never linked.
WASI_P2_ALLOWED = ("wasi:cli/", "wasi:io/", "wasi:filesystem/", "wasi:random/")
WASI_P2_CLOCKS = "wasi:clocks/"


@dataclass(frozen=True, slots=True)
class CoreShape:
    """What the loader learned about a core module.

    Attributes:
        wasi: it imports WASI functions (so a WasiConfig is needed per store).
        initialize: it exports ``_initialize`` (a WASI reactor's constructors).
        min_memory_bytes: its memory's initial size.
        imports: ``module.name`` of each import.
        exports: ``name: type`` of each export.
    """

    wasi: bool
    initialize: bool
    min_memory_bytes: int
    imports: tuple[str, ...]
    exports: tuple[str, ...]


def describe_type(ty: object) -> str:
    import wasmtime

    if isinstance(ty, wasmtime.FuncType):
        params = ", ".join(str(p) for p in ty.params)
        results = ", ".join(str(r) for r in ty.results)
        return f"func({params}) -> ({results})"
    if isinstance(ty, wasmtime.MemoryType):
        return f"memory({ty.limits.min} pages)"
    if isinstance(ty, wasmtime.GlobalType):
        return "global"
    if isinstance(ty, wasmtime.TableType):
        return "table"
    return type(ty).__name__


def _signature(ty: object, params: Iterable[str], results: Iterable[str]) -> bool:
    import wasmtime

    return (
        isinstance(ty, wasmtime.FuncType)
        and [str(p) for p in ty.params] == list(params)
        and [str(r) for r in ty.results] == list(results)
    )


def check_core_module(module: wasmtime.Module, cap_exports: Iterable[str]) -> CoreShape:
    """Check a cap-v1 core module; returns its shape.

    Raises:
        ValueError: every problem found, in one message.
    """
    import wasmtime

    problems: list[str] = []
    imports = []
    wasi = False
    for item in module.imports:
        where = f"{item.module}.{item.name}"
        imports.append(f"{where}: {describe_type(item.type)}")
        if item.module != WASI_P1:
            problems.append(f"import {where} is not allowed (only {WASI_P1} functions are)")
        elif item.name not in WASI_P1_ALLOWED:
            reason = "network is not grantable" if (item.name or "").startswith("sock_") else ""
            problems.append(f"import {where} is not allowed{f' ({reason})' if reason else ''}")
        elif not isinstance(item.type, wasmtime.FuncType):
            problems.append(f"import {where} must be a function")
        else:
            wasi = True
    exports = {item.name: item.type for item in module.exports}
    if "_start" in exports:
        problems.append(
            "exports _start: a WASI command, not a reactor (build with -mexec-model=reactor)"
        )
    memory = exports.get("memory")
    min_memory = 0
    if not isinstance(memory, wasmtime.MemoryType):
        problems.append("must export its memory as 'memory'")
    else:
        min_memory = memory.limits.min * 65536
    required = {
        "cap_abi_version": ([], ["i32"]),
        "cap_alloc": (["i32"], ["i32"]),
        "_initialize": ([], []),
    }
    for name, (params, results) in required.items():
        ty = exports.get(name)
        if ty is None:
            if name != "_initialize":
                problems.append(f"missing export {name} ({_want(params, results)})")
        elif not _signature(ty, params, results):
            problems.append(f"export {name} is {describe_type(ty)}, want {_want(params, results)}")
    for name in sorted(set(cap_exports)):
        ty = exports.get(name)
        if ty is None:
            problems.append(
                f"missing export {name} (func(i32, i32) -> (i64)) named by a capability"
            )
        elif not _signature(ty, ["i32", "i32"], ["i64"]):
            problems.append(f"export {name} is {describe_type(ty)}, want func(i32, i32) -> (i64)")
    if problems:
        raise ValueError("; ".join(problems))
    return CoreShape(
        wasi=wasi,
        initialize="_initialize" in exports,
        min_memory_bytes=min_memory,
        imports=tuple(imports),
        exports=tuple(f"{name}: {describe_type(ty)}" for name, ty in exports.items()),
    )


def _want(params: Iterable[str], results: Iterable[str]) -> str:
    return f"func({', '.join(params)}) -> ({', '.join(results)})"


def check_component(
    component: wasmtime.component.Component, cap_exports: Iterable[str], *, clock: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Check a component-v1 component; returns its imports and exports, by name.

    Raises:
        ValueError: every problem found, in one message.
    """
    import wasmtime.component as wc

    from loom_wasm._engine import engine

    eng = engine()
    ctype = component.type
    problems: list[str] = []
    imports = tuple(sorted(ctype.imports(eng)))
    for name in imports:
        if name.startswith(WASI_P2_CLOCKS):
            if not clock:
                problems.append(f"import {name} needs the clock grant")
        elif not name.startswith(WASI_P2_ALLOWED):
            problems.append(f"import {name} is not allowed")
    exports = ctype.exports(eng)
    for name in sorted(set(cap_exports)):
        item = exports.get(name)
        ty = item.ty if item is not None else None
        if ty is None:
            problems.append(f"missing export {name} (func(input: string) -> string)")
            continue
        ok = (
            isinstance(ty, wc.FuncType)
            and len(ty.params) == 1
            and isinstance(ty.params[0][1], wc.String)
            and isinstance(ty.result, wc.String)
        )
        if not ok:
            problems.append(f"export {name} is not func(input: string) -> string")
    if problems:
        raise ValueError("; ".join(problems))
    return imports, tuple(sorted(exports))
