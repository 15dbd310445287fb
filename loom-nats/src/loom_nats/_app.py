"""``[nats.mesh]`` in an app's ``loom.toml``: the capability mesh that ``loom run`` starts
beside the app's bus, broker and agent directory, and stops when the app stops.

.. code-block:: toml

    [bus]
    backend = "nats"

    [nats.mesh]
    host_id = "host-a"          # default: the bus's name, else "<hostname>-<app name>"
    announce_interval_s = 5
    expire_after_s = 15

Reading the table is separate from starting the mesh (:func:`check_config` /
:func:`mesh_settings` hold no resource), so the same checks can run before anything starts.
"""

from __future__ import annotations

import logging
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loom.app import AppConfigError, ConfigIssue

if TYPE_CHECKING:
    from loom.app import App, AppConfig
    from loom_nats._remote_caps import CapabilityMesh

__all__ = [
    "EXTENSION",
    "SECTION",
    "MeshSettings",
    "check_config",
    "default_host_id",
    "mesh_settings",
    "start_mesh",
    "stop_mesh",
]

log = logging.getLogger("loom.nats.mesh")

#: The plugin's table in ``loom.toml`` (the plugin is named ``nats``).
SECTION = "nats"
#: Where the running mesh is kept in ``app.extensions``.
EXTENSION = "nats.mesh"

# A host id is one topic token and one NATS subject token: kept to characters that are
# plain on both (and in consumer names), so a hostname cannot smuggle in a '.' or '*'.
_HOST_ID = r"[A-Za-z0-9_-]{1,64}"
_NOT_IN_HOST_ID = re.compile(r"[^A-Za-z0-9_-]+")


