"""The bridge server's settings, from arguments or the ``LOOM_BRIDGE_*`` environment."""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loom_bridge._errors import BridgeConfigError

__all__ = [
    "DEFAULT_ADDRESS",
    "BridgeConfig",
    "DuplicatePolicy",
    "TLSFiles",
    "parse_address",
    "tls_files",
]

#: Where the bridge listens unless told otherwise: loopback only. Upstream binds 0.0.0.0;
#: serving every interface is a choice to make on purpose (``--address 0.0.0.0:50051``),
#: with a token and TLS.
DEFAULT_ADDRESS = "127.0.0.1:50051"

_MIB = 1024 * 1024


class DuplicatePolicy(enum.Enum):
    """What happens when an agent id that has a live stream connects again.

    Attributes:
        REPLACE: the newer stream replaces the older one, which gets ``err`` ``REPLACED``
            and is closed; the older stream's end does not tear down the newer one. This is
            what a client reconnecting after a network failure needs, since the server may
            not have noticed yet that the old connection is dead.
        REFUSE: agent ids are unique per live connection. ``RegisterAgent`` for an id that
            has a live stream on another connection answers ``success=false``, and a second
            stream's Ack gets ``err`` ``AGENT_CONNECTED`` and is closed. A client on the same
            connection may still re-register (to change its topics).
    """

    REPLACE = "replace"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """The server's TLS material, as PEM files.

    Attributes:
        cert: the certificate chain.
        key: its private key.
        client_ca: CA certificates that client certificates must chain to; set it to
            require mutual TLS.
    """

    cert: Path
    key: Path
    client_ca: Path | None = None

    def read(self) -> tuple[bytes, bytes, bytes | None]:
        """The PEM bytes of the cert, the key and the client CA (None when unset).

        Raises:
            BridgeConfigError: a file cannot be read.
        """
        return (
            _read(self.cert, "tls cert"),
            _read(self.key, "tls key"),
            _read(self.client_ca, "tls client CA") if self.client_ca is not None else None,
        )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BridgeConfigError(what, f"cannot read {str(path)!r}: {exc.strerror}") from exc


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    """Settings of a :class:`~loom_bridge.BridgeServer`.

    Attributes:
        address: ``host:port`` to listen on (port 0 picks a free one).
        token: when set, every call must carry ``authorization: Bearer <token>``; others
            are answered UNAUTHENTICATED before any handler runs.
        tls: serve TLS with these files; None serves plaintext.
        max_message_bytes: the largest message accepted or sent (gRPC's limit on both).
        outbound_queue: bound of each stream's delivery queue (events waiting to be written
            to one agent).
        control_queue: bound of each stream's queue of pongs, errors and action calls.
        handshake_timeout_s: how long a new stream may take to send its Ack.
        heartbeat_timeout_s: a stream that showed it heartbeats (an inline ping, or a
            Heartbeat call carrying ``x-agent-id``) and then is silent this long is closed;
            0 turns the check off. Dead connections are also found by gRPC keepalive.
        keepalive_s: interval of the HTTP/2 keepalive pings the server sends.
        default_action_timeout_s: timeout of a pushed ``action_call`` whose call names none.
        max_inflight_calls: action calls one stream may have waiting for results.
        max_registrations: registrations kept for agents with no live stream (oldest
            forgotten first); agents with a live stream are always kept.
        duplicate_ids: see :class:`DuplicatePolicy` (its value, ``"refuse"``, works too).
        max_concurrent_rpcs: bound of RPCs the server runs at once (None: no bound).
        max_delivery_batch: the most deliveries one ``delivery_batch`` message holds, whatever
            a client asks for (a batch also stays under an eighth of ``max_message_bytes``,
            counting characters); 1 turns batching off.
        max_publish_batch: the most publishes one ``publish_batch`` message may hold; the
            bridge offers it in its ``RegisterAgent`` answer; 1 offers no batches.
    """

    address: str = DEFAULT_ADDRESS
    token: str | None = None
    tls: TLSFiles | None = None
    max_message_bytes: int = 4 * _MIB
    outbound_queue: int = 512
    control_queue: int = 256
    handshake_timeout_s: float = 10.0
    heartbeat_timeout_s: float = 45.0
    keepalive_s: float = 20.0
    default_action_timeout_s: float = 30.0
    max_inflight_calls: int = 256
    max_registrations: int = 1024
    duplicate_ids: DuplicatePolicy = DuplicatePolicy.REPLACE
    max_concurrent_rpcs: int | None = None
    max_delivery_batch: int = 1024
    max_publish_batch: int = 1024

    def __post_init__(self) -> None:
        parse_address(self.address, "address")
        if self.token is not None and (not self.token or any(c.isspace() for c in self.token)):
            raise BridgeConfigError("token", "must be non-empty and hold no whitespace")
        for name in (
            "max_message_bytes",
            "outbound_queue",
            "control_queue",
            "max_inflight_calls",
            "max_delivery_batch",
            "max_publish_batch",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise BridgeConfigError(name, f"must be an int >= 1, got {value!r}")
        if self.max_registrations < 0:
            raise BridgeConfigError("max_registrations", "must be >= 0")
        for name in ("handshake_timeout_s", "keepalive_s", "default_action_timeout_s"):
            if not getattr(self, name) > 0:
                raise BridgeConfigError(name, f"must be above 0, got {getattr(self, name)!r}")
        if self.heartbeat_timeout_s < 0:
            raise BridgeConfigError("heartbeat_timeout_s", "must be >= 0 (0 turns it off)")
        # Accept the policy's name too ("refuse"), as the environment and the CLI give it.
        object.__setattr__(self, "duplicate_ids", _policy(self.duplicate_ids))

    def replace(self, **changes: Any) -> BridgeConfig:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> BridgeConfig:
        """Settings from the environment, then ``overrides`` (which win when not None).

        Variables: ``LOOM_BRIDGE_ADDR``, ``LOOM_BRIDGE_TOKEN``, ``LOOM_BRIDGE_TLS_CERT``,
        ``LOOM_BRIDGE_TLS_KEY``, ``LOOM_BRIDGE_TLS_CLIENT_CA``,
        ``LOOM_BRIDGE_MAX_MESSAGE_BYTES``, ``LOOM_BRIDGE_DUPLICATE_IDS`` (replace|refuse).

        Raises:
            BridgeConfigError: a variable holds a bad value, or a TLS key lacks its cert.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get("LOOM_BRIDGE_ADDR"):
            values["address"] = env["LOOM_BRIDGE_ADDR"]
        if env.get("LOOM_BRIDGE_TOKEN"):
            values["token"] = env["LOOM_BRIDGE_TOKEN"]
        if env.get("LOOM_BRIDGE_MAX_MESSAGE_BYTES"):
            text = env["LOOM_BRIDGE_MAX_MESSAGE_BYTES"]
            try:
                values["max_message_bytes"] = int(text)
            except ValueError:
                raise BridgeConfigError(
                    "LOOM_BRIDGE_MAX_MESSAGE_BYTES", f"not an integer: {text!r}"
                ) from None
        if env.get("LOOM_BRIDGE_DUPLICATE_IDS"):
            values["duplicate_ids"] = _policy(env["LOOM_BRIDGE_DUPLICATE_IDS"])
        tls = tls_files(
            env.get("LOOM_BRIDGE_TLS_CERT") or None,
            env.get("LOOM_BRIDGE_TLS_KEY") or None,
            env.get("LOOM_BRIDGE_TLS_CLIENT_CA") or None,
            source="LOOM_BRIDGE_TLS_",
        )
        if tls is not None:
            values["tls"] = tls
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def tls_files(
    cert: str | Path | None,
    key: str | Path | None,
    client_ca: str | Path | None = None,
    *,
    source: str = "tls",
) -> TLSFiles | None:
    """Build :class:`TLSFiles` from optional paths; None when neither cert nor key is set.

    Raises:
        BridgeConfigError: only one of cert and key is set, or a client CA without them.
    """
    if cert is None and key is None:
        if client_ca is not None:
            raise BridgeConfigError(source, "a client CA needs a server cert and key too")
        return None
    if cert is None or key is None:
        missing = "cert" if cert is None else "key"
        raise BridgeConfigError(
            source, f"TLS needs both a cert and a key; the {missing} is missing"
        )
    return TLSFiles(Path(cert), Path(key), Path(client_ca) if client_ca is not None else None)


def _policy(value: object) -> DuplicatePolicy:
    if isinstance(value, DuplicatePolicy):
        return value
    try:
        return DuplicatePolicy(str(value).lower())
    except ValueError:
        raise BridgeConfigError(
            "duplicate_ids", f"must be 'replace' or 'refuse', got {value!r}"
        ) from None


def parse_address(address: str, setting: str = "address") -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) and check the port.

    Raises:
        BridgeConfigError: the address has no port or the port is not 0..65535.
    """
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise BridgeConfigError(setting, f"expected host:port, got {address!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise BridgeConfigError(setting, f"port of {address!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise BridgeConfigError(setting, f"port {port} of {address!r} is outside 0..65535")
    return host.strip("[]"), port
