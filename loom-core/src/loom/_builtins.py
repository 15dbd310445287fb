"""Core's built-in plugin: what loom-core contributes, through the same hooks as any plugin.

Factories are referenced lazily, so listing what core contributes imports none of them.
"""

from __future__ import annotations

from loom.contributions import (
    BenchScenario,
    BusBackend,
    CliCommand,
    EventSource,
    ModelProvider,
    RoutingPolicy,
    StateStoreBackend,
    lazy,
)
from loom.hookspecs import hookimpl

__all__: list[str] = []


@hookimpl
def loom_cli_commands() -> list[CliCommand]:
    from loom._cli_new import NEW_COMMAND
    from loom._cli_plugins import PLUGINS_COMMAND
    from loom._cli_run import RUN_COMMAND
    from loom.bench._cli import BENCH_COMMAND

    return [BENCH_COMMAND, NEW_COMMAND, PLUGINS_COMMAND, RUN_COMMAND]


@hookimpl
def loom_bus_backends() -> list[BusBackend]:
    return [
        BusBackend(
            name="memory",
            description="In-process bus: bounded queues, QoS and backpressure policies",
            factory=lazy("loom.bus", "MemoryBus"),
        )
    ]


@hookimpl
def loom_state_stores() -> list[StateStoreBackend]:
    return [
        StateStoreBackend(
            name="memory",
            description="In-memory state, lost at exit (for tests)",
            factory=lazy("loom.state", "MemoryStateStore"),
        ),
        StateStoreBackend(
            name="rocksdb",
            description="Embedded RocksDB on disk (rocksdict): the default",
            factory=lazy("loom.state", "RocksDBStateStore"),
        ),
    ]


def _scenario(
    name: str, module: str, function: str, baseline: str | None, text: str
) -> BenchScenario:
    return BenchScenario(name=name, description=text, run=lazy(module, function), baseline=baseline)


@hookimpl
def loom_bench_scenarios() -> list[BenchScenario]:
    floor = "baseline.asyncio_queue"
    return [
        _scenario(
            floor,
            "loom.bench._baseline",
            "asyncio_queue",
            None,
            "raw asyncio.Queue(1024): 1->1, 1->10 fan-out, request/reply, mailbox+future RTT",
        ),
        _scenario(
            "bus.publish_1sub",
            "loom.bus._bench",
            "publish_1sub",
            floor,
            "publish to one Batched subscriber that reads",
        ),
        _scenario(
            "bus.fanout10",
            "loom.bus._bench",
            "fanout10",
            floor,
            "publish to ten Batched subscribers",
        ),
        _scenario(
            "bus.realtime_overload",
            "loom.bus._bench",
            "realtime_overload",
            floor,
            "Realtime publisher faster than its reader: rate and drops",
        ),
        _scenario(
            "bus.mixed_qos_latency",
            "loom.bus._bench",
            "mixed_qos_latency",
            floor,
            "dispatch latency at 10,000 events/s with mixed QoS",
        ),
        _scenario(
            "agent.pipeline",
            "loom.agents._bench",
            "pipeline",
            floor,
            "publish -> agent mailbox -> handler",
        ),
        _scenario(
            "collab.request_reply",
            "loom.collab._bench",
            "request_reply",
            floor,
            "ctx.request between two agents: round-trip time",
        ),
        _scenario(
            "collab.fanout10_first_k",
            "loom.collab._bench",
            "fanout10_first_k",
            floor,
            "ctx.fanout to 10 agents with first_k(5): time per fanout, fanouts/s",
        ),
        _scenario(
            "collab.contract_net10",
            "loom.collab._bench",
            "contract_net10",
            floor,
            "contract-net rounds with 10 bidder agents, 1 award and its result",
        ),
        _scenario(
            "baseline.python_call",
            "loom.actions._bench",
            "python_call",
            None,
            "await a trivial async function directly",
        ),
        _scenario(
            "broker.invoke_native",
            "loom.actions._bench",
            "broker_invoke_native",
            "baseline.python_call",
            "ActionBroker.invoke of a trivial native async capability",
        ),
        _scenario(
            "telemetry.publish_1sub_default",
            "loom.telemetry._bench",
            "publish_1sub_default",
            "bus.publish_1sub",
            "bus.publish_1sub with telemetry's defaults (metrics, /metrics served): off vs on",
        ),
        _scenario(
            "telemetry.publish_1sub_tracing",
            "loom.telemetry._bench",
            "publish_1sub_tracing",
            "bus.publish_1sub",
            "bus.publish_1sub with tracing all (spans exported in batches): off vs on",
        ),
        _scenario(
            "state.rocksdb_put_get",
            "loom.state._bench",
            "rocksdb_put_get",
            None,
            "RocksDB puts (unsynced) and gets",
        ),
    ]


@hookimpl
def loom_model_providers() -> list[ModelProvider]:
    return [
        ModelProvider(
            name="deterministic",
            description="No model: reproducible, labelled answers and tool calls",
            factory=lazy("loom.models._providers", "deterministic_provider"),
        ),
        ModelProvider(
            name="openai",
            description="OpenAI-compatible chat completions (OPENAI_BASE_URL, OPENAI_API_KEY)",
            factory=lazy("loom.models._providers", "openai_provider"),
        ),
    ]


@hookimpl
def loom_routing_policies() -> list[RoutingPolicy]:
    return [
        RoutingPolicy(
            name="bandit",
            description="Contextual bandit over providers (Thompson sampling or UCB1)",
            factory=lazy("loom.models._providers", "bandit_policy"),
        ),
        RoutingPolicy(
            name="rules",
            description="Upstream's six routing rules",
            factory=lazy("loom.models._providers", "rules_policy"),
        ),
    ]


@hookimpl
def loom_event_sources() -> list[EventSource]:
    return [
        EventSource(
            name="file",
            description="Each line (or JSONL object) of a file as an event",
            factory=lazy("loom.app._sources", "FileSource"),
        ),
        EventSource(
            name="timer",
            description="An event every N seconds, N times or forever",
            factory=lazy("loom.app._sources", "TimerSource"),
        ),
    ]
