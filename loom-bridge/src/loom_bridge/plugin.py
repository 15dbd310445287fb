"""The ``bridge`` plugin: what loom-bridge contributes to the Loom host through its hooks.

Loaded through the entry point ``bridge`` in group ``loom``. It imports nothing heavy:
gRPC and protobuf load inside the commands and scenarios it contributes, when they run.
"""

from __future__ import annotations

import argparse
import importlib
from typing import TYPE_CHECKING, Any

from loom.contributions import BenchScenario, CliCommand
from loom.hookspecs import hookimpl

if TYPE_CHECKING:
    from loom.host import PluginHost

__all__: list[str] = []


def _configure(parser: argparse.ArgumentParser) -> None:
    from loom_bridge._cli import configure

    configure(parser)


def _run(args: argparse.Namespace, host: PluginHost) -> int:
    from loom_bridge._cli import run

    return run(args, host)


@hookimpl
def loom_cli_commands() -> list[CliCommand]:
    return [
        CliCommand(
            name="bridge",
            description="the loom.v1 gRPC bridge: serve it, or ping one",
            configure=_configure,
            run=_run,
        )
    ]


def _lazy(function: str) -> Any:
    """A scenario runner that imports ``loom_bridge._bench`` when it runs."""

    def call(scale: float) -> Any:
        return getattr(importlib.import_module("loom_bridge._bench"), function)(scale)

    call.__qualname__ = call.__name__ = f"loom_bridge._bench.{function}"
    return call


@hookimpl
def loom_bench_scenarios() -> list[BenchScenario]:
    raw = "baseline.grpc_raw"
    return [
        BenchScenario(
            name=raw,
            description="bare grpc.aio, 150-byte messages, no protobuf: stream and unary",
            run=_lazy("grpc_raw"),
        ),
        BenchScenario(
            name="bridge.push",
            description="bus -> bridge stream -> remote agent's link: events/s",
            run=_lazy("push"),
            baseline=raw,
        ),
        BenchScenario(
            name="bridge.publish",
            description="remote agent's link -> bridge -> bus subscriber: events/s",
            run=_lazy("publish"),
            baseline=raw,
        ),
        BenchScenario(
            name="bridge.forward_action",
            description="ForwardAction round trip of a native echo through the broker",
            run=_lazy("forward_action"),
            baseline=raw,
        ),
    ]
