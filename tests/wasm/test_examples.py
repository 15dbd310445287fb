"""examples/wasm: each plugin built from source here (WAT, C with zig, AssemblyScript, a WAT
component) and called through the ActionBroker; scaffolds built in every language."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from loom import ActionCall, ActionStatus
from loom.actions import ActionBroker
from loom_wasm import WasmPolicy, load_plugin
from loom_wasm._build import build, toolchain
from loom_wasm._scaffold import scaffold

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "wasm"
AS_EXAMPLE = EXAMPLES / "as-reverse"

needs_zig = pytest.mark.skipif(
    importlib.util.find_spec("ziglang") is None,
    reason="C plugins build with zig: pip install ziglang (requirements-dev.txt)",
)
needs_asc = pytest.mark.skipif(
    not (AS_EXAMPLE / "node_modules" / ".bin" / "asc").exists(),
    reason="AssemblyScript plugins build with asc: npm ci --prefix examples/wasm/as-reverse",
)


async def _call(manifest: Path, policy: WasmPolicy, capability: str, payload: dict) -> object:
    plugin = load_plugin(manifest, policy)
    async with ActionBroker() as broker:
        for provider in plugin.providers():
            broker.register(provider)
        result = await broker.invoke(ActionCall(capability, json.dumps(payload).encode()))
    assert result.status == ActionStatus.OK, result.error
    return json.loads(result.output)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


def test_every_example_is_recognised():
    found = {p.name: toolchain(p) for p in sorted(EXAMPLES.iterdir()) if p.is_dir()}
    assert found == {
        "as-reverse": "assemblyscript",
        "c-stats": "c",
        "component-wrap": "wat",
        "text-tools": "wat",
    }


async def test_text_tools_in_wat(out, policy):
    manifest = build(EXAMPLES / "text-tools", out)
    payload = {"text": 'mIxEd "quotes" \\ and \n escapes \u00e9', "keep": ["list", {"k": "v"}]}
    result = await _call(manifest, policy, "text.upper", payload)
    assert result == {
        "text": 'MIXED "QUOTES" \\ AND \n ESCAPES \u00e9',
        "keep": ["LIST", {"k": "V"}],
    }
    assert await _call(manifest, policy, "json.echo", {"a": [1, None]}) == {"a": [1, None]}


async def test_json_wrap_component_in_wat(out, policy):
    manifest = build(EXAMPLES / "component-wrap", out)
    assert await _call(manifest, policy, "json.wrap", {"x": 1}) == {"wrapped": {"x": 1}}


@needs_zig
async def test_text_stats_in_c(out, policy):
    manifest = build(EXAMPLES / "c-stats", out)
    text = "two words\nand a third line \u00e9\u00e9"
    result = await _call(manifest, policy, "text.stats", {"text": text})
    assert result == {
        "bytes": len(text.encode()),
        "chars": len(text),
        "words": len(text.split()),
        "lines": 2,
    }
    plugin = load_plugin(manifest, policy)
    try:
        with pytest.raises(Exception, match="missing member 'text'") as caught:
            plugin.call("text.stats", b'{"other": 1}')
        assert caught.value.code == "INVALID_PARAMS"
    finally:
        plugin.close()


@needs_asc
async def test_text_reverse_in_assemblyscript(out, policy):
    manifest = build(AS_EXAMPLE, out)
    text = 'abc "q" \U0001f600\u00e9\n'
    result = await _call(manifest, policy, "text.reverse", {"text": text})
    assert result == {"text": '\n\u00e9\U0001f600 "q" cba', "length": len(text)}


@pytest.mark.parametrize(
    "lang",
    [
        "wat",
        pytest.param("c", marks=needs_zig),
        pytest.param("zig", marks=needs_zig),
        pytest.param("assemblyscript", marks=needs_asc),
    ],
)
async def test_scaffolds_build_and_echo(tmp_path, policy, lang):
    folder = scaffold("demo-plugin", lang, tmp_path)
    if lang == "assemblyscript":
        (folder / "node_modules").symlink_to(AS_EXAMPLE / "node_modules")
    assert toolchain(folder) == lang
    manifest = build(folder)
    assert (folder / "demo_plugin.wasm").exists()
    payload = {"hello": ["world", 1]}
    assert await _call(manifest, policy, "demo-plugin.echo", payload) == payload
