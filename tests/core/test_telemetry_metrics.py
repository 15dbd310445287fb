"""Metrics: scraped from Prometheus /metrics over HTTP on 127.0.0.1 after known workloads,
and pushed over OTLP/HTTP to a collector the test runs; exporters that cannot work."""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import socket
import threading
import time
import urllib.request

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the telemetry extra: loom-core[telemetry]")
pytest.importorskip("prometheus_client", reason="needs the telemetry extra: loom-core[telemetry]")

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from loom import ActionCall, Event, QoS
from loom.actions import ActionBroker, CircuitBreakerPolicy, NativeProvider, capability
from loom.agents import AgentRuntime, RestartPolicy
from loom.bus import Backpressure, MemoryBus
from loom.models import (
    DeterministicModel,
    ModelRouter,
    OpenAIChatModel,
    OpenAIConfig,
    RoutingRequest,
    RulePolicy,
)
from loom.models.testing import ChatCompletionsServer, Reply
from loom.telemetry import Telemetry, TelemetryConfig, configure

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def telemetry():
    made: list[Telemetry] = []

    def make(**fields) -> Telemetry:
        t = configure(TelemetryConfig(**fields))
        made.append(t)
        return t

    yield make
    for t in made:
        await t.shutdown()


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


async def scrape(t: Telemetry) -> Samples:
    """GET /metrics over HTTP (from a thread: the loop must stay free to answer the
    collection), parsed by prometheus_client's own parser."""
    assert t.prometheus_url is not None
    return _parse(await asyncio.to_thread(_fetch, t.prometheus_url))


def _parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def labels_of(samples: Samples, name: str, key: str) -> set[str]:
    return {dict(ls)[key] for (n, ls), _ in samples.items() if n == name}


