"""DashboardSettings: where the dashboard listens, who may read it, and its bounds."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

from loom_dashboard._errors import DashboardConfigError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "PORT_ENV",
    "TOKEN_ENV",
    "DashboardSettings",
    "is_loopback",
    "settings_from_app",
]

DEFAULT_HOST: Final = "127.0.0.1"
#: Upstream serves its dashboard on 3030 (``LOOM_DASHBOARD_PORT``); so do we.
DEFAULT_PORT: Final = 3030
#: Read when no token is configured: the bearer token viewers must send.
TOKEN_ENV: Final = "LOOM_DASHBOARD_TOKEN"
#: Read when no port is configured.
PORT_ENV: Final = "LOOM_DASHBOARD_PORT"

# (lowest, highest) of each integer setting.
_RANGES: Final[dict[str, tuple[int, int]]] = {
    "port": (0, 65535),
    "ring_size": (16, 100_000),
    "tap_queue": (16, 100_000),
    "viewer_queue": (2, 10_000),
    "max_viewers": (1, 1_000),
    "max_threads": (1, 100_000),
    "thread_events": (2, 10_000),
    "tail_batch": (1, 10_000),
    "payload_preview": (0, 65_536),
}
_FLOAT_RANGES: Final[dict[str, tuple[float, float]]] = {"tick_s": (0.01, 60.0)}


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class DashboardSettings:
    """The dashboard's settings: the ``[dashboard]`` table of ``loom.toml``.

    Attributes:
        enabled: whether ``loom run`` starts the dashboard with the app.
        host: the address to listen on. Anything but a loopback address needs a token.
        port: the port; 0 takes a free one (the server's ``url`` says which).
        token: the bearer token every ``/api`` request must carry (``Authorization:
            Bearer ...``, or ``access_token=...`` in the query for the event stream);
            None lets loopback viewers in without one. ``LOOM_DASHBOARD_TOKEN`` fills it
            when unset.
        ring_size: how many recent events the server keeps for the tail and the API.
        tap_queue: the queue of the dashboard's own bus subscription (Realtime, drop-oldest):
            when the dashboard falls behind a busy bus, it loses its oldest events, never
            slows a publisher.
        viewer_queue: messages waiting for one viewer; a viewer that falls this far
            behind is dropped (it reconnects and starts fresh).
        max_viewers: concurrent event streams; more are answered 503.
        max_threads: collaboration threads remembered (least recently active go first).
        thread_events: events remembered per thread.
        tick_s: how often the stream sends new events, metrics and threads.
        tail_batch: the most events one stream message carries (the rest are counted as
            skipped).
        payload_preview: payload bytes shown per event (0 shows none).
    """

    enabled: bool = False
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    ring_size: int = 2000
    tap_queue: int = 4096
    viewer_queue: int = 64
    max_viewers: int = 32
    max_threads: int = 300
    thread_events: int = 100
    tick_s: float = 0.5
    tail_batch: int = 200
    payload_preview: int = 160

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise DashboardConfigError(
                "dashboard.enabled", f"expected true or false, got {self.enabled!r}"
            )
        if not isinstance(self.host, str) or not self.host.strip():
            raise DashboardConfigError(
                "dashboard.host", f"expected an address such as '127.0.0.1', got {self.host!r}"
            )
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if value.__class__ is not int or not low <= value <= high:
                raise DashboardConfigError(
                    f"dashboard.{name}", f"expected an integer from {low} to {high}, got {value!r}"
                )
        for name, (flow, fhigh) in _FLOAT_RANGES.items():
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise DashboardConfigError(f"dashboard.{name}", f"expected a number, got {value!r}")
            if not flow <= value <= fhigh:
                raise DashboardConfigError(
                    f"dashboard.{name}",
                    f"expected a number from {flow:g} to {fhigh:g}, got {value!r}",
                )
        if self.token is not None and (not isinstance(self.token, str) or not self.token.strip()):
            raise DashboardConfigError(
                "dashboard.token", "expected a non-empty string (or leave it out)"
            )
        if self.token is None and not is_loopback(self.host):
            raise DashboardConfigError(
                "dashboard.token",
                f"a token is required when the dashboard listens on {self.host!r}, which is not "
                f"a loopback address: set dashboard.token or {TOKEN_ENV}, or use host "
                f"'{DEFAULT_HOST}'",
            )

    @classmethod
    def from_mapping(
        cls, table: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
    ) -> DashboardSettings:
        """Settings from a ``[dashboard]`` table; the environment fills token and port.

        Args:
            table: the table (unknown keys are errors).
            environ: where ``LOOM_DASHBOARD_TOKEN`` and ``LOOM_DASHBOARD_PORT`` are read;
                ``os.environ`` when None.

        Raises:
            DashboardConfigError: an unknown key or a bad value, naming the key.
        """
        if not isinstance(table, Mapping):
            raise DashboardConfigError("dashboard", f"expected a table, got {type(table).__name__}")
        known = {f.name for f in fields(cls)}
        for key in table:
            if key not in known:
                raise DashboardConfigError(
                    f"dashboard.{key}", f"unknown key; known: {', '.join(sorted(known))}"
                )
        values = dict(table)
        env = os.environ if environ is None else environ
        if values.get("token") is None and env.get(TOKEN_ENV):
            values["token"] = env[TOKEN_ENV]
        if "port" not in values and env.get(PORT_ENV):
            raw = env[PORT_ENV]
            try:
                values["port"] = int(raw)
            except ValueError:
                raise DashboardConfigError(
                    PORT_ENV, f"expected a port number, got {raw!r}"
                ) from None
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """The settings as JSON, the token left out."""
        out = asdict(self)
        out["token"] = self.token is not None
        return out


def settings_from_app(app: Any) -> DashboardSettings | None:
    """The dashboard settings of an app; None when its configuration has no ``[dashboard]``.

    Read from ``app.section("dashboard")`` (:class:`loom.app.App`), else from
    ``app.config.dashboard``, which may be a mapping (the ``[dashboard]`` table) or an
    object with the same fields (a pydantic model, a dataclass).

    Raises:
        DashboardConfigError: the table holds an unknown key or a bad value.
    """
    table: Any = None
    section = getattr(app, "section", None)
    if callable(section):
        table = section("dashboard") or None
    config = getattr(app, "config", None)
    if table is None and config is not None:
        table = getattr(config, "dashboard", None)
        if table is None and isinstance(config, Mapping):
            table = config.get("dashboard")
    if table is None:
        return None
    if isinstance(table, DashboardSettings):
        return table
    if not isinstance(table, Mapping):
        dump = getattr(table, "model_dump", None)
        if callable(dump):
            table = dump(exclude_none=True)
        elif hasattr(table, "__dataclass_fields__"):
            table = {k: v for k, v in asdict(table).items() if v is not None}
        else:
            raise DashboardConfigError("dashboard", f"expected a table, got {type(table).__name__}")
    return DashboardSettings.from_mapping(table)
