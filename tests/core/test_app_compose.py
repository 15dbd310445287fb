"""Composition: every name in loom.toml resolved against what the host's plugins contribute."""

from __future__ import annotations

import textwrap

import pytest

from loom import hookimpl
from loom.app import App, AppConfigError, load_config
from loom.contributions import AgentType, Capability
from loom.models import DeterministicModel, Location, OpenAIChatModel, RulePolicy


def _app(tmp_path, text, host, **files) -> App:
    for name, body in files.items():
        (tmp_path / name).write_text(textwrap.dedent(body))
    path = tmp_path / "loom.toml"
    path.write_text(textwrap.dedent(text))
    return App(load_config(path), host=host, config_path=path)


def _plan_error(app: App) -> AppConfigError:
    with pytest.raises(AppConfigError) as info:
        app.plan()
    return info.value


class Tools:
    @hookimpl
    def loom_capabilities(self):
        return [
            Capability(name="text.upper", handler=lambda text: text.upper()),
            Capability(name="text.lower", handler=lambda text: text.lower()),
            Capability(name="tts.speak", handler=lambda text: text),
        ]


class MoreTools:
    @hookimpl
    def loom_capabilities(self):
        return [Capability(name="math.add", handler=lambda a, b: a + b)]


class Stage:
    """A bus participant, as audio stages are."""

    def __init__(self, level=1):
        self.level = level

    async def start(self, bus):
        self.bus = bus

    async def stop(self):
        self.bus = None


class Types:
    @hookimpl
    def loom_agent_types(self):
        return [AgentType(name="stage", factory=Stage)]


def test_unknown_names_list_what_is_installed(tmp_path, loom_host):
    app = _app(
        tmp_path,
        """
        [app]
        name = "a"
        [bus]
        backend = "redis"
        [state]
        backend = "sqlite"
        [router]
        policy = "coin"
        [[models]]
        name = "m"
        provider = "llamafile"
        [[agents]]
        id = "x"
        type = "sensr"
        [[sources]]
        type = "mqtt"
        """,
        loom_host,
    )
    error = _plan_error(app)
    assert error.keys == [
        "bus.backend",
        "state.backend",
        "router.policy",
        "models[0].provider",
        "agents[0].type",
        "sources[0].type",
    ]
    text = str(error)
    assert "unknown bus backend 'redis'; installed: memory" in text
    assert "unknown state store 'sqlite'; installed: memory, rocksdb" in text
    assert "unknown routing policy 'coin'; installed: bandit, rules" in text
    assert "unknown model provider 'llamafile'; installed: deterministic, openai" in text
    assert "unknown agent type 'sensr'; installed agent types: none" in text
    assert "'module:attr'" in text
    assert "unknown event source 'mqtt'; installed: file, timer" in text


def test_options_a_factory_refuses_are_named(tmp_path, loom_host):
    app = _app(
        tmp_path,
        """
        [app]
        name = "a"
        [bus]
        options = { wings = 2 }
        [router]
        options = { bogus = 1 }
        [[models]]
        name = "m"
        provider = "openai"
        options = { timeout_s = -1 }
        [[sources]]
        type = "timer"
        topic = "t"
        options = { every_s = 0 }
        """,
        loom_host,
    )
    error = _plan_error(app)
    assert error.keys == ["router.options", "models[0].options", "sources[0].options"]
    assert "routing policy 'rules' refused these options" in str(error)
    assert "timeout_s" in str(error)
    assert "every_s must be a finite number > 0" in str(error)
    # The bus is built when the app starts, so its options fail then (see test_app.py).


