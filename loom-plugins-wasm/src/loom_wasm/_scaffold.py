"""``loom wasm new``: a new plugin folder with a manifest, an echo capability and a README."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["LANGUAGES", "scaffold"]

LANGUAGES = ("wat", "c", "zig", "assemblyscript")

_MANIFEST = """\
# The manifest of {name}: `loom wasm build .` compiles the source into {stem}.wasm.
name = "{name}"
version = "0.1.0"
abi = "cap-v1"
description = "{name}: a Loom WASM plugin"

[limits]                      # per call; the app's policy caps each of them
fuel = 100_000_000
memory_pages = {pages}
timeout_ms = 1000

[grants]                      # nothing outside the sandbox unless asked for (and allowed)
# dirs = [{{ host = "data", guest = "/data", mode = "ro" }}]
# env = ["LANG"]
# clock = true

[[capabilities]]
name = "{name}.echo"
description = "Return the input unchanged"
export = "cap_call"
input_schema = {{ type = "object" }}
output_schema = {{ type = "object" }}
"""

_WAT = """\
;; {name}: a cap-v1 plugin in WebAssembly text. See docs/wasm.md for the ABI.
(module
  (memory (export "memory") 1)
  (global $top (mut i32) (i32.const 1024))
  (func (export "cap_abi_version") (result i32) (i32.const 1))
  ;; bump allocator, reset for each request
  (func (export "cap_alloc") (param $len i32) (result i32)
    (local $end i32)
    (local.set $end (i32.add (i32.const 1024) (local.get $len)))
    (if (i32.gt_u (local.get $end) (i32.shl (memory.size) (i32.const 16)))
      (then (if (i32.lt_s (memory.grow (i32.add (i32.shr_u (local.get $end) (i32.const 16))
                                                (i32.const 1)))
                          (i32.const 0))
              (then unreachable))))
    (global.set $top (local.get $end))
    (i32.const 1024))
  ;; the output is the input: (ptr << 32) | len
  (func (export "cap_call") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
)
"""

_C = """\
/* {name}: a cap-v1 plugin in C. See docs/wasm.md for the ABI. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))

static char *request, *response;

EXPORT("cap_abi_version") int32_t cap_abi_version(void) {{ return 1; }}

EXPORT("cap_alloc") char *cap_alloc(int32_t len) {{
    free(request);
    free(response);
    response = NULL;
    request = malloc(len > 0 ? (size_t)len : 1);
    return request;
}}

/* (ptr << 32) | len; set bit 31 of len to report an error message instead */
EXPORT("cap_call") int64_t cap_call(char *input, int32_t len) {{
    response = malloc(len > 0 ? (size_t)len : 1);
    memcpy(response, input, (size_t)len);
    return ((int64_t)(uintptr_t)response << 32) | (int64_t)len;
}}
"""

_ZIG = """\
// {name}: a cap-v1 plugin in Zig. See docs/wasm.md for the ABI.
const std = @import("std");
const allocator = std.heap.wasm_allocator;

var response: []u8 = &.{{}};

export fn cap_abi_version() i32 {{
    return 1;
}}

export fn cap_alloc(len: i32) [*]u8 {{
    allocator.free(response); // the previous output is freed once the next call starts
    response = &.{{}};
    const buf = allocator.alloc(u8, @intCast(len)) catch unreachable; // a trap: the host reports it
    return buf.ptr;
}}

// (ptr << 32) | len; set bit 31 of len to report an error message instead
export fn cap_call(ptr: [*]u8, len: i32) i64 {{
    const input = ptr[0..@intCast(len)];
    defer allocator.free(input);
    response = allocator.dupe(u8, input) catch unreachable; // the output: here, the input
    const address: i64 = @intCast(@intFromPtr(response.ptr));
    return (address << 32) | @as(i64, @intCast(response.len));
}}
"""

_AS = """\
// {name}: a cap-v1 plugin in AssemblyScript. See docs/wasm.md for the ABI.
let request: ArrayBuffer | null = null;
let response: ArrayBuffer | null = null;

export function cap_abi_version(): i32 {{
  return 1;
}}

export function cap_alloc(len: i32): usize {{
  response = null;
  request = new ArrayBuffer(len);
  return changetype<usize>(request);
}}

// (ptr << 32) | len; set bit 31 of len to report an error message instead
export function cap_call(ptr: usize, len: i32): i64 {{
  const input = String.UTF8.decodeUnsafe(ptr, len);
  const out = String.UTF8.encode(input);
  response = out;
  return (i64(changetype<usize>(out)) << 32) | i64(out.byteLength);
}}
"""

_PACKAGE = """\
{{
  "name": "{name}",
  "private": true,
  "scripts": {{ "build": "asc assembly/index.ts -O3 --use abort= -o {stem}.wasm" }},
  "devDependencies": {{ "assemblyscript": "0.28.20" }}
}}
"""

_README = """\
# {name}

A Loom WASM plugin ({lang}). Build, inspect and try it:

    {setup}loom wasm build .
    loom wasm inspect {stem}.wasm.toml
    loom wasm run {stem}.wasm.toml {name}.echo '{{"hello": "world"}}'

Serve it to an app: put this folder (or its parent) in `LOOM_WASM_PATH`.
The ABI, the manifest and the sandbox are described in Loom's docs/wasm.md.
"""


def scaffold(name: str, lang: str, parent: Path) -> Path:
    """Create ``parent/name`` holding a plugin in ``lang`` that echoes its input.

    Raises:
        ValueError: a bad name or language, or the folder exists.
    """
    if not re.fullmatch(r"[a-z][a-z0-9\-]{0,62}", name):
        raise ValueError(f"plugin name {name!r}: use lower-case letters, digits and '-'")
    if lang not in LANGUAGES:
        raise ValueError(f"language {lang!r}: choose one of {', '.join(LANGUAGES)}")
    folder = parent / name
    if folder.exists():
        raise ValueError(f"{folder} exists already")
    stem = name.replace("-", "_")
    folder.mkdir(parents=True)
    pages = 32 if lang in ("c", "zig") else 16  # zig links a 1 MiB stack
    values = {"name": name, "stem": stem, "pages": pages, "lang": lang}
    (folder / f"{stem}.wasm.toml").write_text(_MANIFEST.format(**values))
    setup = ""
    if lang == "wat":
        (folder / f"{stem}.wat").write_text(_WAT.format(**values))
    elif lang in ("c", "zig"):
        source = _C if lang == "c" else _ZIG
        (folder / f"{stem}.{lang}").write_text(source.format(**values))
        setup = "pip install ziglang\n    "
    else:
        (folder / "assembly").mkdir()
        (folder / "assembly" / "index.ts").write_text(_AS.format(**values))
        (folder / "package.json").write_text(_PACKAGE.format(**values))
        (folder / ".gitignore").write_text("node_modules/\n")
        setup = "npm install\n    "
    (folder / "README.md").write_text(_README.format(**values, setup=setup))
    return folder
