"""The ``wasm`` plugin: what loom-plugins-wasm contributes to the Loom host through its hooks.

Loaded through the entry point ``wasm`` in group ``loom``. It imports nothing heavy:
wasmtime and pydantic load inside the functions it contributes.

- ``loom_capabilities``: the capabilities of the plugins found in ``$LOOM_WASM_PATH``
  (directories or manifests, separated by ``os.pathsep``), granted under the policy in
  ``$LOOM_WASM_POLICY`` (a TOML file). Nothing when the variable is unset.
- ``loom_cli_commands``: ``loom wasm inspect|run|list|new|build``.
- ``loom_bench_scenarios``: ``wasm.call_fresh`` and ``wasm.call_reused``, judged against
  ``baseline.python_call``.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import TYPE_CHECKING

from loom.contributions import BenchScenario, CliCommand, lazy
from loom.hookspecs import hookimpl

if TYPE_CHECKING:
    from loom.contributions import Capability
    from loom.host import PluginHost

__all__: list[str] = []

log = logging.getLogger("loom_wasm")


@hookimpl
def loom_capabilities() -> list[Capability] | None:
    if not os.environ.get("LOOM_WASM_PATH", "").strip():
        return None
    from loom_wasm._capabilities import configured_paths, policy_from_env, wasm_capabilities

    return wasm_capabilities(configured_paths(), policy_from_env())


def _configure(parser: argparse.ArgumentParser) -> None:
    from loom_wasm._cli import configure

    configure(parser)


def _run(args: argparse.Namespace, host: PluginHost) -> int:
    from loom_wasm._cli import run

    return run(args, host)


@hookimpl
def loom_cli_commands() -> list[CliCommand]:
    return [
        CliCommand(
            name="wasm",
            description="Sandboxed WebAssembly plugins: inspect, run, list, new, build",
            configure=_configure,
            run=_run,
        )
    ]


@hookimpl
def loom_bench_scenarios() -> list[BenchScenario]:
    baseline = "baseline.python_call"
    return [
        BenchScenario(
            name="wasm.call_fresh",
            description="text.upper through the broker, a fresh Store and instance per call",
            run=lazy("loom_wasm._bench", "call_fresh"),
            baseline=baseline,
        ),
        BenchScenario(
            name="wasm.call_reused",
            description="text.upper through the broker, one reused instance, re-armed per call",
            run=lazy("loom_wasm._bench", "call_reused"),
            baseline=baseline,
        ),
    ]
