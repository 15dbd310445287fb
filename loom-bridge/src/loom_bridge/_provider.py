"""Capabilities of remote agents, as ActionBroker providers of kind GRPC."""

from __future__ import annotations

from collections.abc import Callable

from loom import ActionCall, ActionStatus, CapabilityDescriptor, ProviderKind
from loom.actions import CapabilityError, ErrorCode, Provider
from loom_bridge._session import StreamSession

__all__ = ["RemoteCapabilityProvider"]


class RemoteCapabilityProvider(Provider):
    """Runs a capability on a remote agent: pushes ``action_call`` on the agent's stream and
    waits for the ``action_result`` with the same id.

    Several connected agents may serve the same name and version; a call goes to the one
    that registered it last and is still connected. The bridge adds and removes agents as
    their streams come and go, and unregisters the provider when none is left.

    Args:
        descriptor: the capability (its provider kind is set to GRPC).
        session_of: the live stream of an agent id, or None.
        default_timeout_s: the wait for a result when the call names no timeout.
    """

    def __init__(
        self,
        descriptor: CapabilityDescriptor,
        session_of: Callable[[str], StreamSession | None],
        default_timeout_s: float,
    ) -> None:
        self.descriptor = CapabilityDescriptor(
            name=descriptor.name,
            version=descriptor.version,
            provider=ProviderKind.GRPC,
            metadata=dict(descriptor.metadata),
        )
        self._session_of = session_of
        self._default_timeout_s = default_timeout_s
        self._agents: list[str] = []

    def __repr__(self) -> str:
        d = self.descriptor
        return f"<RemoteCapabilityProvider {d.name}:{d.version} agents={self._agents}>"

    @property
    def agents(self) -> tuple[str, ...]:
        """Ids of the agents serving the capability, the preferred one last."""
        return tuple(self._agents)

    def add(self, agent_id: str) -> None:
        """Serve the capability from ``agent_id`` too, preferring it from now on."""
        if agent_id in self._agents:
            self._agents.remove(agent_id)
        self._agents.append(agent_id)

    def remove(self, agent_id: str) -> bool:
        """Stop serving from ``agent_id``; whether any agent is left."""
        if agent_id in self._agents:
            self._agents.remove(agent_id)
        return bool(self._agents)

    async def invoke(self, call: ActionCall) -> bytes:
        """Run the call on the preferred connected agent and return its output.

        Raises:
            CapabilityError: PROVIDER_UNAVAILABLE when no serving agent is connected or the
                agent disconnects before answering; TIMEOUT when it does not answer in time;
                otherwise the code and message of the agent's error.
        """
        session = None
        for agent_id in reversed(self._agents):
            session = self._session_of(agent_id)
            if session is not None and not session.ending:
                break
            session = None
        d = self.descriptor
        if session is None:
            raise CapabilityError(
                ErrorCode.PROVIDER_UNAVAILABLE,
                f"no agent serving {d.name!r} version {d.version!r} is connected to the bridge",
                retryable=True,
            )
        timeout_s = call.timeout_ms / 1000 if call.timeout_ms > 0 else self._default_timeout_s
        result = await session.call(call, timeout_s)
        if result.status is ActionStatus.OK:
            return result.output
        error = result.error
        code = (error.code if error is not None else "") or ErrorCode.CAPABILITY_ERROR
        message = (error.message if error is not None else "") or (
            f"agent {session.agent_id!r} answered {result.status.name} without an error"
        )
        raise CapabilityError(
            code,
            message,
            details=error.details if error is not None else None,
            retryable=result.status is ActionStatus.RETRYABLE,
        )
