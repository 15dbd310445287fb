"""The ``mcp`` plugin: what loom-mcp contributes to the Loom host through its hooks.

Loaded through the entry point ``mcp`` in group ``loom``. It imports nothing heavy: the
``mcp`` SDK loads inside the commands and scenarios it contributes.

- CLI: ``loom mcp serve``, ``loom mcp tools``, ``loom mcp call``.
- Bench: ``baseline.mcp_sdk`` (the bare SDK client's tool-call round trips over stdio and
  streamable HTTP) and ``mcp.stdio_call`` / ``mcp.http_call`` (the same calls through the
  ActionBroker), all against the same server in the same run.
"""

from __future__ import annotations

import importlib
from typing import Any

from loom.contributions import BenchScenario, CliCommand
from loom.hookspecs import hookimpl

__all__: list[str] = []


def _lazy(module: str, attribute: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), attribute)(*args, **kwargs)

    call.__qualname__ = call.__name__ = f"{module}.{attribute}"
    return call


@hookimpl
def loom_cli_commands() -> list[CliCommand]:
    from loom_mcp._cli import MCP_COMMAND

    return [MCP_COMMAND]


@hookimpl
def loom_bench_scenarios() -> list[BenchScenario]:
    baseline = "baseline.mcp_sdk"
    return [
        BenchScenario(
            name=baseline,
            description="bare mcp SDK client: tools/call round trips over stdio and HTTP",
            run=_lazy("loom_mcp._bench", "sdk_baseline"),
        ),
        BenchScenario(
            name="mcp.stdio_call",
            description="a stdio MCP tool called through the ActionBroker",
            run=_lazy("loom_mcp._bench", "stdio_call"),
            baseline=baseline,
        ),
        BenchScenario(
            name="mcp.http_call",
            description="a streamable-HTTP MCP tool called through the ActionBroker",
            run=_lazy("loom_mcp._bench", "http_call"),
            baseline=baseline,
        ),
    ]
