"""The ``nats`` plugin: what loom-nats contributes to the Loom host through its hooks.

Loaded through the entry point ``nats`` in group ``loom``. It imports nothing heavy (not
even ``loom_nats``' own modules): each factory imports its module on first call.

Contributes the ``nats`` bus backend, the ``loom nats`` and ``loom replay`` commands, the
bench scenarios ``baseline.nats_raw``, ``nats.publish_1sub``, ``nats.jetstream_publish``
and ``nats.request_reply``, and, through the app lifecycle hooks, the capability mesh of an
app whose ``loom.toml`` has a ``[nats.mesh]`` table (see ``loom_nats._app``).
"""

from __future__ import annotations

from typing import Any

from loom.contributions import BenchScenario, BusBackend, CliCommand, lazy
from loom.hookspecs import hookimpl

__all__: list[str] = []


@hookimpl
def loom_bus_backends() -> list[BusBackend]:
    return [
        BusBackend(
            name="nats",
            description="NATS: Realtime on core NATS, Batched/Background on JetStream",
            factory=lazy("loom_nats._bus", "NatsBus"),
        )
    ]


@hookimpl
def loom_cli_commands() -> list[CliCommand]:
    return [
        CliCommand(
            name="nats",
            description="the NATS bus: server and stream status, replay of a topic",
            configure=lazy("loom_nats._cli", "configure"),
            run=lazy("loom_nats._cli", "run"),
        ),
        CliCommand(
            name="replay",
            description="replay a topic's history from the NATS stream as JSON lines",
            configure=lazy("loom_nats._cli", "configure_replay"),
            run=lazy("loom_nats._cli", "run_replay"),
        ),
    ]


def _scenario(name: str, function: str, baseline: str | None, text: str) -> BenchScenario:
    return BenchScenario(
        name=name, description=text, run=lazy("loom_nats._bench", function), baseline=baseline
    )


@hookimpl
def loom_bench_scenarios() -> list[BenchScenario]:
    raw = "baseline.nats_raw"
    return [
        _scenario(
            raw,
            "nats_raw",
            None,
            "bare nats-py: core pub/sub of 150-byte messages, JetStream async publish, "
            "request/reply",
        ),
        _scenario(
            "nats.publish_1sub",
            "publish_1sub",
            raw,
            "NatsBus publish to one subscriber: Realtime (core) and Batched (JetStream)",
        ),
        _scenario(
            "nats.jetstream_publish",
            "jetstream_publish",
            raw,
            "NatsBus publishes into the stream, acknowledged (async window and one by one)",
        ),
        _scenario(
            "nats.request_reply",
            "request_reply",
            raw,
            "request/reply round trip between two NatsBus instances (Realtime)",
        ),
    ]


@hookimpl
def loom_app_check(config: Any) -> list[Any] | None:
    """The problems of the app's ``[nats]`` table (``loom.app.ConfigIssue``, each naming
    its key), or None when the app has no such table."""
    sections = getattr(config, "plugin_sections", None)
    if not isinstance(sections, dict) or "nats" not in sections:
        return None
    from loom_nats._app import check_config

    return list(check_config(config))


@hookimpl
async def loom_app_startup(app: Any) -> None:
    """Start the capability mesh when the app's ``loom.toml`` has a ``[nats.mesh]`` table.

    The mesh announces the app's own capabilities and agents to the other hosts on its
    NATS bus and registers theirs in its broker and agent directory. A bad table stops
    the app at once (reason ``failed``, the message naming the key) and is reported as
    this plugin's failure.
    """
    section = app.section("nats") if hasattr(app, "section") else None
    if not section:
        return
    from loom.app import AppConfigError, StopReason
    from loom_nats._app import start_mesh

    try:
        await start_mesh(app)
    except AppConfigError as exc:
        app.request_stop(StopReason.FAILED, str(exc))
        raise


@hookimpl
async def loom_app_shutdown(app: Any) -> None:
    """Stop the app's capability mesh: it says goodbye to the other hosts first."""
    extensions = getattr(app, "extensions", None)
    if not isinstance(extensions, dict) or "nats.mesh" not in extensions:
        return
    from loom_nats._app import stop_mesh

    await stop_mesh(app)
