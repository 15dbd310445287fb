"""Running an app: composition from the host, the end conditions, and a clean shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap

import pytest

from loom import Event, hookimpl
from loom.agents import AgentStatus
from loom.app import App, AppConfigError, AppError, StopReason, current_app, load_config
from loom.contributions import AgentType, Capability, EventSource
from loom.state import RocksDBStateStore


def _app(tmp_path, text, host, module="", name="") -> App:
    if module:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(module))
    path = tmp_path / "loom.toml"
    path.write_text(textwrap.dedent(text))
    return App(load_config(path), host=host, config_path=path)


COUNTER = """
    from loom.agents import Agent, handles

    class Counter(Agent):
        def __init__(self, delay_s=0.0):
            self.delay_s = delay_s

        @handles("timer.tick")
        async def on_tick(self, ctx, event):
            import asyncio
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            count = int(await ctx.state.get("count") or b"0") + 1
            await ctx.state.put("count", str(count).encode())
"""


async def test_it_runs_until_every_source_is_exhausted_and_keeps_state(tmp_path, loom_host):
    config = """
        [app]
        name = "counting"
        [[agents]]
        id = "counter"
        type = "app_counter:Counter"
        topics = ["ticks"]
        [[sources]]
        type = "timer"
        topic = "ticks"
        options = { every_s = 0.01, count = 5, delay_s = 0 }
        """
    for _ in (1, 2):
        app = _app(tmp_path, config, loom_host, COUNTER, "app_counter")
        report = await app.run()
        assert (report.reason, report.detail) == (
            StopReason.EXHAUSTED,
            "every source exhausted and the agents idle",
        )
        assert report.drained
        [info] = report.agents
        assert (info.agent_id, info.processed, info.status) == ("counter", 5, AgentStatus.STOPPED)
        assert report.sources == [
            {"name": "timer", "published": 5, "outcome": "exhausted", "topic": "ticks", "count": 5}
        ]
        assert report.published >= 5
        assert report.errors == []
        assert report.state.startswith("rocksdb at ") and report.state.endswith(
            "(flushed and closed)"
        )
    async with RocksDBStateStore(tmp_path / ".loom-data" / "counting") as store:
        assert await store.for_agent("counter").get("count") == b"10"


async def test_run_for_stops_an_endless_app(tmp_path, loom_host):
    app = _app(
        tmp_path,
        """
        run_for = 0.3
        [app]
        name = "endless"
        [state]
        backend = "memory"
        [[agents]]
        id = "counter"
        type = "app_endless:Counter"
        topics = ["ticks"]
        [[sources]]
        type = "timer"
        topic = "ticks"
        options = { every_s = 0.02, delay_s = 0 }
        """,
        loom_host,
        COUNTER,
        "app_endless",
    )
    report = await app.run()
    assert (report.reason, report.detail) == (StopReason.RUN_FOR, "run_for 0.3 s elapsed")
    [source] = report.sources
    assert source["outcome"] == "stopped"
    assert source["published"] >= 1
    assert report.agents[0].processed == source["published"]


async def test_a_stop_event_or_request_stop_ends_the_run(tmp_path, loom_host):
    text = """
        [app]
        name = "stoppable"
        [state]
        backend = "memory"
        [[sources]]
        type = "timer"
        topic = "ticks"
        options = { every_s = 0.02 }
        """
    stop = asyncio.Event()
    app = _app(tmp_path, text, loom_host)
    run = asyncio.create_task(app.run(stop=stop))
    await asyncio.sleep(0.1)
    assert not run.done()
    stop.set()
    report = await asyncio.wait_for(run, 10)
    assert report.reason == StopReason.REQUESTED

    other = _app(tmp_path, text, loom_host)
    run = asyncio.create_task(other.run())
    await asyncio.sleep(0.1)
    other.request_stop(StopReason.REQUESTED, "enough")
    assert (await asyncio.wait_for(run, 10)).detail == "enough"
    assert await other.stop() is (await other.stop())  # idempotent: the same report


async def test_shutdown_drains_the_mailboxes_first(tmp_path, loom_host):
    app = _app(
        tmp_path,
        """
        [app]
        name = "drain"
        [state]
        backend = "memory"
        [[agents]]
        id = "slow"
        type = "app_drain:Counter"
        topics = ["work"]
        params = { delay_s = 0.01 }
        """,
        loom_host,
        COUNTER,
        "app_drain",
    )
    await app.start()
    for n in range(30):
        await app.bus.publish("work", Event("timer.tick", json.dumps({"tick": n}).encode()))
    assert app.runtime.info("slow").mailbox > 0
    report = await app.stop()
    assert report.drained
    assert report.agents[0].processed == 30


async def test_a_drain_that_takes_too_long_is_cut_and_said(tmp_path, loom_host, caplog):
    app = _app(
        tmp_path,
        """
        [app]
        name = "stuck"
        drain_timeout_s = 0.2
        stop_timeout_s = 0.2
        [state]
        backend = "memory"
        [[agents]]
        id = "slow"
        type = "app_stuck:Counter"
        topics = ["work"]
        params = { delay_s = 0.5 }
        """,
        loom_host,
        COUNTER,
        "app_stuck",
    )
    await app.start()
    for n in range(5):
        await app.bus.publish("work", Event("timer.tick", json.dumps({"tick": n}).encode()))
    with caplog.at_level(logging.WARNING, logger="loom.app"):
        report = await app.stop()
    assert not report.drained
    assert report.agents[0].processed < 5
    assert "mailboxes not drained within 0.2 s" in caplog.text
    assert app.phase == "stopped"


class Lifecycle:
    def __init__(self):
        self.calls = []

    @hookimpl
    async def loom_app_startup(self, app):
        self.calls.append(("startup", app.name, type(app.bus).__name__, app.runtime.agent_ids()))
        app.broker.register_contribution(Capability(name="late.hello", handler=lambda: "hi"))
        app.extensions["lifecycle"] = self

    @hookimpl
    def loom_app_shutdown(self, app):
        self.calls.append(("shutdown", app.name, app.extensions.pop("lifecycle") is self))


class Broken:
    @hookimpl
    def loom_app_startup(self, app):
        raise RuntimeError("license server unreachable")

    @hookimpl
    async def loom_app_shutdown(self, app):
        raise ValueError("could not say goodbye")


async def test_plugin_lifecycle_hooks_run_and_a_failing_one_is_reported(
    tmp_path, loom_host, register_plugin
):
    lifecycle = Lifecycle()
    register_plugin(lifecycle, "lifecycle")
    register_plugin(Broken(), "broken")
    app = _app(
        tmp_path,
        """
        [app]
        name = "hooks"
        [state]
        backend = "memory"
        [[agents]]
        id = "caller"
        type = "app_hooks:call"
        topics = ["in"]
        """,
        loom_host,
        """
        async def call(ctx, event):
            text = await ctx.tool("late.hello")
            await ctx.emit("out", "said", text.encode())
        """,
        "app_hooks",
    )
    await app.start()
    # The startup hook ran after the bus and broker existed, before any agent.
    assert lifecycle.calls == [("startup", "hooks", "MemoryBus", [])]
    [failure] = app.failures
    assert (failure.plugin, failure.hook) == ("broken", "loom_app_startup")
    assert "license server unreachable" in failure.error
    # ... and the app runs on.
    said = await app.bus.subscribe("out")
    await app.bus.publish("in", Event("go"))
    _, event = await asyncio.wait_for(said.get(), 5)
    assert event.payload == b"hi"
    report = await app.stop()
    assert lifecycle.calls[-1] == ("shutdown", "hooks", True)
    hooks = [(f.plugin, f.hook) for f in report.failures]
    assert hooks == [("broken", "loom_app_startup"), ("broken", "loom_app_shutdown")]


async def test_a_crashing_agent_is_supervised_and_the_app_goes_on(tmp_path, loom_host):
    app = _app(
        tmp_path,
        """
        [app]
        name = "crashy"
        [state]
        backend = "memory"
        [[agents]]
        id = "fragile"
        type = "app_crashy:handle"
        topics = ["ticks"]
        [[sources]]
        type = "timer"
        topic = "ticks"
        options = { every_s = 0.01, count = 4, delay_s = 0 }
        """,
        loom_host,
        """
        import json

        async def handle(ctx, event):
            if json.loads(event.payload)["tick"] == 2:
                raise RuntimeError("tick two is cursed")
        """,
        "app_crashy",
    )
    report = await app.run()
    [info] = report.agents
    assert (info.processed, info.failures, info.restarts) == (3, 1, 1)
    assert "tick two is cursed" in (info.last_error or "")
    assert report.reason == StopReason.EXHAUSTED


async def test_agents_reach_the_app_and_its_router(tmp_path, loom_host, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    app = _app(
        tmp_path,
        """
        [app]
        name = "thinker"
        [state]
        backend = "memory"
        [[agents]]
        id = "thinker"
        type = "app_thinker:Thinker"
        topics = ["questions"]
        """,
        loom_host,
        """
        from loom.agents import Agent
        from loom.app import current_app
        from loom.models import RoutingRequest

        class Thinker(Agent):
            def __init__(self, app):
                self.app = app

            async def on_event(self, ctx, event):
                assert current_app() is self.app
                routed = await self.app.router.run(
                    RoutingRequest(event_type=event.type, agent_id=ctx.agent_id),
                    [{"role": "user", "content": event.payload.decode()}],
                )
                await ctx.emit("answers", "answer", routed.turn.text.encode(),
                               metadata={"provider": routed.provider})
        """,
        "app_thinker",
    )
    async with app:
        answers = await app.bus.subscribe("answers")
        decisions = await app.bus.subscribe("runtime.routing")
        await app.bus.publish("questions", Event("question", b"is it warm?"))
        _, answer = await asyncio.wait_for(answers.get(), 5)
        _, decision = await asyncio.wait_for(decisions.get(), 5)
    assert answer.metadata["provider"] == "deterministic"
    assert answer.payload.startswith(b"[deterministic model, no LLM configured]")
    assert decision.type == "routing.decision"
    assert decision.metadata["provider"] == "deterministic"


def test_current_app_outside_an_app_says_so():
    with pytest.raises(AppError, match="no app is running here"):
        current_app()


async def test_the_parts_exist_only_once_started(tmp_path, loom_host):
    app = _app(tmp_path, '[app]\nname = "early"\n', loom_host)
    with pytest.raises(AppError, match="once the app has started"):
        _ = app.bus


async def test_a_source_that_cannot_start_fails_the_start_and_undoes_it(tmp_path, loom_host):
    app = _app(
        tmp_path,
        """
        [app]
        name = "nofile"
        [[sources]]
        type = "file"
        name = "feed"
        topic = "lines"
        options = { path = "missing.txt" }
        """,
        loom_host,
    )
    with pytest.raises(AppError, match=r"source 'feed' could not start: .*missing\.txt"):
        await app.start()
    assert app.phase == "failed"
    # The state store was closed again: another process (or store) can open it.
    async with RocksDBStateStore(tmp_path / ".loom-data" / "nofile"):
        pass


async def test_a_locked_state_store_is_a_clear_error(tmp_path, loom_host):
    app = _app(tmp_path, '[app]\nname = "locked"\n', loom_host)
    async with RocksDBStateStore(tmp_path / ".loom-data" / "locked"):
        with pytest.raises(AppError, match="state store 'rocksdb' could not open"):
            await app.start()


async def test_bus_options_the_backend_refuses_are_a_config_error(tmp_path, loom_host):
    app = _app(
        tmp_path,
        '[app]\nname = "b"\n[state]\nbackend = "memory"\n[bus]\noptions = { wings = 2 }\n',
        loom_host,
    )
    with pytest.raises(AppConfigError) as info:
        await app.start()
    assert info.value.keys == ["bus.options"]
    assert "wings" in str(info.value)


class Gauge:
    """A contributed source and participant, as plugins (loom-audio) make them."""

    def __init__(self, name="gauge", topic="gauge", level=1):
        self.name, self.topic, self.level = name, topic, level
        self.finished = asyncio.Event()
        self.stopped = False

    async def start(self, bus):
        await bus.publish(self.topic, Event("gauge.level", str(self.level).encode()))
        self.finished.set()

    async def stop(self):
        self.stopped = True

    async def wait(self):
        await self.finished.wait()


class Contributions:
    @hookimpl
    def loom_event_sources(self):
        return [EventSource(name="gauge", factory=Gauge)]

    @hookimpl
    def loom_agent_types(self):
        return [AgentType(name="gauge-stage", factory=Gauge)]


async def test_contributed_sources_and_participants_start_and_stop(
    tmp_path, loom_host, register_plugin
):
    register_plugin(Contributions(), "contributions")
    app = _app(
        tmp_path,
        """
        [app]
        name = "gauges"
        [state]
        backend = "memory"
        [[agents]]
        id = "stage"
        type = "gauge-stage"
        params = { topic = "stage.out", level = 9 }
        [[agents]]
        id = "reader"
        type = "app_gauges:read"
        topics = ["levels"]
        [[sources]]
        type = "gauge"
        topic = "levels"
        options = { level = 4 }
        """,
        loom_host,
        """
        async def read(ctx, event):
            await ctx.state.put("level", event.payload)
        """,
        "app_gauges",
    )
    stage_events = None
    await app.start()
    try:
        stage_events = app.agents["stage"]
        assert app.sources["gauge"].level == 4
    finally:
        report = await app.stop()
    assert stage_events.stopped and app.sources["gauge"].stopped
    assert report.agents[0].processed == 1


async def test_telemetry_is_configured_and_instrumented(tmp_path, loom_host):
    httpx = pytest.importorskip("httpx2", reason="the HTTP client of loom.models")
    app = _app(
        tmp_path,
        """
        [app]
        name = "observed"
        [state]
        backend = "memory"
        [telemetry]
        tracing = "all"
        prometheus = "127.0.0.1:0"
        [[agents]]
        id = "counter"
        type = "app_observed:Counter"
        topics = ["ticks"]
        """,
        loom_host,
        COUNTER,
        "app_observed",
    )
    async with app:
        assert app.telemetry is not None
        lines = app.telemetry_lines()
        [metrics] = [line for line in lines if "Prometheus" in line]
        url = metrics.split()[-1]
        await app.bus.publish("ticks", Event("timer.tick", b"{}"))
        while app.runtime.info("counter").processed < 1:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as client:
            body = (await client.get(url)).text
    assert 'loom_agent_processed_total{agent="counter"} 1.0' in body
    report_lines = app.telemetry_lines()
    assert report_lines == lines  # kept after shutdown, for the report


async def test_stop_after_a_failed_start_is_quiet(tmp_path, loom_host):
    app = _app(
        tmp_path,
        """
        [app]
        name = "twice"
        [[sources]]
        type = "file"
        topic = "lines"
        options = { path = "missing.txt" }
        """,
        loom_host,
    )
    with pytest.raises(AppError):
        await app.start()
    report = await app.stop()
    assert report.errors == []
    assert report.agents == []
