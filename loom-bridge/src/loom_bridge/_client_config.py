"""How a client (a remote agent, ``loom bridge ping``) reaches a bridge."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loom_bridge._config import DEFAULT_ADDRESS, parse_address
from loom_bridge._errors import BridgeConfigError
from loom_bridge._registration import DEFAULT_DELIVERY_BATCH

if TYPE_CHECKING:
    import grpc.aio

__all__ = ["Backoff", "ClientConfig"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnection attempts: ``initial_s``, times ``factor`` each failure,
    at most ``max_s``; back to ``initial_s`` after a connection that worked."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0

    def __post_init__(self) -> None:
        if not (self.initial_s > 0 and self.factor >= 1 and self.max_s >= self.initial_s):
            raise BridgeConfigError(
                "backoff", f"need initial_s > 0, factor >= 1, max_s >= initial_s: got {self}"
            )

    def next(self, delay: float) -> float:
        """The delay after ``delay``."""
        return min(self.max_s, delay * self.factor)


def _pem(value: bytes | str | Path | None, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise BridgeConfigError(what, f"cannot read {str(value)!r}: {exc.strerror}") from exc


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where the bridge is and how to talk to it.

    Attributes:
        address: the bridge's ``host:port``.
        token: the bearer token to send (``authorization: Bearer <token>``), if any.
        tls_ca: PEM (bytes or a path) of the CA that signed the server's certificate; set
            it, or ``tls``, to connect over TLS.
        tls: connect over TLS (with the system's CAs when ``tls_ca`` is None).
        tls_cert: PEM of a client certificate, for mutual TLS.
        tls_key: PEM of its private key.
        tls_server_name: the name to check the server's certificate against, when it
            differs from the address's host.
        heartbeat_s: interval of the Heartbeat calls (upstream: 15 s).
        heartbeat_timeout_s: a Heartbeat that takes longer fails the connection.
        backoff: delays between reconnection attempts.
        outbound_queue: bound of the queue of messages waiting to go to the bridge.
        connect_timeout_s: how long ``start()`` waits for the first connection.
        call_timeout_s: timeout of RegisterAgent.
        action_timeout_s: how long a ForwardAction whose call names no timeout may take (the
            broker's own default, 30 s, answers first).
        max_message_bytes: the largest message sent or received.
        delivery_batch: the most deliveries to take in one message: the link asks the
            bridge for ``delivery_batch`` messages (registration metadata
            ``loom.delivery_batch``) and unpacks them; 1 asks for upstream's one
            ``delivery`` per event.
        publish_batch: the most publishes to send in one ``publish_batch`` message, when
            the bridge offers them (``loom.publish_batch`` in its ``RegisterAgent`` answer;
            upstream's does not); 1 sends one ``publish`` per event.
    """

    address: str = DEFAULT_ADDRESS
    token: str | None = None
    tls_ca: bytes | str | Path | None = None
    tls: bool = False
    tls_cert: bytes | str | Path | None = None
    tls_key: bytes | str | Path | None = None
    tls_server_name: str | None = None
    heartbeat_s: float = 15.0
    heartbeat_timeout_s: float = 5.0
    backoff: Backoff = dataclasses.field(default_factory=Backoff)
    outbound_queue: int = 1024
    connect_timeout_s: float = 10.0
    call_timeout_s: float = 10.0
    action_timeout_s: float = 30.0
    max_message_bytes: int = 4 * 1024 * 1024
    delivery_batch: int = DEFAULT_DELIVERY_BATCH
    publish_batch: int = DEFAULT_DELIVERY_BATCH

    def __post_init__(self) -> None:
        parse_address(self.address, "address")
        for name in (
            "heartbeat_s",
            "heartbeat_timeout_s",
            "connect_timeout_s",
            "call_timeout_s",
            "action_timeout_s",
        ):
            if not getattr(self, name) > 0:
                raise BridgeConfigError(name, f"must be above 0, got {getattr(self, name)!r}")
        if self.outbound_queue < 1:
            raise BridgeConfigError("outbound_queue", "must be at least 1")
        for name in ("delivery_batch", "publish_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise BridgeConfigError(name, f"must be an int >= 1, got {value!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise BridgeConfigError("tls_cert", "a client certificate needs its key, and back")

    @property
    def secure(self) -> bool:
        """Whether the connection uses TLS."""
        return self.tls or self.tls_ca is not None or self.tls_cert is not None

    def replace(self, **changes: Any) -> ClientConfig:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientConfig:
        """Settings from ``LOOM_BRIDGE_ADDR``, ``LOOM_BRIDGE_TOKEN`` and
        ``LOOM_BRIDGE_TLS_CA``, then ``overrides`` (which win when not None)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get("LOOM_BRIDGE_ADDR"):
            values["address"] = env["LOOM_BRIDGE_ADDR"]
        if env.get("LOOM_BRIDGE_TOKEN"):
            values["token"] = env["LOOM_BRIDGE_TOKEN"]
        if env.get("LOOM_BRIDGE_TLS_CA"):
            values["tls_ca"] = Path(env["LOOM_BRIDGE_TLS_CA"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def channel(self) -> grpc.aio.Channel:
        """A new grpc.aio channel to the bridge with these settings.

        Raises:
            BridgeConfigError: a PEM file cannot be read.
        """
        import grpc
        import grpc.aio

        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            # Reconnect promptly after the server comes back (gRPC's default backs off to 2 min).
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", int(self.backoff.max_s * 1000)),
        ]
        if not self.secure:
            return grpc.aio.insecure_channel(self.address, options=options)
        if self.tls_server_name:
            options.append(("grpc.ssl_target_name_override", self.tls_server_name))
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_pem(self.tls_ca, "tls_ca"),
            private_key=_pem(self.tls_key, "tls_key"),
            certificate_chain=_pem(self.tls_cert, "tls_cert"),
        )
        return grpc.aio.secure_channel(self.address, credentials, options=options)
