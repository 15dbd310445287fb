"""Server configuration: in code and in TOML, and errors that name the file and the key."""

from __future__ import annotations

import pytest

from loom_mcp import McpConfigError, McpServerConfig, load_server_configs, parse_server_configs


def test_command_means_stdio_and_url_means_http():
    stdio, http = parse_server_configs(
        [
            {"name": "time", "command": "mcp-server-time", "args": ["--local-timezone", "UTC"]},
            {"name": "remote", "url": "http://127.0.0.1:3001/mcp", "headers": {"X-Key": "k"}},
        ]
    )
    assert (stdio.kind, stdio.args, stdio.describe()) == (
        "stdio",
        ("--local-timezone", "UTC"),
        "mcp-server-time --local-timezone UTC",
    )
    assert (http.kind, dict(http.headers)) == ("http", {"X-Key": "k"})
    legacy = McpServerConfig(name="old", url="http://127.0.0.1:3001/sse", transport="sse")
    assert legacy.kind == "sse"


def test_defaults_are_the_documented_ones():
    config = McpServerConfig(name="x", command="x")
    assert (config.protocol, config.connect_timeout_s, config.call_timeout_s) == ("auto", 10, 30)
    assert (config.reconnect, config.allow_sampling, config.inherit_env) == (True, False, False)
    assert config.capability_version == "1.0"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"name": "x"}, "exactly one of 'command' (stdio) or 'url'"),
        ({"name": "x", "command": "a", "url": "http://h/mcp"}, "exactly one of"),
        ({"name": "a:b", "command": "a"}, "name: String should match pattern"),
        ({"name": "a.b", "command": "a"}, "name: String should match pattern"),
        ({"name": "x", "comand": "a"}, "comand: Extra inputs are not permitted"),
        ({"name": "x", "url": "ftp://h"}, "url: String should match pattern"),
        ({"name": "x", "command": "a", "transport": "http"}, "transport 'http' needs 'url'"),
        ({"name": "x", "command": "a", "protocol": "latest"}, "protocol must be 'auto'"),
        ({"name": "x", "command": "a", "roots": ["https://h/"]}, "file:// URIs"),
        ({"name": "x", "command": "a", "call_timeout_s": 0}, "call_timeout_s: Input should be"),
    ],
)
def test_a_bad_entry_is_named_with_its_key(entry, expected):
    with pytest.raises(McpConfigError) as caught:
        parse_server_configs([{"command": None} | entry if "command" not in entry else entry])
    message = str(caught.value)
    assert expected in message
    assert message.startswith("<config>: servers[0]")
    assert isinstance(caught.value, ValueError)


def test_a_duplicate_name_names_both_entries():
    with pytest.raises(
        McpConfigError, match=r"servers\[1\] \('t'\): name 't' is already used by servers\[0\]"
    ):
        parse_server_configs([{"name": "t", "command": "a"}, {"name": "t", "command": "b"}])


def test_toml_app_section_and_upstream_layout(tmp_path):
    app = tmp_path / "loom.toml"
    app.write_text(
        '[app]\nname = "demo"\n\n[[mcp.servers]]\nname = "time"\ncommand = "mcp-server-time"\n'
        'env = { TZ = "UTC" }\n'
    )
    upstream = tmp_path / "servers.toml"
    upstream.write_text('[[servers]]\nname = "fs"\ncommand = "npx"\nargs = ["-y", "fs"]\n')
    [time_server] = load_server_configs(app)
    [fs] = load_server_configs(upstream)
    assert (time_server.name, dict(time_server.env)) == ("time", {"TZ": "UTC"})
    assert (fs.name, fs.args) == ("fs", ("-y", "fs"))
    empty = tmp_path / "none.toml"
    empty.write_text('[app]\nname = "x"\n')
    assert load_server_configs(empty) == []


def test_toml_errors_name_the_file(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[[servers]\nname = 1\n")
    with pytest.raises(McpConfigError, match=r"broken.toml: not valid TOML"):
        load_server_configs(broken)
    with pytest.raises(McpConfigError, match=r"missing.toml: cannot read the file"):
        load_server_configs(tmp_path / "missing.toml")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[mcp]\nservers = "time"\n')
    with pytest.raises(McpConfigError, match=r"wrong.toml: mcp.servers: expected an array"):
        load_server_configs(wrong)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[mcp.servers]]\nname = "t"\ncommand = "x"\ntimeout = 3\n')
    with pytest.raises(McpConfigError, match=r"bad.toml: mcp.servers\[0\] \('t'\): timeout: Extra"):
        load_server_configs(bad)
