"""The ``bridge`` plugin: what loom-bridge contributes to the Loom host through its hooks.

Loaded through the entry point ``bridge`` in group ``loom``. It imports nothing heavy:
gRPC and protobuf load inside the commands and scenarios it contributes, when they run.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from typing import TYPE_CHECKING, Any

from loom.contributions import BenchScenario, CliCommand
from loom.hookspecs import hookimpl

if TYPE_CHECKING:
    from loom.host import PluginHost

__all__: list[str] = []

log = logging.getLogger("loom.bridge")

_EXTENSION = "bridge"


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
            name="bridge.push_batched",
            description=(
                "bus -> bridge -> remote agent's link, delivery_batch messages, "
                "the remote agent in a child process (as in use): events/s"
            ),
            run=_lazy("push_batched"),
            baseline=raw,
        ),
        BenchScenario(
            name="bridge.publish",
            description="remote agent's link -> bridge -> bus subscriber: events/s",
            run=_lazy("publish"),
            baseline=raw,
        ),
        BenchScenario(
            name="bridge.publish_batched",
            description=(
                "remote agent's link -> bridge -> bus, publish_batch messages, "
                "the remote agent in a child process (as in use): events/s"
            ),
            run=_lazy("publish_batched"),
            baseline=raw,
        ),
        BenchScenario(
            name="bridge.forward_action",
            description="ForwardAction round trip of a native echo through the broker",
            run=_lazy("forward_action"),
            baseline=raw,
        ),
    ]


@hookimpl
async def loom_app_startup(app: Any) -> None:
    """Serve the bridge on the app's bus and broker when ``loom.toml`` has a ``[bridge]`` table.

    The table takes :class:`~loom_bridge.BridgeConfig`'s scalar settings (``address``,
    ``token``, ``max_message_bytes``, ``duplicate_ids``, ...) over the ``LOOM_BRIDGE_*``
    environment, plus ``enabled = false`` to keep it off. Remote agents appear in the app's
    agent directory while connected.
    """
    section = dict(app.section(_EXTENSION)) if hasattr(app, "section") else {}
    if not section or not section.pop("enabled", True):
        return
    from loom_bridge._config import BridgeConfig
    from loom_bridge._server import BridgeServer

    config = BridgeConfig.from_env(**section)
    runtime = getattr(app, "runtime", None)
    directory = runtime.directory if runtime is not None else None
    server = BridgeServer(app.bus, app.broker, directory=directory, config=config)
    await server.start()
    app.extensions[_EXTENSION] = server
    log.info("bridge serving loom.v1 on %s", server.address)


@hookimpl
async def loom_app_shutdown(app: Any) -> None:
    """Stop the bridge the app started (its remote agents are disconnected)."""
    extensions = getattr(app, "extensions", None)
    server = extensions.pop(_EXTENSION, None) if isinstance(extensions, dict) else None
    if server is not None:
        await server.stop()