def test_python_references_are_imported_from_the_app_directory(tmp_path, loom_host):
    app = _app(
        tmp_path,
        """
        [app]
        name = "a"
        [[agents]]
        id = "cls"
        type = "compose_refs:Counter"
        params = { start = 5 }
        [[agents]]
        id = "fn"
        type = "compose_refs:echo"
        [[agents]]
        id = "inst"
        type = "compose_refs:READY"
        [[capabilities]]
        ref = "compose_refs"
        """,
        loom_host,
        **{
            "compose_refs.py": """
            from loom.actions import capability
            from loom.agents import Agent

            class Counter(Agent):
                def __init__(self, start=0, app=None):
                    self.start, self.app = start, app

            READY = Counter(1)

            async def echo(ctx, event):
                pass

            @capability("refs.double")
            def double(x: int) -> int:
                return 2 * x

            @capability("refs.half")
            def half(x: float) -> float:
                return x / 2
            """
        },
    )
    plan = app.plan()
    agents = {a.entry.id: a for a in plan.agents}
    assert agents["cls"].obj.start == 5
    assert agents["cls"].obj.app is app  # an `app` parameter receives the App
    assert type(agents["fn"].obj).__name__ == "FunctionAgent"
    assert agents["inst"].obj.start == 1
    assert [c.name for c in plan.capabilities] == ["refs.double", "refs.half"]


def test_bad_references_say_what_is_wrong(tmp_path, loom_host):
    app = _app(
        tmp_path,
        """
        [app]
        name = "a"
        [[agents]]
        id = "a1"
        type = "no_such_module_here:Agent"
        [[agents]]
        id = "a2"
        type = "bad_refs:Missing"
        [[agents]]
        id = "a3"
        type = "bad_refs:handler"
        params = { x = 1 }
        [[agents]]
        id = "a4"
        type = "bad_refs:NUMBER"
        [[agents]]
        id = "a5"
        type = "broken_refs:X"
        [[capabilities]]
        ref = "bad_refs:handler"
        [[capabilities]]
        ref = "bad_refs"
        """,
        loom_host,
        **{
            "bad_refs.py": "NUMBER = 3\nasync def handler(ctx, event):\n    pass\n",
            "broken_refs.py": "raise RuntimeError('config server down')\n",
        },
    )
    error = _plan_error(app)
    messages = {issue.key: issue.message for issue in error.issues}
    assert "no module named 'no_such_module_here'" in messages["agents[0].type"]
    assert "'bad_refs' has no attribute 'Missing'" in messages["agents[1].type"]
    assert "takes no params" in messages["agents[2].params"]
    assert "is a int" in messages["agents[3].type"]
    assert "RuntimeError: config server down" in messages["agents[4].type"]
    assert "not a @capability function" in messages["capabilities[0].ref"]
    assert "defines no @capability function" in messages["capabilities[1].ref"]


def test_a_module_of_the_same_name_from_another_app_is_replaced(tmp_path, loom_host):
    first, second = tmp_path / "one", tmp_path / "two"
    for folder, value in ((first, 1), (second, 2)):
        folder.mkdir()
        (folder / "same_name_agents.py").write_text(
            f"from loom.agents import Agent\nclass A(Agent):\n    VALUE = {value}\n"
        )
        (folder / "loom.toml").write_text(
            '[app]\nname = "x"\n[[agents]]\nid = "a"\ntype = "same_name_agents:A"\n'
        )
    values = [
        App.from_file(folder / "loom.toml", host=loom_host).plan().agents[0].obj.VALUE
        for folder in (first, second)
    ]
    assert values == [1, 2]


def test_capabilities_from_plugins_are_selected_by_plugin_and_glob(
    tmp_path, loom_host, register_plugin
):
    register_plugin(Tools(), "tools")
    register_plugin(MoreTools(), "more")
    everything = _app(tmp_path, '[app]\nname = "a"\n', loom_host)
    assert [c.name for c in everything.plan().capabilities] == [
        "math.add",
        "text.lower",
        "text.upper",
        "tts.speak",
    ]
    chosen = _app(
        tmp_path,
        """
        [app]
        name = "a"
        [[capabilities]]
        plugin = "tools"
        include = ["text.*"]
        exclude = ["text.lower"]
        """,
        loom_host,
    )
    plan = chosen.plan()
    assert [c.name for c in plan.capabilities] == ["text.upper"]
    assert plan.capability_origins == {"text.upper": "capabilities[0]"}


