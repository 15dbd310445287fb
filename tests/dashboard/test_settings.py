"""DashboardSettings: defaults, validation that names the key, the environment, and the
settings read from an app's configuration."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from pydantic import BaseModel

from loom_dashboard import DashboardConfigError, DashboardSettings, settings_from_app


def test_defaults_listen_on_loopback_without_a_token():
    s = DashboardSettings()
    assert (s.enabled, s.host, s.port, s.token) == (False, "127.0.0.1", 3030, None)
    assert s.public()["token"] is False


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.org", "::"])
def test_a_token_is_required_off_loopback(host):
    with pytest.raises(DashboardConfigError) as info:
        DashboardSettings(host=host)
    assert info.value.key == "dashboard.token"
    assert f"listens on {host!r}, which is not a loopback address" in str(info.value)
    assert DashboardSettings(host=host, token="t").token == "t"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_needs_no_token(host):
    assert DashboardSettings(host=host).token is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("port", 70000, "dashboard.port: expected an integer from 0 to 65535, got 70000"),
        ("port", "80", "dashboard.port: expected an integer from 0 to 65535, got '80'"),
        ("viewer_queue", 1, "dashboard.viewer_queue: expected an integer from 2 to 10000"),
        ("tick_s", 0, "dashboard.tick_s: expected a number from 0.01 to 60, got 0"),
        ("tick_s", True, "dashboard.tick_s: expected a number, got True"),
        ("enabled", "yes", "dashboard.enabled: expected true or false, got 'yes'"),
        ("token", "  ", "dashboard.token: expected a non-empty string"),
        ("host", "", "dashboard.host: expected an address"),
    ],
)
def test_bad_values_name_the_key(field, value, message):
    with pytest.raises(DashboardConfigError, match="^" + message.replace("(", r"\(")):
        DashboardSettings(**{field: value})


def test_from_mapping_refuses_unknown_keys():
    with pytest.raises(DashboardConfigError) as info:
        DashboardSettings.from_mapping({"enabled": True, "prot": 1}, environ={})
    assert info.value.key == "dashboard.prot"
    assert "unknown key; known: enabled, host, max_threads" in str(info.value)


def test_the_environment_fills_token_and_port():
    env = {"LOOM_DASHBOARD_TOKEN": "from-env", "LOOM_DASHBOARD_PORT": "4040"}
    s = DashboardSettings.from_mapping({"host": "0.0.0.0"}, environ=env)
    assert (s.token, s.port) == ("from-env", 4040)
    # What the table says wins.
    s = DashboardSettings.from_mapping({"token": "mine", "port": 1}, environ=env)
    assert (s.token, s.port) == ("mine", 1)
    with pytest.raises(DashboardConfigError, match="LOOM_DASHBOARD_PORT: expected a port"):
        DashboardSettings.from_mapping({}, environ={"LOOM_DASHBOARD_PORT": "x"})


class _Section(BaseModel):
    enabled: bool = False
    port: int | None = None


@dataclass
class _Dataclass:
    enabled: bool = True
    port: int = 0


def test_settings_from_app_configurations():
    assert settings_from_app(SimpleNamespace(config=SimpleNamespace())) is None
    assert settings_from_app(SimpleNamespace()) is None
    table = SimpleNamespace(config=SimpleNamespace(dashboard={"enabled": True, "port": 0}))
    assert settings_from_app(table) == DashboardSettings(enabled=True, port=0)
    model = SimpleNamespace(config=SimpleNamespace(dashboard=_Section(enabled=True)))
    assert settings_from_app(model).enabled is True
    assert settings_from_app(model).port == DashboardSettings.from_mapping({}).port
    data = SimpleNamespace(config=SimpleNamespace(dashboard=_Dataclass()))
    assert settings_from_app(data) == DashboardSettings(enabled=True, port=0)
    mapping = SimpleNamespace(config={"dashboard": {"enabled": False}})
    assert settings_from_app(mapping) == DashboardSettings.from_mapping({"enabled": False})
    with pytest.raises(DashboardConfigError, match="dashboard: expected a table, got int"):
        settings_from_app(SimpleNamespace(config=SimpleNamespace(dashboard=3)))
