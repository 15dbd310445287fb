"""The Loom event bus across machines, on NATS JetStream.

:class:`NatsBus` implements :class:`loom.bus.EventBus` on a NATS server: topics are
subjects, events travel as ``loom.v1.Event`` protobuf, Realtime subscriptions listen on
core NATS and Batched/Background ones read a JetStream stream through durable pull
consumers. Select it in an app with ``bus = "nats"``; see ``docs/nats.md``.

Importing this package is light: its names load on first use, and ``nats`` (nats-py) when a
bus starts.

Example:
    .. code-block:: python

        from loom import Event, QoS
        from loom_nats import NatsBus

        async with NatsBus("nats://127.0.0.1:4222", name="host-a") as bus:
            sub = await bus.subscribe("orders.>", qos=QoS.BATCHED)
            await bus.publish("orders.created", Event("order", b"{}"))
            topic, event = await sub.get()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loom_nats._bus import CONNECTION_TOPIC, NatsBus
    from loom_nats._config import DEFAULT_SERVERS, PublishMode, StreamLimits
    from loom_nats._errors import (
        NatsError,
        NatsUnavailableError,
        PublishError,
        StreamConfigError,
    )
    from loom_nats._remote_caps import CapabilityMesh, MeshProvider, MeshStats
    from loom_nats._replay import ReplayedEvent, replay_into
    from loom_nats._stats import NatsStats

__all__ = [
    "CONNECTION_TOPIC",
    "DEFAULT_SERVERS",
    "CapabilityMesh",
    "MeshProvider",
    "MeshStats",
    "NatsBus",
    "NatsError",
    "NatsStats",
    "NatsUnavailableError",
    "PublishError",
    "PublishMode",
    "ReplayedEvent",
    "StreamConfigError",
    "StreamLimits",
    "replay_into",
]

# Where each public name lives; loaded on first access, so that the host loading
# ``loom_nats.plugin`` (which imports this package first) pays for none of it.
_HOMES = {
    "CONNECTION_TOPIC": "loom_nats._bus",
    "CapabilityMesh": "loom_nats._remote_caps",
    "MeshProvider": "loom_nats._remote_caps",
    "MeshStats": "loom_nats._remote_caps",
    "replay_into": "loom_nats._replay",
    "DEFAULT_SERVERS": "loom_nats._config",
    "NatsBus": "loom_nats._bus",
    "NatsError": "loom_nats._errors",
    "NatsStats": "loom_nats._stats",
    "NatsUnavailableError": "loom_nats._errors",
    "PublishError": "loom_nats._errors",
    "PublishMode": "loom_nats._config",
    "ReplayedEvent": "loom_nats._replay",
    "StreamConfigError": "loom_nats._errors",
    "StreamLimits": "loom_nats._config",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'loom_nats' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
