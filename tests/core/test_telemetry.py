"""Telemetry's setup and life: the config, configure/shutdown, describe, the hooks, JSON
logs, label bounds and totals, light imports, and the bench scenarios."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from pydantic import ValidationError

from loom import Event, QoS
from loom.bus import MemoryBus
from loom.telemetry import (
    JsonFormatter,
    TelemetryConfig,
    TelemetryError,
    TraceContextFilter,
    active,
    configure,
    json_logging,
)
from loom.telemetry import _switch as switch
from loom.telemetry._labels import OTHER, BoundedLabels, Totals

sdk = pytest.importorskip("opentelemetry.sdk", reason="needs the extra: loom-core[telemetry]")

HOOKS = ("publish", "handle", "invoke", "capability", "llm")


def hooks() -> dict[str, object]:
    return {name: getattr(switch, name) for name in HOOKS}


# -- the config ---------------------------------------------------------------------------


def test_the_defaults_are_metrics_on_tracing_off():
    config = TelemetryConfig()
    assert (config.service_name, config.tracing, config.metrics) == ("loom", "off", True)
    assert config.prometheus is None and config.otlp_endpoint is None and not config.console


@pytest.mark.parametrize(
    ("fields", "where", "what"),
    [
        ({"tracing": "always"}, "tracing", "'off', 'sampled' or 'all'"),
        ({"sample_ratio": 1.5}, "sample_ratio", "less than or equal to 1"),
        ({"prometheus": "9464"}, "prometheus", "expected host:port"),
        ({"prometheus": "127.0.0.1:70000"}, "prometheus", "out of range"),
        ({"otlp_endpoint": "127.0.0.1:4318"}, "otlp_endpoint", "http(s) URL"),
        ({"otlp_endpoint": "http://c:4318/v1/traces"}, "otlp_endpoint", "base URL"),
        ({"exporter": "jaeger"}, "exporter", "Extra inputs are not permitted"),
        ({"label_limit": 0}, "label_limit", "greater than or equal to 1"),
    ],
)
def test_a_bad_field_is_named_with_what_is_expected(fields, where, what):
    with pytest.raises(ValidationError) as caught:
        TelemetryConfig(**fields)
    text = str(caught.value)
    assert where in text and what in text


def test_addresses_parse():
    assert TelemetryConfig(prometheus="[::1]:9464").prometheus == "[::1]:9464"
    assert TelemetryConfig(otlp_endpoint="http://h:4318/").otlp_endpoint == "http://h:4318"


# -- configure and shutdown ---------------------------------------------------------------


async def test_configure_is_idempotent_and_shutdown_too():
    config = TelemetryConfig(tracing="all", prometheus="127.0.0.1:0")
    first = configure(config)
    try:
        assert configure(config) is first
        assert configure(config.model_dump()) is first  # a loom.toml table says the same
        assert active() is first
        assert switch.publish is not None and switch.handle is not None
        url = first.prometheus_url
        assert url is not None
    finally:
        await first.shutdown()
    await first.shutdown()
    assert first.closed and active() is None
    assert all(hook is None for hook in hooks().values())
    with pytest.raises(urllib.error.URLError):  # the /metrics server is gone
        await asyncio.to_thread(_get, url)
    with pytest.raises(TelemetryError, match="shut down"):
        first.instrument(bus=MemoryBus())
    assert first.describe() == ["telemetry: shut down"]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bytes(response.read())


async def test_configuring_other_settings_replaces_the_setup():
    first = configure(TelemetryConfig(tracing="all"))
    second = configure(TelemetryConfig(tracing="off", metrics=False))
    try:
        assert first.closed and not second.closed and active() is second
        assert all(hook is None for hook in hooks().values())
    finally:
        await second.shutdown()


async def test_metrics_without_an_exporter_cost_nothing_and_say_so():
    telemetry = configure(TelemetryConfig())  # the defaults: nothing would read them
    try:
        assert telemetry.meter_provider is None and all(h is None for h in hooks().values())
        assert telemetry.describe() == [
            "traces: off (tracing = 'off')",
            "metrics: on, but nothing exports them: set prometheus or otlp_endpoint",
        ]
        with pytest.raises(TelemetryError, match="tracing is off"):
            telemetry.add_span_processor(object())  # type: ignore[arg-type]
    finally:
        await telemetry.shutdown()


async def test_describe_says_where_to_look():
    telemetry = configure(
        TelemetryConfig(
            tracing="sampled",
            sample_ratio=0.25,
            prometheus="127.0.0.1:0",
            otlp_endpoint="http://user:pw@127.0.0.1:9/",
            otlp_timeout_s=0.2,
            console=True,
        )
    )
    try:
        lines = telemetry.describe()
    finally:
        await telemetry.shutdown()
    assert lines[0] == (
        "traces (25% of new traces): printed to stderr, sent to http://127.0.0.1:9/v1/traces (OTLP)"
    )
    assert lines[1] == f"metrics: Prometheus scrapes {telemetry.prometheus_url}"
    assert lines[2] == "metrics: sent to http://127.0.0.1:9/v1/metrics (OTLP) every 10 s"
    assert not any("pw" in line for line in lines)


async def test_metrics_only_samples_latency_and_traces_nothing():
    telemetry = configure(TelemetryConfig(prometheus="127.0.0.1:0"))
    try:
        assert switch.handle is not None and switch.llm is not None
        assert switch.publish is None and switch.invoke is None and switch.capability is None
    finally:
        await telemetry.shutdown()


async def test_an_agent_sampled_for_latency_still_gets_every_event():
    from loom.agents import AgentRuntime

    telemetry = configure(TelemetryConfig(prometheus="127.0.0.1:0", latency_sample_every=3))
    seen: list[str] = []
    try:
        async with MemoryBus() as bus:
            runtime = AgentRuntime(bus)

            async def handler(ctx, event):
                seen.append(event.type)

            await runtime.spawn("a", handler, topics=["t"])
            for i in range(10):
                await bus.publish("t", Event(f"e{i}"))
            async with asyncio.timeout(5):
                while len(seen) < 10:
                    await asyncio.sleep(0.01)
            await runtime.shutdown()
    finally:
        await telemetry.shutdown()
    assert seen == [f"e{i}" for i in range(10)]


async def test_console_prints_spans_as_json_lines(capsys):
    telemetry = configure(TelemetryConfig(tracing="all", console=True, metrics=False))
    try:
        async with MemoryBus() as bus:
            await bus.publish("printed", Event("x"))
    finally:
        await telemetry.shutdown()  # flushes the batch
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    assert [(x["name"], x["attributes"]["messaging.destination.name"]) for x in lines] == [
        ("loom.publish", "printed")
    ]


@pytest.mark.parametrize(
    ("missing", "what"),
    [
        ("opentelemetry.sdk.resources", "sdk"),
        ("opentelemetry.exporter.prometheus", "prometheus"),
        ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "otlp.traces"),
    ],
)
async def test_a_missing_package_is_a_degradation_that_names_the_extra(
    monkeypatch, caplog, missing, what
):
    monkeypatch.setitem(sys.modules, missing, None)  # what an absent package looks like
    with caplog.at_level(logging.WARNING, logger="loom.telemetry"):
        telemetry = configure(
            TelemetryConfig(
                tracing="all",
                prometheus="127.0.0.1:0",
                otlp_endpoint="http://127.0.0.1:9",
                otlp_timeout_s=0.2,
            )
        )
    try:
        assert what in telemetry.stats.degraded
        assert "pip install 'loom-core[telemetry]'" in telemetry.stats.degraded[what]
        assert any("loom-core[telemetry]" in line for line in telemetry.describe())
        assert len(caplog.records) == 1
    finally:
        await telemetry.shutdown()


# -- labels and totals ----------------------------------------------------------------------


def test_bounded_labels_are_sticky_and_never_other():
    labels = BoundedLabels(2)
    labels.admit(["other", "a", "b", "c"])
    assert [labels.label(v) for v in ("a", "b", "c", "other")] == ["a", "b", OTHER, OTHER]
    labels.admit(["c"])
    assert labels.label("c") == OTHER


def test_totals_only_grow_through_resets_and_forgetting():
    totals = Totals()
    assert totals.update([("s1", ("a",), 5), ("s2", ("b",), 2)]) == {("a",): 5, ("b",): 2}
    assert totals.update([("s1", ("a",), 7)]) == {("a",): 7, ("b",): 2}  # s2 gone: kept
    assert totals.update([("s1", ("a",), 3)]) == {("a",): 10, ("b",): 2}  # s1 reset
    assert totals.update([("s1", ("a",), 3)]) == {("a",): 10, ("b",): 2}  # same reading


def test_totals_do_not_count_a_retired_source_twice():
    totals = Totals()
    retired_of = {"t1": "old", "t2": "old"}.get
    totals.update([("t1", ("t1",), 4), ("t2", ("other",), 1), ("old", ("other",), 0)], retired_of)
    # t1 is forgotten after 6 in all (4 seen, 2 not yet): the retired sum takes all 6.
    got = totals.update([("t2", ("other",), 1), ("old", ("other",), 6)], retired_of)
    assert got == {("t1",): 4, ("other",): 3}
    assert sum(got.values()) == 7


# -- JSON logs ------------------------------------------------------------------------------


def test_json_lines_carry_the_span_ids_and_mask_secrets():
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    record = logging.LogRecord("loom.demo", logging.WARNING, __file__, 7, "hi %s", ("you",), None)
    record.routing = {"route": "Local", "api_key": "sk-1", "nested": {"Authorization": "Bearer x"}}
    record.token = "t0k"
    record.prompt_tokens = 12
    with tracer.start_as_current_span("s") as span:
        line = JsonFormatter().format(record)
        context = span.get_span_context()
    doc = json.loads(line)
    assert doc["message"] == "hi you" and doc["level"] == "WARNING" and doc["logger"] == "loom.demo"
    assert doc["trace_id"] == f"{context.trace_id:032x}"
    assert doc["span_id"] == f"{context.span_id:016x}"
    assert doc["routing"] == {
        "route": "Local",
        "api_key": "***",
        "nested": {"Authorization": "***"},
    }
    assert doc["token"] == "***" and doc["prompt_tokens"] == 12
    assert doc["ts"].endswith("Z")
    outside = json.loads(JsonFormatter().format(record))
    assert "trace_id" not in outside


def test_json_lines_keep_exceptions_and_the_filter_serves_text_formats():
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    doc = json.loads(JsonFormatter().format(record))
    assert "RuntimeError: kaput" in doc["exception"]
    assert TraceContextFilter().filter(record) and record.trace_id == ""


def test_json_logging_replaces_plain_handlers_and_is_idempotent(capsys):
    logger = logging.getLogger("loom.test.json")
    logger.propagate = False
    plain = logging.StreamHandler(sys.stderr)
    logger.addHandler(plain)
    try:
        json_logging(logging.INFO, logger="loom.test.json")
        handler = json_logging(logging.INFO, logger="loom.test.json")
        assert logger.handlers == [handler]
        logger.info("ready", extra={"agent": "a1"})
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["agent"] == "a1"
    finally:
        logger.handlers.clear()
        logger.propagate = True


async def test_log_format_json_is_installed_and_removed(capsys):
    root = logging.getLogger()
    before = list(root.handlers)
    telemetry = configure(TelemetryConfig(log_format="json", metrics=False))
    try:
        logging.getLogger("loom.test.cfg").warning("as json")
        assert "logs: JSON lines on stderr, with trace_id and span_id inside spans" in (
            telemetry.describe()
        )
    finally:
        await telemetry.shutdown()
    assert root.handlers == before
    line = next(x for x in capsys.readouterr().err.splitlines() if "as json" in x)
    assert json.loads(line)["logger"] == "loom.test.cfg"


# -- light imports ----------------------------------------------------------------------------


def test_the_instrumented_modules_do_not_load_opentelemetry():
    code = (
        "import sys, json\n"
        "import loom.bus, loom.agents, loom.actions, loom.models, loom.telemetry\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('opentelemetry'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


# -- the bench scenarios keep working --------------------------------------------------------


async def test_bench_scenarios_run_small():
    from loom.telemetry._bench import publish_1sub_default, publish_1sub_tracing

    default = {f.metric: f.value for f in await publish_1sub_default(0.01)}
    tracing = {f.metric: f.value for f in await publish_1sub_tracing(0.01)}
    for figures in (default, tracing):
        assert figures["throughput"] > 0 and figures["throughput_off"] > 0
        assert figures["overhead_pct"] < 100
    assert tracing["spans_exported"] == 2 * (3000 // 4)  # one span per publish while on
    assert active() is None and all(h is None for h in hooks().values())


async def test_a_scenario_works_on_a_bus_that_saw_traffic_before():
    """The bench measures with telemetry on and off on one bus: both see only events."""
    from loom.telemetry._bench import _seconds

    async with MemoryBus() as bus:
        await bus.publish("warm", Event("x"))
        assert await _seconds(bus, 100) > 0
        assert bus.stats("bench.telemetry.tick") is not None
        sub = await bus.subscribe("after", qos=QoS.BATCHED)
        await bus.publish("after", Event("y"))
        assert (await sub.get())[1].type == "y"
