"""loom.toml validation: every bad key is named with its path, the file, and what is expected."""

from __future__ import annotations

import textwrap

import pytest

from loom.app import AppConfig, AppConfigError, load_config, parse_config
from loom.errors import LoomError


def _load(tmp_path, text):
    path = tmp_path / "loom.toml"
    path.write_text(textwrap.dedent(text))
    return path, load_config(path)


def _error(tmp_path, text) -> AppConfigError:
    path = tmp_path / "loom.toml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(AppConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(str(path))
    return info.value


def test_a_minimal_app_takes_the_defaults(tmp_path):
    _, config = _load(tmp_path, '[app]\nname = "tiny"\n')
    assert isinstance(config, AppConfig)
    assert (config.bus.backend, config.state.backend, config.router.policy) == (
        "memory",
        "rocksdb",
        "rules",
    )
    assert config.router.topic == "runtime.routing"
    assert (config.agents, config.sources, config.models, config.capabilities) == ([], [], [], [])
    assert config.run_for is None
    assert config.telemetry == {}
    assert config.app.drain_timeout_s == 5.0


def test_every_section_is_read(tmp_path):
    _, config = _load(
        tmp_path,
        """
        run_for = 12.5

        [app]
        name = "full"
        description = "all of it"
        drain_timeout_s = 2

        [bus]
        backend = "nats"
        options = { servers = ["nats://127.0.0.1:4222"] }

        [state]
        backend = "memory"

        [router]
        policy = "bandit"
        options = { strategy = "ucb1", seed = 7 }

        [[models]]
        name = "local"
        provider = "deterministic"
        location = "local"

        [[models]]
        name = "gpt"
        provider = "openai"
        options = { model = "gpt-4o-mini" }
        cost_per_call = 0.002

        [telemetry]
        tracing = "sampled"
        sample_ratio = 0.25
        prometheus = "127.0.0.1:0"

        [[agents]]
        id = "a1"
        type = "mod:Agent1"
        topics = ["sensor.*.temp", "alerts.>"]
        params = { threshold = 3 }

        [[capabilities]]
        ref = "mod.tools"

        [[capabilities]]
        plugin = "*"
        exclude = ["tts.*"]

        [[mcp.servers]]
        name = "time"
        command = "mcp-server-time"

        [[sources]]
        type = "timer"
        topic = "ticks"
        options = { every_s = 1, count = 3 }
        """,
    )
    assert config.run_for == 12.5
    assert config.bus.options == {"servers": ["nats://127.0.0.1:4222"]}
    assert [m.name for m in config.models] == ["local", "gpt"]
    assert config.models[1].cost_per_call == 0.002
    assert config.telemetry["tracing"] == "sampled"
    assert config.agents[0].topics == ["sensor.*.temp", "alerts.>"]
    assert config.capabilities[1].exclude == ["tts.*"]
    assert config.mcp.servers == [{"name": "time", "command": "mcp-server-time"}]
    assert config.sources[0].label == "timer"


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('colour = 1\n[app]\nname = "a"\n', "colour", "unknown key"),
        ('[app]\nname = "a"\ncolour = "red"\n', "app.colour", "unknown key"),
        ('[app]\nname = "a b"\n', "app.name", "an app name is"),
        ("[bus]\nbackend = 'memory'\n", "app", "required key is missing"),
        ('[app]\nname = "a"\n[bus]\nbackend = "memory"\nqueue = 3\n', "bus.queue", "unknown key"),
        ('[app]\nname = "a"\n[state]\noptions = 3\n', "state.options", "dictionary"),
        ('[app]\nname = "a"\n[router]\ntopic = "a..b"\n', "router.topic", "invalid topic"),
        (
            '[app]\nname = "a"\n[[models]]\nname = "m"\nprovider = "x"\nlocation = "moon"\n',
            "models[0].location",
            "'local' or 'cloud'",
        ),
        ('[app]\nname = "a"\n[[agents]]\nid = "x"\n', "agents[0].type", "required key is missing"),
        (
            '[app]\nname = "a"\n[[agents]]\nid = "a.b"\ntype = "t"\n',
            "agents[0].id",
            "without dots or spaces",
        ),
        (
            '[app]\nname = "a"\n[[agents]]\nid = "x"\ntype = "t"\ntopics = ["ok", "a..b"]\n',
            "agents[0].topics[1]",
            "invalid topic",
        ),
        (
            '[app]\nname = "a"\n[[agents]]\nid = "x"\ntype = "t"\nprio = 1\n',
            "agents[0].prio",
            "unknown key",
        ),
        (
            '[app]\nname = "a"\n[[capabilities]]\nref = "m:f"\nplugin = "*"\n',
            "capabilities[0]",
            "exactly one of 'ref'",
        ),
        ('[app]\nname = "a"\n[[capabilities]]\n', "capabilities[0]", "exactly one of 'ref'"),
        (
            '[app]\nname = "a"\n[[capabilities]]\nref = "1bad"\n',
            "capabilities[0].ref",
            "Python reference",
        ),
        ('[app]\nname = "a"\n[mcp]\nservers = 3\n', "mcp.servers", "valid list"),
        (
            '[app]\nname = "a"\n[[sources]]\ntype = "timer"\ntopics = "x"\n',
            "sources[0].topics",
            "unknown key",
        ),
        ("run_for = -1\n[app]\nname = 'a'\n", "run_for", "greater than 0"),
        ('[app]\nname = "a"\n[telemetry]\ncolour = 1\n', "telemetry.colour", "unknown key"),
        (
            '[app]\nname = "a"\n[telemetry]\ntracing = "some"\n',
            "telemetry.tracing",
            "'off', 'sampled' or 'all'",
        ),
        (
            '[app]\nname = "a"\n[telemetry]\nprometheus = "nowhere"\n',
            "telemetry.prometheus",
            "host:port",
        ),
    ],
)
def test_a_bad_key_is_named_with_its_path(tmp_path, text, key, expected):
    error = _error(tmp_path, text)
    assert key in error.keys, error
    [issue] = [i for i in error.issues if i.key == key]
    assert expected in issue.message
    assert f"{key}: " in str(error)