def test_capability_selection_errors(tmp_path, loom_host, register_plugin):
    register_plugin(Tools(), "tools")
    app = _app(
        tmp_path,
        """
        [app]
        name = "a"
        [[capabilities]]
        plugin = "toolz"
        [[capabilities]]
        plugin = "*"
        [[capabilities]]
        ref = "dup_caps"
        """,
        loom_host,
        **{
            "dup_caps.py": """
            from loom.actions import capability

            @capability("text.upper")
            def upper(text: str) -> str:
                return text.upper()
            """
        },
    )
    error = _plan_error(app)
    messages = {issue.key: issue.message for issue in error.issues}
    assert "no plugin named 'toolz' is loaded; loaded: tools" in messages["capabilities[0].plugin"]
    assert "'text.upper' version 1.0 also comes from capabilities[1]" in messages["capabilities[2]"]


def test_an_agent_type_can_make_a_bus_participant(tmp_path, loom_host, register_plugin):
    register_plugin(Types(), "types")
    app = _app(
        tmp_path,
        """
        [app]
        name = "a"
        [[agents]]
        id = "s"
        type = "stage"
        params = { level = 3 }
        [[agents]]
        id = "t"
        type = "stage"
        topics = ["x"]
        """,
        loom_host,
    )
    error = _plan_error(app)
    assert error.keys == ["agents[1].topics"]
    ok = _app(tmp_path, '[app]\nname = "a"\n[[agents]]\nid = "s"\ntype = "stage"\n', loom_host)
    [plan] = ok.plan().agents
    assert (plan.kind, plan.obj.level) == ("participant", 1)


def test_with_no_model_the_deterministic_provider_reasons_and_says_so(
    tmp_path, loom_host, monkeypatch
):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    app = _app(tmp_path, '[app]\nname = "a"\n', loom_host)
    plan = app.plan()
    [entry] = plan.models
    assert entry.name == "deterministic"
    assert isinstance(entry.model, DeterministicModel)
    assert entry.location is Location.LOCAL
    assert "no model configured" in app.reasoning
    assert "deterministic local provider" in app.reasoning
    assert isinstance(plan.policy, RulePolicy)


