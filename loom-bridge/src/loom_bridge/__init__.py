"""The loom.v1 gRPC bridge and the SDK for remote agents.

Serve the bridge next to a host's bus and broker::

    async with BridgeServer(bus, broker, config=BridgeConfig(address="127.0.0.1:50051")):
        ...

and run agent code in another process, with the same Agent/Context API as embedded::

    async def echo(ctx, event):
        await ctx.reply(event, "echo.reply", event.payload)

    asyncio.run(RemoteAgent("echo", echo, topics=["echo.requests"]).run())

Importing this package is light: gRPC and protobuf load with the first public name that
needs them. See ``docs/bridge.md``.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from loom_bridge._errors import (
    BridgeConfigError,
    BridgeError,
    NotConnectedError,
    RegistrationError,
)

# gRPC core writes every GOAWAY it receives (a server shutting down with streams open) to
# stderr at INFO unless GRPC_VERBOSITY says otherwise; its documented default is ERROR. Set
# before gRPC loads (with the first public name that needs it); a value set by the user wins.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

if TYPE_CHECKING:
    from loom_bridge._client_config import Backoff, ClientConfig
    from loom_bridge._config import DEFAULT_ADDRESS, BridgeConfig, DuplicatePolicy, TLSFiles
    from loom_bridge._hub import BROKER_ERROR, BridgeHub
    from loom_bridge._link import BridgeLink, LinkClosed
    from loom_bridge._provider import RemoteCapabilityProvider
    from loom_bridge._remote_agent import RemoteAgent
    from loom_bridge._remote_broker import RemoteBroker
    from loom_bridge._remote_bus import RemoteBus
    from loom_bridge._run import run_agents
    from loom_bridge._server import BridgeServer
    from loom_bridge._wire import AGENT_ID_HEADER, AUTHORIZATION_HEADER, ErrorCode

__all__ = [
    "AGENT_ID_HEADER",
    "AUTHORIZATION_HEADER",
    "BROKER_ERROR",
    "DEFAULT_ADDRESS",
    "Backoff",
    "BridgeConfig",
    "BridgeConfigError",
    "BridgeError",
    "BridgeHub",
    "BridgeLink",
    "BridgeServer",
    "ClientConfig",
    "DuplicatePolicy",
    "ErrorCode",
    "LinkClosed",
    "NotConnectedError",
    "RegistrationError",
    "RemoteAgent",
    "RemoteBroker",
    "RemoteBus",
    "RemoteCapabilityProvider",
    "TLSFiles",
    "run_agents",
]

_LAZY = {
    "Backoff": "loom_bridge._client_config",
    "ClientConfig": "loom_bridge._client_config",
    "DEFAULT_ADDRESS": "loom_bridge._config",
    "BridgeConfig": "loom_bridge._config",
    "DuplicatePolicy": "loom_bridge._config",
    "TLSFiles": "loom_bridge._config",
    "BROKER_ERROR": "loom_bridge._hub",
    "BridgeHub": "loom_bridge._hub",
    "BridgeLink": "loom_bridge._link",
    "LinkClosed": "loom_bridge._link",
    "RemoteCapabilityProvider": "loom_bridge._provider",
    "RemoteAgent": "loom_bridge._remote_agent",
    "RemoteBroker": "loom_bridge._remote_broker",
    "RemoteBus": "loom_bridge._remote_bus",
    "run_agents": "loom_bridge._run",
    "BridgeServer": "loom_bridge._server",
    "AGENT_ID_HEADER": "loom_bridge._wire",
    "AUTHORIZATION_HEADER": "loom_bridge._wire",
    "ErrorCode": "loom_bridge._wire",
}


def __getattr__(name: str) -> Any:
    # gRPC and protobuf load with the first name that needs them, not with the package.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loom_bridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