def test_all_problems_are_reported_at_once(tmp_path):
    error = _error(
        tmp_path,
        """
        [app]
        name = "a"
        [[agents]]
        id = "one"
        [[agents]]
        id = "two"
        type = "t"
        extra = 1
        [[models]]
        provider = "openai"
        """,
    )
    assert error.keys == ["models[0].name", "agents[0].type", "agents[1].extra"]
    assert str(error).splitlines()[0].endswith("3 problems:")


def test_duplicate_names_point_at_the_second_one(tmp_path):
    error = _error(
        tmp_path,
        """
        [app]
        name = "a"
        [[agents]]
        id = "twin"
        type = "m:A"
        [[agents]]
        id = "other"
        type = "m:B"
        [[agents]]
        id = "twin"
        type = "m:C"
        [[sources]]
        type = "timer"
        [[sources]]
        type = "timer"
        """,
    )
    assert error.keys == ["agents[2].id", "sources[1].name"]
    assert "'twin' is already used by agents[0]" in str(error)


def test_a_file_that_is_not_toml_is_named_with_the_line(tmp_path):
    error = _error(tmp_path, '[app]\nname = "a\n')
    assert error.keys == [""]
    assert "not valid TOML" in str(error) and "line 2" in str(error)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(AppConfigError, match=r"nothere\.toml: no such file"):
        load_config(tmp_path / "nothere.toml")


def test_the_error_is_a_value_error_and_a_loom_error():
    with pytest.raises(AppConfigError) as info:
        parse_config({"app": {}}, source="inline")
    assert isinstance(info.value, ValueError) and isinstance(info.value, LoomError)
    assert str(info.value) == "inline: app.name: required key is missing"