def test_openai_base_url_adds_that_endpoint(tmp_path, loom_host, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    app = _app(tmp_path, '[app]\nname = "a"\n', loom_host)
    names = [e.name for e in app.plan().models]
    assert names == ["openai", "deterministic"]
    openai = app.plan().models[0]
    assert isinstance(openai.model, OpenAIChatModel)
    assert openai.location is Location.CLOUD
    assert "http://127.0.0.1:9/v1/chat/completions" in app.reasoning


def test_configured_models_keep_their_location_and_estimates(tmp_path, loom_host):
    app = _app(
        tmp_path,
        """
        [app]
        name = "a"
        [[models]]
        name = "edge"
        provider = "openai"
        location = "local"
        est_latency_ms = 40
        options = { base_url = "http://127.0.0.1:9/v1", model = "qwen" }
        [[models]]
        name = "stub"
        provider = "deterministic"
        """,
        loom_host,
    )
    edge, stub = app.plan().models
    assert (edge.name, edge.location, edge.est_latency_ms) == ("edge", Location.LOCAL, 40)
    assert (stub.name, stub.location) == ("stub", Location.LOCAL)
    assert "'edge' (local at http://127.0.0.1:9/v1/chat/completions)" in app.reasoning


def test_state_paths_are_taken_from_the_app_directory(tmp_path, loom_host):
    default = _app(tmp_path, '[app]\nname = "paths"\n', loom_host)
    assert default.state_path == tmp_path / ".loom-data" / "paths"
    assert default.plan().state_options == {"path": str(tmp_path / ".loom-data" / "paths")}
    relative = _app(
        tmp_path, '[app]\nname = "p"\n[state]\noptions = { path = "db/here" }\n', loom_host
    )
    assert relative.state_path == tmp_path / "db" / "here"
    memory = _app(tmp_path, '[app]\nname = "p"\n[state]\nbackend = "memory"\n', loom_host)
    assert memory.state_path is None


def test_describe_lists_the_composition(tmp_path, loom_host):
    app = _app(
        tmp_path,
        """
        run_for = 3
        [app]
        name = "d"
        [[agents]]
        id = "x"
        type = "describe_refs:f"
        topics = ["in.>"]
        [[sources]]
        type = "timer"
        name = "clock"
        topic = "in.tick"
        options = { every_s = 1 }
        """,
        loom_host,
        **{"describe_refs.py": "def f(ctx, event):\n    pass\n"},
    )
    lines = dict(app.describe())
    assert lines["bus"] == "memory"
    assert lines["agent"] == "x (describe_refs:f) on in.>"
    assert lines["source"] == "clock (timer) -> in.tick"
    assert lines["run_for"] == "3 s"
    assert "telemetry: off (no [telemetry] section)" in app.notes


class Dashboard:
    """A plugin with a section of its own in loom.toml."""

    @hookimpl
    def loom_app_startup(self, app):
        pass


def test_a_plugin_may_have_a_section_of_its_own(tmp_path, loom_host, register_plugin):
    text = '[app]\nname = "a"\n[dashboard]\nport = 3030\n[agent]\nid = "typo"\n'
    error = _plan_error(_app(tmp_path, text, loom_host))
    assert error.keys == ["dashboard", "agent"]
    assert "unknown section [dashboard]: no loaded plugin is named 'dashboard'" in str(error)
    register_plugin(Dashboard(), "dashboard")
    error = _plan_error(_app(tmp_path, text, loom_host))
    assert error.keys == ["agent"]
    assert "(loaded plugins: dashboard)" in str(error)
    app = _app(tmp_path, '[app]\nname = "a"\n[dashboard]\nport = 3030\n', loom_host)
    app.plan()
    assert app.section("dashboard") == {"port": 3030}
    assert app.config.dashboard == {"port": 3030}
    assert app.section("nothing") == {}
    assert app.section("mcp") == {"servers": []}


class CheckedDashboard:
    """A plugin that checks its own section through ``loom_app_check``."""

    @hookimpl
    def loom_app_check(self, config):
        from loom.app import ConfigIssue

        port = config.plugin_sections.get("dashboard", {}).get("port")
        if port is not None and not isinstance(port, int):
            return [ConfigIssue("dashboard.port", f"expected an integer, got {port!r}")]
        return None


class BrokenCheck:
    @hookimpl
    def loom_app_check(self, config):
        raise RuntimeError("the check itself is broken")


class WrongCheck:
    @hookimpl
    def loom_app_check(self, config):
        return ["not an issue"]


def test_a_plugin_checks_its_own_section_before_anything_starts(
    tmp_path, loom_host, register_plugin
):
    register_plugin(CheckedDashboard(), "dashboard")
    error = _plan_error(_app(tmp_path, '[app]\nname = "a"\n[dashboard]\nport = "x"\n', loom_host))
    assert error.keys == ["dashboard.port"]
    assert "dashboard.port: expected an integer, got 'x'" in str(error)
    _app(tmp_path, '[app]\nname = "a"\n[dashboard]\nport = 3030\n', loom_host).plan()


def test_a_failing_or_malformed_check_is_reported_and_the_others_still_run(
    tmp_path, loom_host, register_plugin
):
    register_plugin(BrokenCheck(), "broken")
    register_plugin(WrongCheck(), "wrong")
    register_plugin(CheckedDashboard(), "dashboard")
    error = _plan_error(_app(tmp_path, '[app]\nname = "a"\n[dashboard]\nport = "x"\n', loom_host))
    assert error.keys == ["dashboard.port"]
    failures = {(f.plugin, f.hook): f.error for f in loom_host.failures}
    assert "the check itself is broken" in failures["broken", "loom_app_check"]
    assert "not a ConfigIssue" in failures["wrong", "loom_app_check"]
