"""Settings of the server and the client: defaults, the environment, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from loom_bridge import (
    DEFAULT_ADDRESS,
    Backoff,
    BridgeConfig,
    BridgeConfigError,
    ClientConfig,
    DuplicatePolicy,
    TLSFiles,
)


def test_the_default_address_is_loopback_only():
    assert DEFAULT_ADDRESS == "127.0.0.1:50051"
    assert BridgeConfig().address == DEFAULT_ADDRESS
    assert BridgeConfig.from_env({}).address == DEFAULT_ADDRESS
    assert ClientConfig.from_env({}).address == DEFAULT_ADDRESS


def test_server_settings_from_the_environment(tmp_path: Path):
    config = BridgeConfig.from_env(
        {
            "LOOM_BRIDGE_ADDR": "0.0.0.0:6000",
            "LOOM_BRIDGE_TOKEN": "abc",
            "LOOM_BRIDGE_TLS_CERT": str(tmp_path / "c.pem"),
            "LOOM_BRIDGE_TLS_KEY": str(tmp_path / "k.pem"),
            "LOOM_BRIDGE_MAX_MESSAGE_BYTES": "1024",
            "LOOM_BRIDGE_DUPLICATE_IDS": "REFUSE",
        }
    )
    assert config.address == "0.0.0.0:6000"
    assert config.token == "abc"
    assert config.tls == TLSFiles(tmp_path / "c.pem", tmp_path / "k.pem")
    assert config.max_message_bytes == 1024
    assert config.duplicate_ids is DuplicatePolicy.REFUSE


def test_arguments_win_over_the_environment_unless_none():
    env = {"LOOM_BRIDGE_ADDR": "127.0.0.1:7000", "LOOM_BRIDGE_TOKEN": "env"}
    assert BridgeConfig.from_env(env, address="127.0.0.1:7001").address == "127.0.0.1:7001"
    assert BridgeConfig.from_env(env, token=None).token == "env"
    client = ClientConfig.from_env(env, address=None, token="arg")
    assert (client.address, client.token) == ("127.0.0.1:7000", "arg")


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"address": "nohost"}, "address"),
        ({"address": "host:port"}, "not a number"),
        ({"address": "host:70000"}, "outside 0..65535"),
        ({"token": ""}, "token"),
        ({"token": "with space"}, "token"),
        ({"outbound_queue": 0}, "outbound_queue"),
        ({"control_queue": -1}, "control_queue"),
        ({"max_message_bytes": 0}, "max_message_bytes"),
        ({"max_inflight_calls": 0}, "max_inflight_calls"),
        ({"handshake_timeout_s": 0}, "handshake_timeout_s"),
        ({"heartbeat_timeout_s": -1}, "heartbeat_timeout_s"),
        ({"max_registrations": -1}, "max_registrations"),
        ({"duplicate_ids": "share"}, "duplicate_ids"),
    ],
)
def test_bad_server_settings_name_the_setting(settings, names):
    with pytest.raises(BridgeConfigError, match=names) as caught:
        BridgeConfig(**settings)
    assert isinstance(caught.value, ValueError)


def test_bad_environment_values_name_the_variable():
    with pytest.raises(BridgeConfigError, match="LOOM_BRIDGE_MAX_MESSAGE_BYTES"):
        BridgeConfig.from_env({"LOOM_BRIDGE_MAX_MESSAGE_BYTES": "lots"})
    with pytest.raises(BridgeConfigError, match="address"):
        ClientConfig.from_env({"LOOM_BRIDGE_ADDR": "nowhere"})


def test_backoff_doubles_up_to_its_ceiling():
    backoff = Backoff()
    delays = [backoff.initial_s]
    for _ in range(6):
        delays.append(backoff.next(delays[-1]))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    with pytest.raises(BridgeConfigError, match="backoff"):
        Backoff(initial_s=0)
    with pytest.raises(BridgeConfigError, match="backoff"):
        Backoff(initial_s=5, max_s=1)


def test_client_defaults_follow_upstream():
    config = ClientConfig()
    assert config.heartbeat_s == 15.0
    assert config.outbound_queue == 1024
    assert config.backoff == Backoff(0.5, 2.0, 10.0)
    assert not config.secure
    assert ClientConfig(tls_ca=b"pem").secure and ClientConfig(tls=True).secure


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"heartbeat_s": 0}, "heartbeat_s"),
        ({"outbound_queue": 0}, "outbound_queue"),
        ({"connect_timeout_s": -1}, "connect_timeout_s"),
        ({"tls_key": b"k"}, "tls_cert"),
    ],
)
def test_bad_client_settings_name_the_setting(settings, names):
    with pytest.raises(BridgeConfigError, match=names):
        ClientConfig(**settings)


def test_a_missing_client_pem_is_reported_when_connecting(tmp_path: Path):
    config = ClientConfig(tls_ca=tmp_path / "absent-ca.pem")
    with pytest.raises(BridgeConfigError, match=r"absent-ca\.pem"):
        config.channel()


@pytest.mark.parametrize(("given", "expected"), [(None, "ERROR"), ("DEBUG", "DEBUG")])
def test_importing_the_bridge_quiets_grpc_core_unless_told_otherwise(given, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    if given is not None:
        env["GRPC_VERBOSITY"] = given
    probe = "import loom_bridge, os; print(os.environ['GRPC_VERBOSITY'])"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == expected
