"""Settings of the NATS bus: stream retention limits, publish modes, and naming rules."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from loom.errors import InvalidTopicError
from loom.topics import validate_topic

__all__ = [
    "DEFAULT_REALTIME_BATCH",
    "DEFAULT_SERVERS",
    "PublishMode",
    "StreamLimits",
    "batch_bytes",
    "check_name",
    "check_realtime_batch",
    "durable_name",
    "stream_name_for",
]

#: Where the bus connects when no servers are given.
DEFAULT_SERVERS: Final = "nats://127.0.0.1:4222"

#: How ``publish`` hands an event to JetStream: ``"ack"`` awaits the stream's PubAck for
#: each event; ``"async"`` keeps a bounded window of unacknowledged publishes (resent after
#: a reconnect, confirmed by :meth:`NatsBus.flush`); ``"core"`` publishes on core NATS
#: without an acknowledgement (the stream still stores what it receives).
PublishMode = Literal["ack", "async", "core"]
PUBLISH_MODES: Final = frozenset(get_args(PublishMode))

#: Events a core publish coalesces per subject and loop iteration (see ``realtime_batch``).
DEFAULT_REALTIME_BATCH: Final = 64
#: The most ``realtime_batch`` may be.
MAX_REALTIME_BATCH: Final = 4096
#: The most bytes of events in one batch message, whatever the server allows.
MAX_BATCH_BYTES: Final = 256 << 10
#: Room left in a batch message for its headers and subject.
_BATCH_MARGIN = 512


def check_realtime_batch(value: object) -> int:
    """Check ``realtime_batch``: an int from 0 to :data:`MAX_REALTIME_BATCH` (0 and 1
    send one message per event).

    Raises:
        ValueError: naming the option and the value.
    """
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not 0 <= value <= MAX_REALTIME_BATCH
    ):
        raise ValueError(
            f"realtime_batch must be an int in 0..{MAX_REALTIME_BATCH} (0 sends one message "
            f"per event), got {value!r}"
        )
    return value


def batch_bytes(max_payload: int, max_msg_size: int) -> int:
    """The byte cap of a batch: well under the server's ``max_payload`` (half of it), under
    the stream's ``max_msg_size`` (which stores every core publish), at most
    :data:`MAX_BATCH_BYTES`."""
    cap = min(MAX_BATCH_BYTES, max_payload // 2)
    if max_msg_size > 0:
        cap = min(cap, max_msg_size - _BATCH_MARGIN)
    return max(cap, 1)


_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_name(kind: str, value: str) -> str:
    """Check a stream or consumer name: 1 to 64 of ``A-Z a-z 0-9 _ -``.

    Raises:
        ValueError: naming ``kind`` and the value.
    """
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"{kind} must be 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-', got {value!r}"
        )
    return value


def check_prefix(prefix: str) -> str:
    """Check the subject prefix: a concrete topic, one or more tokens, no wildcards.

    Raises:
        ValueError: the prefix is not a valid concrete topic.
    """
    try:
        return validate_topic(prefix)
    except InvalidTopicError as exc:
        raise ValueError(f"prefix must be a concrete topic such as 'loom': {exc}") from None


def stream_name_for(prefix: str) -> str:
    """The default stream name of a prefix: upper case, other characters as ``_``."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", prefix).upper()
    if len(name) > 64:
        name = name[:55] + "_" + hashlib.sha1(prefix.encode()).hexdigest()[:8]
    return name


def durable_name(
    bus_name: str, pattern: str, qos: int, event_types: Iterable[str], nth: int
) -> str:
    """A stable durable consumer name for a subscription of a named bus.

    The same bus name subscribing the same way (pattern, QoS, types) gets the same name on
    every run, so a restarted host resumes where it stopped; ``nth`` tells apart identical
    subscriptions of one bus (each must get every event, so each needs its own consumer).
    """
    key = "\x00".join([pattern, str(int(qos)), *sorted(event_types)])
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    head = re.sub(r"[^A-Za-z0-9_-]", "_", bus_name)[:40]
    return f"{head}-{digest}-{nth}"


