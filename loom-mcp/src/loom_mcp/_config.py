"""Configuration of the MCP servers Loom connects to, in code or in a TOML file."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loom_mcp._errors import McpConfigError

__all__ = ["McpServerConfig", "load_server_configs", "parse_server_configs"]

#: Server names become the first half of capability names (``server:tool``) and a token of
#: bus topics (``mcp.{server}.status``), so they hold no ``:`` and no ``.``.
SERVER_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class McpServerConfig(BaseModel):
    """One MCP server: how to reach it, and how Loom treats it.

    Give ``command`` (a local server spoken to over stdio) or ``url`` (a remote one over
    streamable HTTP, or the legacy SSE transport with ``transport = "sse"``).

    Attributes:
        name: the server's name; its tools become capabilities ``{name}:{tool}``.
        command: executable of a stdio server.
        args: its arguments.
        env: environment variables for it, over a safe default set (HOME, PATH, ...).
        inherit_env: pass this process's whole environment instead of the safe set.
        cwd: its working directory.
        url: endpoint of an HTTP server (``http://127.0.0.1:3001/mcp``).
        headers: HTTP headers sent with every request (``Authorization``, ...).
        transport: ``stdio``, ``http`` or ``sse``; inferred from command/url when left out.
        protocol: ``auto`` (probe the 2026-07-28 era, fall back to the initialize
            handshake), ``legacy`` (handshake only, one round trip less), or a protocol
            version to adopt directly.
        connect_timeout_s: bound on starting the server and the protocol handshake.
        call_timeout_s: bound on one tool call when the caller sets none; on expiry the
            call answers TIMEOUT and the server is sent a cancellation.
        roots: directories (paths or ``file://`` URIs) offered to the server as roots.
        allow_sampling: answer the server's sampling requests through the app's model
            router (else the client does not declare sampling and they are refused).
        sampling_privacy: the privacy level of its sampling requests for the router
            (``public``, ``sensitive``, ``private``, ``local-only``; default: the router's).
        include_tools: glob patterns of tool names to expose (all when empty).
        exclude_tools: glob patterns of tool names never to expose.
        capability_version: version of the capabilities registered for its tools.
        reconnect: reconnect with backoff after a crash or a dropped connection.
        backoff_initial_s: first delay before reconnecting; doubles up to ``backoff_max_s``.
        backoff_max_s: longest delay between reconnection attempts.
        max_line_bytes: longest stdout line a stdio server may send; longer ones are
            discarded and counted.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SERVER_NAME_PATTERN)
    command: str | None = Field(default=None, min_length=1)
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = Field(default_factory=dict)
    inherit_env: bool = False
    cwd: str | None = None
    url: str | None = Field(default=None, pattern=r"^https?://")
    headers: Mapping[str, str] = Field(default_factory=dict)
    transport: Literal["stdio", "http", "sse"] | None = None
    protocol: str = "auto"
    connect_timeout_s: float = Field(default=10.0, gt=0)
    call_timeout_s: float = Field(default=30.0, gt=0)
    roots: tuple[str, ...] = ()
    allow_sampling: bool = False
    sampling_privacy: Literal["public", "sensitive", "private", "local-only"] | None = None
    include_tools: tuple[str, ...] = ()
    exclude_tools: tuple[str, ...] = ()
    capability_version: str = Field(default="1.0", min_length=1)
    reconnect: bool = True
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    max_line_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _check_endpoint(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of 'command' (stdio) or 'url' (http, sse)")
        if self.transport == "stdio" and self.command is None:
            raise ValueError("transport 'stdio' needs 'command'")
        if self.transport in ("http", "sse") and self.url is None:
            raise ValueError(f"transport {self.transport!r} needs 'url'")
        for root in self.roots:
            if "://" in root and not root.startswith("file://"):
                raise ValueError(f"roots are directories or file:// URIs, got {root!r}")
        if self.protocol not in ("auto", "legacy") and not self.protocol.startswith("20"):
            raise ValueError(
                f"protocol must be 'auto', 'legacy' or a version such as '2026-07-28', "
                f"got {self.protocol!r}"
            )
        return self

    @property
    def kind(self) -> Literal["stdio", "http", "sse"]:
        """The transport in use: the configured one, or the one command/url imply."""
        if self.transport is not None:
            return self.transport
        return "stdio" if self.command is not None else "http"

    def describe(self) -> str:
        """Where the server is, in words, for errors and ``loom mcp tools``."""
        if self.command is not None:
            return " ".join([self.command, *self.args])
        return str(self.url)


def parse_server_configs(
    entries: Sequence[Mapping[str, Any]], *, source: str = "<config>", key: str = "servers"
) -> list[McpServerConfig]:
    """Validate server entries (as read from TOML or built in code).

    Args:
        entries: one mapping per server.
        source: where they came from, for error messages (a file path).
        key: the key that held them, for error messages.

    Raises:
        McpConfigError: an entry is invalid (the message names the source, the entry and
            the key), or two entries share a name.
    """
    configs: list[McpServerConfig] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        label = f"{key}[{index}]"
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            label += f" ({entry['name']!r})"
        if not isinstance(entry, Mapping):
            raise McpConfigError(source, label, f"expected a table, got {type(entry).__name__}")
        try:
            config = McpServerConfig.model_validate(dict(entry))
        except ValidationError as exc:
            raise McpConfigError(source, label, _describe_errors(exc)) from None
        if config.name in seen:
            raise McpConfigError(
                source, label, f"name {config.name!r} is already used by {key}[{seen[config.name]}]"
            )
        seen[config.name] = index
        configs.append(config)
    return configs


def load_server_configs(path: str | Path) -> list[McpServerConfig]:
    """Read the MCP servers of a TOML file.

    Servers are an array of tables, ``[[mcp.servers]]`` (the section of an app's
    ``loom.toml``) or ``[[servers]]`` (a file of servers only, as upstream Loom writes it).

    Raises:
        McpConfigError: the file cannot be read or parsed, or a server entry is invalid.
    """
    source = str(path)
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise McpConfigError(source, "", f"cannot read the file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise McpConfigError(source, "", f"not valid TOML: {exc}") from None
    section = document.get("mcp")
    if isinstance(section, Mapping) and "servers" in section:
        entries, key = section["servers"], "mcp.servers"
    elif "servers" in document:
        entries, key = document["servers"], "servers"
    else:
        return []
    if not isinstance(entries, list):
        raise McpConfigError(source, key, "expected an array of tables ([[...]])")
    return parse_server_configs(entries, source=source, key=key)


def _describe_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