class _MeshTable(BaseModel):
    """The keys of ``[nats.mesh]``, as the file states them (strict: no "5" for 5)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    enabled: bool = True
    host_id: str | None = Field(default=None, pattern=f"^{_HOST_ID}$")
    announce_interval_s: float = Field(default=5.0, gt=0, le=3600)
    expire_after_s: float | None = Field(default=None, gt=0, le=86400)
    call_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    max_concurrent_calls: int = Field(default=256, gt=0, le=1_000_000)
    max_pending_calls: int = Field(default=1024, gt=0, le=1_000_000)
    max_peers: int = Field(default=1024, gt=0, le=1_000_000)


@dataclass(frozen=True, slots=True)
class MeshSettings:
    """What ``[nats.mesh]`` asks for, defaults filled in: :class:`CapabilityMesh`'s
    arguments.

    Attributes:
        host_id: this host's id on the bus (unique per host).
        announce_interval_s: seconds between announcements (each is also a heartbeat).
        expire_after_s: a host not heard for this long is dropped (three intervals when
            not given).
        call_timeout_s: the wait for a result of a call that names no timeout.
        max_concurrent_calls: calls from other hosts run here at once.
        max_pending_calls: calls this host waits on at once.
        max_peers: hosts remembered at once.
    """

    host_id: str
    announce_interval_s: float = 5.0
    expire_after_s: float = 15.0
    call_timeout_s: float = 30.0
    max_concurrent_calls: int = 256
    max_pending_calls: int = 1024
    max_peers: int = 1024


def default_host_id(config: AppConfig) -> str:
    """The host id when ``[nats.mesh]`` names none: the bus's ``name`` option (the host's
    name on the bus already), else ``<hostname>-<app name>``; characters other than
    letters, digits, ``_`` and ``-`` become ``-``."""
    name = config.bus.options.get("name")
    if not isinstance(name, str) or not name.strip():
        name = f"{socket.gethostname()}-{config.app.name}"
    return _NOT_IN_HOST_ID.sub("-", name).strip("-")[:64] or config.app.name[:64]


def check_config(config: AppConfig) -> list[ConfigIssue]:
    """The problems of the app's ``[nats]`` table, each with its key path (none when the
    table is absent or fine). Starts nothing."""
    return _read(config)[0]


def mesh_settings(config: AppConfig, *, source: str = "<config>") -> MeshSettings | None:
    """What ``[nats.mesh]`` asks for; None when there is no such table or it says
    ``enabled = false``.

    Raises:
        AppConfigError: naming ``source`` and each bad key (``nats.mesh.expire_after_s``,
            ...), or ``nats.mesh`` when the app's bus is not NATS.
    """
    issues, settings = _read(config)
    if issues:
        raise AppConfigError(source, issues)
    return settings


def _read(config: AppConfig) -> tuple[list[ConfigIssue], MeshSettings | None]:
    section: dict[str, Any] = config.plugin_sections.get(SECTION, {})
    issues = [
        ConfigIssue(
            f"{SECTION}.{key}",
            "unknown key (the nats plugin reads only the table [nats.mesh] here; the bus's "
            "own options go in [bus.options])",
        )
        for key in section
        if key != "mesh"
    ]
    table = section.get("mesh")
    if table is None:
        return issues, None
    if not isinstance(table, dict):
        issues.append(ConfigIssue(f"{SECTION}.mesh", f"expected a table, got {table!r}"))
        return issues, None
    try:
        mesh = _MeshTable.model_validate(table)
    except ValidationError as exc:
        return issues + _issues(exc), None
    if not mesh.enabled:
        return issues, None
    interval = mesh.announce_interval_s
    if mesh.expire_after_s is not None and mesh.expire_after_s <= interval:
        issues.append(
            ConfigIssue(
                f"{SECTION}.mesh.expire_after_s",
                f"must be longer than announce_interval_s ({interval:g}), or every host would "
                f"expire between two announcements (got {mesh.expire_after_s:g})",
            )
        )
    if config.bus.backend != "nats":
        issues.append(
            ConfigIssue(
                f"{SECTION}.mesh",
                f"the capability mesh runs on the NATS bus, but bus.backend is "
                f'{config.bus.backend!r}: set bus.backend = "nats", or remove [nats.mesh] '
                "(or set enabled = false)",
            )
        )
    if issues:
        return issues, None
    settings = MeshSettings(
        host_id=mesh.host_id or default_host_id(config),
        announce_interval_s=interval,
        expire_after_s=mesh.expire_after_s if mesh.expire_after_s is not None else 3 * interval,
        call_timeout_s=mesh.call_timeout_s,
        max_concurrent_calls=mesh.max_concurrent_calls,
        max_pending_calls=mesh.max_pending_calls,
        max_peers=mesh.max_peers,
    )
    return issues, settings


def _issues(exc: ValidationError) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        key = ".".join([SECTION, "mesh", *loc])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (not allowed here)"
        elif error["type"] == "string_pattern_mismatch":
            message = (
                "a host id is 1 to 64 letters, digits, '_' or '-' (one topic token, unique "
                "per host)"
            )
        if error["type"] != "extra_forbidden" and "input" in error and loc:
            message += f" (got {error['input']!r})"
        issues.append(ConfigIssue(key, message))
    return issues


async def start_mesh(app: App) -> CapabilityMesh | None:
    """Start the mesh ``[nats.mesh]`` asks for on the app's bus, broker and agent
    directory, and keep it in ``app.extensions["nats.mesh"]``; None when not asked for.

    Raises:
        AppConfigError: the table is invalid (see :func:`mesh_settings`).
    """
    settings = mesh_settings(app.config, source=app.source)
    if settings is None:
        return None
    from loom_nats._remote_caps import CapabilityMesh

    mesh = CapabilityMesh(
        app.bus,
        app.broker,
        host_id=settings.host_id,
        directory=app.runtime.directory,
        announce_interval_s=settings.announce_interval_s,
        expire_after_s=settings.expire_after_s,
        call_timeout_s=settings.call_timeout_s,
        max_concurrent_calls=settings.max_concurrent_calls,
        max_pending_calls=settings.max_pending_calls,
        max_peers=settings.max_peers,
    )
    await mesh.start()
    app.extensions[EXTENSION] = mesh
    log.info(
        "mesh %s: announcing every %g s on the app's bus (hosts expire after %g s quiet)",
        settings.host_id,
        settings.announce_interval_s,
        settings.expire_after_s,
    )
    return mesh


async def stop_mesh(app: App) -> None:
    """Stop the app's mesh, if one runs: it says goodbye to the other hosts, fails the
    calls still waiting on them, and drops their capabilities and agents."""
    mesh = app.extensions.pop(EXTENSION, None)
    if mesh is not None:
        await mesh.close()