def _seconds(field: str, value: object, *, allow_zero: bool) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(
            f"StreamLimits.{field} must be a finite number of seconds {bound}, got {value!r}"
        )
    return float(value)


def _count(field: str, value: object) -> int:
    if value.__class__ is not int or (value < 1 and value != -1):
        raise ValueError(
            f"StreamLimits.{field} must be an int >= 1, or -1 for no limit, got {value!r}"
        )
    return value


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """Retention limits of the bus's JetStream stream, applied when the bus starts.

    The stream keeps every event published under the bus's prefix until one limit is hit;
    then ``discard`` decides: ``"old"`` drops the oldest events (publishing never fails for
    lack of room), ``"new"`` refuses new ones (a publish then fails with
    :class:`~loom_nats.PublishError` in ``"ack"`` mode).

    Args:
        max_age: seconds an event is kept; 0 keeps it forever. Default one day.
        max_bytes: bytes the stream may hold; -1 for no limit. Default 1 GiB.
        max_msgs: events the stream may hold; -1 for no limit (the default).
        max_msg_size: largest event in bytes; -1 leaves it to the server's ``max_payload``.
        storage: ``"file"`` (survives a server restart) or ``"memory"``.
        replicas: copies in a cluster (1 to 5); 1 on a single server.
        duplicate_window: seconds during which a republished event (same event id) is
            recognised and stored once. Publishes retried after a reconnect rely on it.
        discard: ``"old"`` or ``"new"``, see above.

    Raises:
        ValueError: a field is out of range, naming the field.
    """

    max_age: float = 86_400.0
    max_bytes: int = 1 << 30
    max_msgs: int = -1
    max_msg_size: int = -1
    storage: Literal["file", "memory"] = "file"
    replicas: int = 1
    duplicate_window: float = 120.0
    discard: Literal["old", "new"] = "old"

    def __post_init__(self) -> None:
        _seconds("max_age", self.max_age, allow_zero=True)
        _seconds("duplicate_window", self.duplicate_window, allow_zero=False)
        for field in ("max_bytes", "max_msgs", "max_msg_size"):
            _count(field, getattr(self, field))
        if self.storage not in ("file", "memory"):
            raise ValueError(
                f"StreamLimits.storage must be 'file' or 'memory', got {self.storage!r}"
            )
        if self.discard not in ("old", "new"):
            raise ValueError(f"StreamLimits.discard must be 'old' or 'new', got {self.discard!r}")
        if self.replicas.__class__ is not int or not 1 <= self.replicas <= 5:
            raise ValueError(f"StreamLimits.replicas must be an int in 1..5, got {self.replicas!r}")
        if self.max_age and self.duplicate_window > self.max_age:
            raise ValueError(
                f"StreamLimits.duplicate_window ({self.duplicate_window} s) must not exceed "
                f"max_age ({self.max_age} s)"
            )

    @classmethod
    def coerce(cls, value: StreamLimits | dict[str, Any] | None) -> StreamLimits:
        """A :class:`StreamLimits` from itself, a dict of its fields (as in loom.toml), or None.

        Raises:
            ValueError: an unknown field, or a field out of range.
        """
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = set(value) - set(cls.__dataclass_fields__)
            if unknown:
                known = ", ".join(sorted(cls.__dataclass_fields__))
                raise ValueError(f"unknown stream limit(s) {sorted(unknown)}; known: {known}")
            return cls(**value)
        raise ValueError(f"limits must be a StreamLimits or a dict, not {type(value).__name__}")

    def stream_config(self, name: str, subjects: list[str]) -> Any:
        """This as a ``nats.js.api.StreamConfig`` for stream ``name`` over ``subjects``."""
        from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

        return StreamConfig(
            name=name,
            subjects=subjects,
            retention=RetentionPolicy.LIMITS,
            max_age=self.max_age,
            max_bytes=self.max_bytes,
            max_msgs=self.max_msgs,
            max_msg_size=self.max_msg_size,
            storage=StorageType.FILE if self.storage == "file" else StorageType.MEMORY,
            num_replicas=self.replicas,
            duplicate_window=self.duplicate_window,
            discard=DiscardPolicy.OLD if self.discard == "old" else DiscardPolicy.NEW,
        )
