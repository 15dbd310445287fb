"""Loom: a runtime in which AI agents continuously sense, reason and act.

Events in, actions out, state in the middle. This package is the core: events, envelopes
and topics, the plugin host and its hook specifications. Extensions (``loom-bridge``,
``loom-mcp``, ``loom-plugins-wasm``, ``loom-audio``, ``loom-nats``) plug in through entry
points of the group ``loom``.

``import loom`` stays light: protobuf, gRPC and every optional dependency load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loom._action import (
    ActionCall,
    ActionError,
    ActionResult,
    ActionStatus,
    CapabilityDescriptor,
    ProviderKind,
    QoS,
)
from loom._envelope import DEFAULT_TTL, Envelope
from loom._event import Event, new_event_id
from loom._version import __version__
from loom.errors import (
    AgentError,
    AgentExistsError,
    AgentNotFoundError,
    InvalidEventError,
    InvalidTopicError,
    LoomError,
    PluginError,
    PluginLoadError,
    ProtocolError,
)
from loom.hookspecs import hookimpl

if TYPE_CHECKING:
    from loom.host import PluginHost, create_host

__all__ = [
    "DEFAULT_TTL",
    "ActionCall",
    "ActionError",
    "ActionResult",
    "ActionStatus",
    "AgentError",
    "AgentExistsError",
    "AgentNotFoundError",
    "CapabilityDescriptor",
    "Envelope",
    "Event",
    "InvalidEventError",
    "InvalidTopicError",
    "LoomError",
    "PluginError",
    "PluginHost",
    "PluginLoadError",
    "ProtocolError",
    "ProviderKind",
    "QoS",
    "__version__",
    "create_host",
    "hookimpl",
    "new_event_id",
]

_LAZY = {"PluginHost": "loom.host", "create_host": "loom.host"}


def __getattr__(name: str) -> Any:
    # The host pulls importlib.metadata; load it only when asked for.
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'loom' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
