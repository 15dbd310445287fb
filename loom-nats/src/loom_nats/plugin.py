"""The ``nats`` plugin: what loom-nats contributes to the Loom host through its hooks.

Loaded through the entry point ``nats`` in group ``loom``. It imports nothing heavy (not
even ``loom_nats``' own modules): each factory imports its module on first call.

Contributes the ``nats`` bus backend, the ``loom nats`` and ``loom replay`` commands, and
the bench scenarios ``baseline.nats_raw``, ``nats.publish_1sub``,
``nats.jetstream_publish`` and ``nats.request_reply``.
"""

from __future__ import annotations

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
