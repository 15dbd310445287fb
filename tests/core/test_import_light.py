"""`import loom` stays light: no gRPC, wasmtime, MCP, audio, protobuf or state store."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "grpc",
    "wasmtime",
    "mcp",
    "sounddevice",
    "faster_whisper",
    "piper",
    "ctranslate2",
    "onnxruntime",
    "nats",
    "google.protobuf",
    "rocksdict",
    "pydantic",
    "opentelemetry",
    "loom_bridge",
    "loom_mcp",
    "loom_wasm",
    "loom_audio",
    "loom_nats",
    "loom.v1",
    "importlib.metadata",
    "asyncio",
)


def _modules_after(code):
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def _heavy(modules):
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_import_loom_pulls_nothing_heavy():
    assert _heavy(_modules_after("import loom")) == []


def test_public_modules_are_light_too():
    modules = _modules_after("import loom.topics, loom.errors, loom.hookspecs, loom.contributions")
    assert _heavy(modules) == []


def test_protobuf_loads_only_when_the_wire_is_used():
    modules = _modules_after("import loom\nloom.Event('t').encode()")
    assert "google.protobuf" in modules and "loom.v1.event_pb2" in modules
    assert "grpc" not in modules
