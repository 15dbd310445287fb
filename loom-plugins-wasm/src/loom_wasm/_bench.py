"""``loom bench`` scenarios: a WASM capability through the ActionBroker, fresh and reused.

Both call ``text.upper`` of the text-tools example (a copy of its WAT ships in the package)
with ``{"text": "hello world"}``, sequentially, through an
:class:`~loom.actions.ActionBroker`: input validation, the call and the output's JSON
check are all in the figure. Each scenario reports, in µs per call:

- ``p50_us`` / ``p99_us``: the default policy: calls start on a worker thread and, once
  seen to be tiny, run inline on the leash of the policy's ``inline_max_ms`` (see
  :mod:`loom_wasm._inline`), for a fresh Store per call as for a reused instance;
- ``thread_p50_us`` / ``thread_p99_us``: ``inline_max_ms = 0``, every call on a worker
  thread;
- ``inline_p50_us`` / ``inline_p99_us``: the policy's ``inline_max_ms`` covering the
  plugin's deadline, so every call runs on the event loop's thread;
- ``direct_p50_us``: :meth:`WasmPlugin.call` with no broker and no thread (the sandbox's
  own cost);
- ``python_p50_us``: an async Python capability doing the same work through the same
  broker.

They are judged against ``baseline.python_call``.
"""

from __future__ import annotations

import json
import tempfile
import time
from importlib import resources
from pathlib import Path

from loom._action import ActionCall, ActionStatus
from loom.actions import ActionBroker, NativeProvider, capability
from loom.bench import Figure, percentile
from loom_wasm._loader import load_plugin
from loom_wasm._plugin import WasmPlugin
from loom_wasm._policy import WasmPolicy

__all__ = ["call_fresh", "call_reused"]

PAYLOAD = json.dumps({"text": "hello world"}).encode()
EXPECTED = {"text": "HELLO WORLD"}

_MANIFEST = """\
name = "bench-text-tools"
version = "1.0.0"
reuse_instance = {reuse}
[limits]
fuel = 10_000_000
memory_pages = 16
timeout_ms = {timeout_ms}
[[capabilities]]
name = "text.upper"
export = "cap_upper"
[capabilities.input_schema]
type = "object"
properties = {{ text = {{ type = "string" }} }}
required = ["text"]
"""


#: Each route's policy and plugin deadline: the default, every call on a thread, every call
#: inline (which needs a deadline within ``inline_max_ms``). The others get 1 s, so that a
#: stall of the shared machine does not fail the run.
_ROUTES = {
    "": (WasmPolicy(cache=False), 1000),
    "thread_": (WasmPolicy(cache=False, inline_max_ms=0), 1000),
    "inline_": (WasmPolicy(cache=False, inline_max_ms=100), 100),
}


def _plugin(folder: Path, *, reuse: bool, route: str) -> WasmPlugin:
    policy, timeout_ms = _ROUTES[route]
    folder.mkdir(exist_ok=True)
    source = resources.files("loom_wasm").joinpath("_guests/text_tools.wat").read_text()
    (folder / "text_tools.wat").write_text(source)
    manifest = folder / "bench.wasm.toml"
    text = _MANIFEST.format(reuse=str(reuse).lower(), timeout_ms=timeout_ms)
    manifest.write_text(f'module = "text_tools.wat"\n{text}')
    return load_plugin(manifest, policy)


async def _latencies(broker: ActionBroker, capability_name: str, n: int) -> list[float]:
    invoke = broker.invoke
    clock = time.perf_counter_ns
    first = await invoke(ActionCall(capability_name, PAYLOAD))
    if first.status != ActionStatus.OK or json.loads(first.output) != EXPECTED:
        raise AssertionError(f"{capability_name}: unexpected result {first!r}")
    for _ in range(min(200, n)):  # warm up
        await invoke(ActionCall(capability_name, PAYLOAD))
    values = []
    for _ in range(n):
        start = clock()
        result = await invoke(ActionCall(capability_name, PAYLOAD))
        values.append((clock() - start) / 1000)
        if result.status != ActionStatus.OK:
            raise AssertionError(f"{capability_name}: {result.error}")
    values.sort()
    return values


@capability("python.upper")
async def _python_upper(text: str) -> dict[str, str]:
    return {"text": text.upper()}


async def _scenario(scale: float, *, reuse: bool) -> list[Figure]:
    n = max(200, int(5000 * scale))
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="loom-wasm-bench-") as tmp:
        for prefix in _ROUTES:
            plugin = _plugin(Path(tmp) / (prefix or "default"), reuse=reuse, route=prefix)
            async with ActionBroker() as broker:
                for provider in plugin.providers():
                    broker.register(provider)
                values = await _latencies(broker, "text.upper", n)
            figures.append(Figure(f"{prefix}p50_us", percentile(values, 0.50), "us"))
            figures.append(Figure(f"{prefix}p99_us", percentile(values, 0.99), "us"))
        plugin = _plugin(Path(tmp) / "direct", reuse=reuse, route="thread_")
        try:
            direct = []
            for _ in range(n):
                start = time.perf_counter_ns()
                plugin.call("text.upper", PAYLOAD)
                direct.append((time.perf_counter_ns() - start) / 1000)
        finally:
            plugin.close()
        direct.sort()
        figures.append(Figure("direct_p50_us", percentile(direct, 0.50), "us"))
    async with ActionBroker() as broker:
        broker.register(NativeProvider(_python_upper))
        python = await _latencies_python(broker, n)
    figures.append(Figure("python_p50_us", percentile(python, 0.50), "us"))
    return figures


async def _latencies_python(broker: ActionBroker, n: int) -> list[float]:
    values = []
    for _ in range(n):
        start = time.perf_counter_ns()
        result = await broker.invoke(ActionCall("python.upper", PAYLOAD))
        values.append((time.perf_counter_ns() - start) / 1000)
        if result.status != ActionStatus.OK or json.loads(result.output) != EXPECTED:
            raise AssertionError(f"python.upper: {result!r}")
    values.sort()
    return values


async def call_fresh(scale: float) -> list[Figure]:
    """One run of ``wasm.call_fresh``: a fresh Store and instance per call.

    At scale 1.0: 5,000 calls per figure.
    """
    return await _scenario(scale, reuse=False)


async def call_reused(scale: float) -> list[Figure]:
    """One run of ``wasm.call_reused``: one instance, re-armed with fuel and a deadline per call.

    At scale 1.0: 5,000 calls per figure.
    """
    return await _scenario(scale, reuse=True)