async def wait_for(condition, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_known_workload_shows_on_metrics(telemetry):
    t = telemetry(prometheus="127.0.0.1:0", latency_sample_every=1)
    assert t.prometheus_url is not None and t.prometheus_url.startswith("http://127.0.0.1:")
    async with MemoryBus() as bus:
        broker = ActionBroker(breaker=CircuitBreakerPolicy(failure_threshold=2))
        runtime = AgentRuntime(
            bus, broker=broker, restart_policy=RestartPolicy(max_restarts=1, initial_backoff_s=0)
        )
        t.instrument(bus=bus, runtime=runtime, broker=broker)

        @capability("double")
        async def double(x: int) -> int:
            return 2 * x

        @capability("flaky")
        async def flaky() -> None:
            raise RuntimeError("down")

        broker.register(NativeProvider(double))
        broker.register(NativeProvider(flaky))

        async def count(ctx, event):
            pass

        async def crash(ctx, event):
            raise ValueError("always")

        await runtime.spawn("counter", count, topics=["orders.created"])
        await runtime.spawn("crashy", crash, topics=["crash"])
        reader = await bus.subscribe("orders.created", qos=QoS.BATCHED)
        sensor = await bus.subscribe("sensor.temp", backpressure=Backpressure(queue_size=2))
        for i in range(5):
            await bus.publish("orders.created", Event("order", str(i).encode()))
            await bus.publish("sensor.temp", Event("reading"))
        for _ in range(5):
            await reader.get()
        await bus.publish("crash", Event("boom"))
        await wait_for(lambda: runtime.info("crashy").restarts == 1)
        await bus.publish("crash", Event("boom"))
        await wait_for(lambda: runtime.info("crashy").status.value == "failed")
        await wait_for(lambda: runtime.info("counter").processed == 5)
        for x in (1, 2, 3):
            await broker.invoke(ActionCall("double", json.dumps({"x": x}).encode()))
        await broker.invoke(ActionCall("double", b'{"x": "nope"}'))
        await broker.invoke(ActionCall("no.such.capability", b"{}"))
        for _ in range(3):
            await broker.invoke(ActionCall("flaky", b"{}"))

        m = await scrape(t)
        assert sensor.qsize() == 2
        await runtime.shutdown()

    # The bus: per topic, drops by reason, queues.
    assert value(m, "loom_bus_published_total", topic="orders.created") == 5
    assert value(m, "loom_bus_delivered_total", topic="orders.created") == 10  # reader + agent
    assert value(m, "loom_bus_published_total", topic="sensor.temp") == 5
    assert value(m, "loom_bus_delivered_total", topic="sensor.temp") == 2
    assert value(m, "loom_bus_dropped_total", topic="sensor.temp", reason="queue_full") == 3
    assert value(m, "loom_bus_queue_depth", qos="realtime") == 2
    assert value(m, "loom_bus_queue_fill", qos="realtime") == 1.0
    assert value(m, "loom_bus_queue_depth", qos="batched") == 0
    # Agents: handled, failed, restarted, given up on (and reported on runtime.agent.failed).
    assert value(m, "loom_agent_processed_total", agent="counter") == 5
    assert value(m, "loom_agent_failures_total", agent="crashy") == 2
    assert value(m, "loom_agent_restarts_total", agent="crashy") == 1
    assert value(m, "loom_agents", status="failed") == 1
    assert value(m, "loom_agents", status="running") == 1
    assert value(m, "loom_agent_mailbox_depth", agent="counter") == 0
    assert value(m, "loom_bus_published_total", topic="runtime.agent.failed") == 1
    # Every handled event was timed (sample every 1): 5 + 2.
    assert value(m, "loom_agent_delivery_latency_seconds_count") == 7
    assert value(m, "loom_agent_delivery_latency_seconds_bucket", le="+Inf") == 7
    # Tool calls and errors by capability and code; circuits.
    assert value(m, "loom_broker_calls_total", capability="double", code="OK") == 3
    assert value(m, "loom_broker_calls_total", capability="double", code="INVALID_PARAMS") == 1
    assert value(m, "loom_broker_calls_total", capability="unregistered", code="NOT_FOUND") == 1
    assert value(m, "loom_broker_calls_total", capability="flaky", code="CAPABILITY_ERROR") == 2
    assert value(m, "loom_broker_calls_total", capability="flaky", code="PROVIDER_UNAVAILABLE") == 1
    assert value(m, "loom_broker_circuit", capability="flaky", state="open") == 1
    assert value(m, "loom_broker_circuit", capability="flaky", state="closed") == 0
    assert value(m, "loom_broker_circuit", capability="double", state="closed") == 1


async def test_routing_decisions_and_llm_calls(telemetry):
    t = telemetry(prometheus="127.0.0.1:0")
    async with ChatCompletionsServer() as server:
        server.script(Reply.completion("one"), Reply.completion("two"))
        llm = OpenAIChatModel(
            OpenAIConfig(base_url=server.base_url, model="m-local", location="local", api_key="k")
        )
        router = ModelRouter(RulePolicy(), {"vllm": llm, "det": DeterministicModel()})
        t.instrument(router=router)
        for _ in range(2):
            await router.run(RoutingRequest(), [{"role": "user", "content": "hi"}])
        m = await scrape(t)
        await router.aclose()
    decisions = {
        dict(ls)["route"]: v for (n, ls), v in m.items() if n == "loom_router_decisions_total"
    }
    assert sum(decisions.values()) == 2 and decisions == dict(router.stats.decisions)
    assert value(m, "loom_llm_calls_total", provider="openai", model="m-local", outcome="ok") == 2
    assert value(m, "loom_llm_tokens_total", provider="openai", model="m-local", type="input") == 20
    assert (
        value(m, "loom_llm_tokens_total", provider="openai", model="m-local", type="output") == 10
    )
    assert value(m, "loom_llm_duration_seconds_count", provider="openai", model="m-local") == 2


async def test_topic_labels_are_bounded_and_counts_stay_exact(telemetry):
    """Past label_limit topics are reported together as "other"; topics the bus forgets
    (max_topics) keep counting, so the sum over labels is every event published."""
    t = telemetry(prometheus="127.0.0.1:0", label_limit=2)
    async with MemoryBus(max_topics=4) as bus:
        t.instrument(bus=bus)
        for _ in range(5):
            await bus.publish("busy.a", Event("x"))
        for _ in range(3):
            await bus.publish("busy.b", Event("x"))
        await bus.publish("quiet.c", Event("x"))
        first = await scrape(t)
        for i in range(40):  # ever-new topics: one per request thread, say
            await bus.publish(f"thread.{i}.reply", Event("x"))
        await asyncio.sleep(0.3)  # readings younger than 0.25 s are reused
        second = await scrape(t)
        assert len(bus.all_stats()) <= 4
    assert labels_of(first, "loom_bus_published_total", "topic") == {"busy.a", "busy.b", "other"}
    assert value(first, "loom_bus_published_total", topic="other") == 1
    assert labels_of(second, "loom_bus_published_total", "topic") == {"busy.a", "busy.b", "other"}
    assert value(second, "loom_bus_published_total", topic="busy.a") == 5
    assert value(second, "loom_bus_published_total", topic="other") == 41
    assert total(second, "loom_bus_published_total") == 5 + 3 + 1 + 40


async def test_a_blocked_loop_does_not_hang_a_scrape(telemetry, caplog):
    """Collections run on the exporter's thread and read the objects on their loop; a
    loop that does not answer in time gets its last values reported, counted."""
    t = telemetry(prometheus="127.0.0.1:0", collect_timeout_s=0.2)
    async with MemoryBus() as bus:
        t.instrument(bus=bus)
        await bus.publish("t", Event("x"))
        first = await scrape(t)
        await bus.publish("t", Event("x"))
        await asyncio.sleep(0.3)  # past the reuse window
        assert t.prometheus_url is not None
        with caplog.at_level(logging.WARNING, logger="loom.telemetry"):
            pending = asyncio.get_running_loop().run_in_executor(None, _fetch, t.prometheus_url)
            time.sleep(1.0)  # a handler hogging the loop: the scrape cannot read the bus
            stale = _parse(await pending)
        fresh = await scrape(t)
    assert value(first, "loom_bus_published_total", topic="t") == 1
    assert value(stale, "loom_bus_published_total", topic="t") == 1
    assert value(stale, "loom_telemetry_collect_timeouts_total") == 1
    assert value(fresh, "loom_bus_published_total", topic="t") == 2
    assert len([r for r in caplog.records if "did not answer" in r.getMessage()]) == 1


async def test_a_prometheus_port_in_use_is_logged_counted_and_the_app_goes_on(telemetry, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="loom.telemetry"):
            t = telemetry(prometheus=f"127.0.0.1:{port}", tracing="all")
    assert t.prometheus_url is None
    assert t.stats.export_failures["prometheus"] == 1
    assert "prometheus" in t.stats.degraded and "in use" in t.stats.degraded["prometheus"]
    warnings = [r for r in caplog.records if r.name == "loom.telemetry"]
    assert len(warnings) == 1 and str(port) in warnings[0].getMessage()
    assert any("prometheus: not working" in line for line in t.describe())
    async with MemoryBus() as bus:  # the app keeps working, traced
        sub = await bus.subscribe("t", qos=QoS.BATCHED)
        await bus.publish("t", Event("x"))
        _, got = await sub.get()
    assert "traceparent" in got.metadata


class _Collector(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP collector on 127.0.0.1: decodes and keeps what it receives."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with collector.lock:
                    collector.paths.append(self.path)
                    if self.path == "/v1/traces":
                        collector.traces.append(ExportTraceServiceRequest.FromString(body))
                    elif self.path == "/v1/metrics":
                        collector.metrics.append(ExportMetricsServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def collector():
    server = _Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


async def test_otlp_receives_spans_and_metrics(telemetry, collector):
    t = telemetry(tracing="all", otlp_endpoint=collector.url, metrics_interval_s=0.2)
    async with MemoryBus() as bus:
        t.instrument(bus=bus)
        sub = await bus.subscribe("otlp.topic", qos=QoS.BATCHED)
        for _ in range(3):
            await bus.publish("otlp.topic", Event("x"))
            await sub.get()
        await wait_for(lambda: len(collector.metrics) >= 2)
    await t.shutdown()  # flushes the spans
    assert set(collector.paths) == {"/v1/traces", "/v1/metrics"}
    spans = [
        s
        for request in collector.traces
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for s in scope.spans
    ]
    assert [s.name for s in spans] == ["loom.publish"] * 3
    names = {
        m.name
        for request in collector.metrics
        for resource in request.resource_metrics
        for scope in resource.scope_metrics
        for m in scope.metrics
    }
    assert {"loom.bus.published", "loom.bus.delivered", "loom.bus.queue.depth"} <= names
    resource = collector.traces[0].resource_spans[0].resource
    assert {a.key: a.value.string_value for a in resource.attributes}["service.name"] == "loom"
    assert t.stats.export_failures == {}


async def test_an_otlp_endpoint_that_refuses_is_logged_once_counted_and_the_app_goes_on(
    telemetry, caplog
):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        refused = s.getsockname()[1]
    with caplog.at_level(logging.INFO):
        t = telemetry(
            tracing="all",
            otlp_endpoint=f"http://127.0.0.1:{refused}",
            metrics_interval_s=0.1,
            otlp_timeout_s=0.5,
        )
        async with MemoryBus() as bus:
            t.instrument(bus=bus)
            sub = await bus.subscribe("t", qos=QoS.BATCHED)
            for _ in range(20):
                await bus.publish("t", Event("x"))
                await sub.get()
                await asyncio.sleep(0.05)
            await wait_for(lambda: t.stats.export_failures["otlp.metrics"] >= 2, timeout_s=10)
            described = t.describe()
        await t.shutdown()
    assert t.stats.export_failures["otlp.metrics"] >= 2
    assert t.stats.export_failures["otlp.traces"] >= 1  # the final flush, at least
    ours = [
        r for r in caplog.records if r.name == "loom.telemetry" and r.levelno >= logging.WARNING
    ]
    assert len([r for r in ours if "otlp.metrics" in r.getMessage()]) == 1
    assert len([r for r in ours if "otlp.traces" in r.getMessage()]) == 1
    assert f"127.0.0.1:{refused}" in ours[0].getMessage()
    library = [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]
    assert library == []  # held back: said once, by loom.telemetry
    assert any("otlp.metrics: failing" in line for line in described)
