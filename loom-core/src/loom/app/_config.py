"""``loom.toml``: the app configuration, validated with pydantic (unknown keys are errors)."""

from __future__ import annotations

import os
import re
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from loom.app._errors import AppConfigError, ConfigIssue
from loom.topics import validate_pattern

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "AgentEntry",
    "AppConfig",
    "AppSection",
    "BusSection",
    "CapabilityEntry",
    "McpSection",
    "ModelEntry",
    "RouterSection",
    "SourceEntry",
    "StateSection",
    "TelemetrySection",
    "load_config",
    "parse_config",
    "telemetry_model",
    "telemetry_settings",
]

#: The file ``loom run`` reads when given none.
DEFAULT_CONFIG_FILE = "loom.toml"

_APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})")


def _app_name(value: str) -> str:
    if not _APP_NAME.fullmatch(value):
        raise ValueError(
            "an app name is 1 to 64 letters, digits, '_', '.' or '-', starting with a letter "
            "or digit (it names the state directory)"
        )
    return value


def _agent_id(value: str) -> str:
    if not value or "." in value or any(c.isspace() for c in value):
        raise ValueError("an agent id is non-empty, without dots or spaces")
    return value


def _topic_pattern(value: str) -> str:
    try:
        validate_pattern(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return value


def _host_port(value: str | None) -> str | None:
    if value is None:
        return None
    match = _HOST_PORT.fullmatch(value)
    if match is None or int(match["port"]) > 65535:
        raise ValueError("expected 'host:port', e.g. '127.0.0.1:9464' (port 0 picks a free one)")
    return value


def _reference(value: str) -> str:
    module, _, attribute = value.partition(":")
    if not module or not all(part.isidentifier() for part in module.split(".")):
        raise ValueError("expected a Python reference 'module' or 'module:attr'")
    if attribute and not all(part.isidentifier() for part in attribute.split(".")):
        raise ValueError("expected a Python reference 'module:attr'")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Options = dict[str, Any]


class AppSection(_Section):
    """``[app]``: who the app is.

    Attributes:
        name: the app's name; the default state directory is ``.loom-data/<name>``.
        description: one line, shown when it starts.
        end_when_exhausted: end the run once every source is exhausted and the agents
            are idle (false: run until a signal or ``run_for``).
        drain_timeout_s: how long shutdown waits for mailboxes to drain.
        stop_timeout_s: how long each source, agent and plugin gets to stop.
    """

    name: Annotated[str, AfterValidator(_app_name)]
    description: str = ""
    end_when_exhausted: bool = True
    drain_timeout_s: float = Field(default=5.0, gt=0, le=600)
    stop_timeout_s: float = Field(default=5.0, gt=0, le=600)


class BusSection(_Section):
    """``[bus]``: the event bus backend (``memory``, ``nats``, ...) and its options."""

    backend: str = "memory"
    options: Options = Field(default_factory=dict)


class StateSection(_Section):
    """``[state]``: the state store backend and its options.

    The default is ``rocksdb`` at ``.loom-data/<app name>`` beside the configuration file;
    a relative ``path`` option is taken from that directory too.
    """

    backend: str = "rocksdb"
    options: Options = Field(default_factory=dict)


class RouterSection(_Section):
    """``[router]``: the routing policy, its options, and where decisions are published."""

    policy: str = "rules"
    options: Options = Field(default_factory=dict)
    topic: Annotated[str, AfterValidator(_topic_pattern)] = "runtime.routing"


class ModelEntry(_Section):
    """``[[models]]``: one model provider the router may choose.

    Attributes:
        name: its name in routing decisions (unique).
        provider: a contributed model provider (``deterministic``, ``openai``, ...).
        options: the provider factory's options.
        location: ``local`` or ``cloud``; by default what the provider says of itself.
        est_latency_ms: expected latency before any is observed.
        cost_per_call: expected cost per request.
    """

    name: str = Field(min_length=1)
    provider: str = Field(min_length=1)
    options: Options = Field(default_factory=dict)
    location: Literal["local", "cloud"] | None = None
    est_latency_ms: float | None = Field(default=None, ge=0)
    cost_per_call: float | None = Field(default=None, ge=0)


class TelemetrySection(_Section):
    """``[telemetry]`` when :mod:`loom.telemetry` is not available: the fields of its
    ``TelemetryConfig`` that every version has. When it is available, ``[telemetry]`` is
    validated by ``TelemetryConfig`` itself (see :func:`telemetry_model`).

    Keys left out take that model's defaults; ``service_name`` defaults to the app name.
    """

    service_name: str | None = None
    tracing: Literal["off", "sampled", "all"] | None = None
    sample_ratio: float | None = Field(default=None, ge=0, le=1)
    metrics: bool | None = None
    prometheus: Annotated[str | None, AfterValidator(_host_port)] = None
    otlp_endpoint: str | None = None
    console: bool | None = None


class AgentEntry(_Section):
    """``[[agents]]``: one agent.

    Attributes:
        id: the agent's id (unique, no dots or spaces).
        type: a contributed agent type, or a Python reference ``module:attr`` to an
            ``Agent`` class, an ``Agent`` instance or a handler function.
        topics: topic patterns to subscribe to, besides the agent class's own.
        params: keyword arguments for the agent type's factory or class.
    """

    id: Annotated[str, AfterValidator(_agent_id)]
    type: str = Field(min_length=1)
    topics: list[Annotated[str, AfterValidator(_topic_pattern)]] = Field(default_factory=list)
    params: Options = Field(default_factory=dict)


class CapabilityEntry(_Section):
    """``[[capabilities]]``: capabilities to register with the broker.

    Exactly one of ``ref`` and ``plugin``:

    - ``ref = "module:function"``: one ``@capability`` function; ``ref = "module"``: every
      ``@capability`` function the module defines;
    - ``plugin = "*"`` (every installed plugin) or ``plugin = "name"``: the capabilities
      plugins contribute through ``loom_capabilities``.

    ``include`` and ``exclude`` are glob patterns over capability names. Without any
    ``plugin`` entry, every contributed capability is registered.
    """

    ref: Annotated[str, AfterValidator(_reference)] | None = None
    plugin: str | None = Field(default=None, min_length=1)
    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_source(self) -> CapabilityEntry:
        if (self.ref is None) == (self.plugin is None):
            raise ValueError("give exactly one of 'ref' (a Python reference) or 'plugin'")
        return self


class McpSection(_Section):
    """``[mcp]``: ``[[mcp.servers]]`` entries, validated and started by the loom-mcp plugin."""

    servers: list[dict[str, Any]] = Field(default_factory=list)


class SourceEntry(_Section):
    """``[[sources]]``: one event source.

    Attributes:
        type: a contributed event source (built in: ``timer``, ``file``).
        name: the source's name (unique; defaults to ``type``), passed to the factory.
        topic: where it publishes, passed to the factory as ``topic`` when given.
        options: the factory's other keyword arguments.
    """

    type: str = Field(min_length=1)
    name: str | None = Field(default=None, min_length=1)
    topic: str | None = Field(default=None, min_length=1)
    options: Options = Field(default_factory=dict)

    @property
    def label(self) -> str:
        """The source's name."""
        return self.name or self.type


class AppConfig(_Section):
    """A whole ``loom.toml``. See ``docs/apps.md`` for every key.

    Besides the sections below, a top-level table named after a plugin (``[dashboard]``
    for the ``dashboard`` plugin) is that plugin's to read (:attr:`plugin_sections`,
    ``app.section(name)``); a table no loaded plugin is named after is an error when the
    app is resolved against its host, and any other unknown key is an error at once.

    Attributes:
        run_for: stop after this many seconds (None: until a signal, or until every
            source is exhausted and the mailboxes are drained).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    run_for: float | None = Field(default=None, gt=0)
    app: AppSection
    bus: BusSection = Field(default_factory=BusSection)
    state: StateSection = Field(default_factory=StateSection)
    router: RouterSection = Field(default_factory=RouterSection)
    models: list[ModelEntry] = Field(default_factory=list)
    telemetry: dict[str, Any] = Field(default_factory=dict)
    agents: list[AgentEntry] = Field(default_factory=list)
    capabilities: list[CapabilityEntry] = Field(default_factory=list)
    mcp: McpSection = Field(default_factory=McpSection)
    sources: list[SourceEntry] = Field(default_factory=list)

    @property
    def plugin_sections(self) -> dict[str, dict[str, Any]]:
        """The top-level tables that are no section of core's, by name."""
        return {k: v for k, v in (self.model_extra or {}).items() if isinstance(v, dict)}


def parse_config(document: Mapping[str, Any], *, source: str = "<config>") -> AppConfig:
    """Validate a configuration already read (a TOML document as a dict).

    Raises:
        AppConfigError: naming ``source``, each bad key path and what is expected.
    """
    try:
        config = AppConfig.model_validate(dict(document))
    except ValidationError as exc:
        raise AppConfigError(source, _issues(exc)) from None
    issues = [
        ConfigIssue(key, "unknown key (not allowed here)")
        for key, value in (config.model_extra or {}).items()
        if not isinstance(value, dict)
    ]
    issues += _duplicates(config) + _telemetry_issues(config.telemetry)
    if issues:
        raise AppConfigError(source, issues)
    return config


def load_config(path: str | os.PathLike[str]) -> AppConfig:
    """Read and validate a ``loom.toml``.

    Raises:
        AppConfigError: the file cannot be read, is not TOML, or is not a valid app.
    """
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AppConfigError.one(source, "", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AppConfigError.one(source, "", f"cannot read the file: {reason}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AppConfigError.one(source, "", f"not valid TOML: {exc}") from None
    return parse_config(document, source=source)


# -- error messages ----------------------------------------------------------------------


def key_path(loc: Iterable[str | int]) -> str:
    """``("agents", 2, "type")`` as ``agents[2].type``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


_NO_INPUT = {"missing", "extra_forbidden"}


def _issues(exc: ValidationError) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for error in exc.errors(include_url=False):
        # Validators on a union or a model report extra loc parts naming the branch
        # (a function or type name) that are no key of the file.
        loc = [p for p in error["loc"] if isinstance(p, int) or not p.startswith("function-")]
        message = error["msg"].removeprefix("Value error, ")
        kind = error["type"]
        if kind == "missing":
            message = "required key is missing"
        elif kind == "extra_forbidden":
            message = "unknown key (not allowed here)"
        elif kind not in _NO_INPUT and "input" in error:
            shown = repr(error["input"])
            message += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
        issues.append(ConfigIssue(key_path(loc), message))
    return issues


def telemetry_model() -> type[BaseModel]:
    """The model ``[telemetry]`` is validated with: ``loom.telemetry.TelemetryConfig``, or
    :class:`TelemetrySection` where that cannot be imported."""
    try:
        from loom.telemetry import TelemetryConfig
    except Exception:  # noqa: BLE001  # missing or broken: validate the fields we know
        return TelemetrySection
    model: type[BaseModel] = TelemetryConfig
    return model


def telemetry_settings(config: AppConfig) -> BaseModel:
    """``[telemetry]`` validated (``service_name`` defaults to the app name).

    Raises:
        ValidationError: a key is unknown or a value is out of range.
    """
    values = dict(config.telemetry)
    values.setdefault("service_name", config.app.name)
    return telemetry_model().model_validate(values)


def _telemetry_issues(section: Mapping[str, Any]) -> list[ConfigIssue]:
    try:
        telemetry_model().model_validate({"service_name": "check", **section})
    except ValidationError as exc:
        return [
            ConfigIssue(f"telemetry.{issue.key}" if issue.key else "telemetry", issue.message)
            for issue in _issues(exc)
        ]
    return []


def _duplicates(config: AppConfig) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    groups: list[tuple[str, list[str]]] = [
        ("agents", [a.id for a in config.agents]),
        ("models", [m.name for m in config.models]),
        ("sources", [s.label for s in config.sources]),
    ]
    for section, names in groups:
        counts = Counter(names)
        first: dict[str, int] = {}
        for index, name in enumerate(names):
            if counts[name] > 1 and name in first:
                field = {"agents": "id", "models": "name", "sources": "name"}[section]
                issues.append(
                    ConfigIssue(
                        f"{section}[{index}].{field}",
                        f"{name!r} is already used by {section}[{first[name]}]",
                    )
                )
            first.setdefault(name, index)
    return issues
