"""Errors raised by loom-bridge; each derives from :class:`loom.LoomError`."""

from __future__ import annotations

from loom.errors import LoomError

__all__ = [
    "BridgeConfigError",
    "BridgeError",
    "NotConnectedError",
    "RegistrationError",
]


class BridgeError(LoomError):
    """Root of the bridge's errors."""


class BridgeConfigError(BridgeError, ValueError):
    """A bridge setting is missing or wrong (a TLS key without its certificate, a bad address).

    Attributes:
        setting: the setting or environment variable at fault.
    """

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class RegistrationError(BridgeError, ValueError):
    """The bridge refused an agent's registration (``AgentRegisterResponse.success`` false).

    Attributes:
        agent_id: the id the agent tried to register.
    """

    def __init__(self, agent_id: str, message: str) -> None:
        self.agent_id = agent_id
        super().__init__(f"registration of agent {agent_id!r} refused: {message}")


class NotConnectedError(BridgeError, ConnectionError):
    """A remote agent is not connected to the bridge (stopped, or not started yet)."""
