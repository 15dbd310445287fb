"""The capability mesh's provider of other hosts' capabilities, and its counters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from loom import ActionCall, ActionStatus, CapabilityDescriptor
from loom.actions import CapabilityError, ErrorCode, Provider

if TYPE_CHECKING:
    from loom_nats._remote_caps import CapabilityMesh

__all__ = ["MeshProvider", "MeshStats"]


@dataclass
class MeshStats:
    """Counters of one mesh since it started.

    Attributes:
        hosts_joined: hosts seen for the first time (or again after being lost).
        hosts_lost: hosts dropped because they went quiet.
        calls_sent: calls sent to other hosts.
        calls_served: calls other hosts sent here that were run.
        calls_refused: calls refused here (too many at once, or a capability this host
            does not run itself).
        calls_timed_out: calls sent that got no result in time.
        late_results: results that came after their call ended.
        malformed: messages on mesh topics that could not be read (dropped, logged).
        peers_refused: announcements ignored because ``max_peers`` hosts are known.
    """

    hosts_joined: int = 0
    hosts_lost: int = 0
    calls_sent: int = 0
    calls_served: int = 0
    calls_refused: int = 0
    calls_timed_out: int = 0
    late_results: int = 0
    malformed: int = 0
    peers_refused: int = 0


class MeshProvider(Provider):
    """A capability other hosts run: calls go to one of them through the mesh.

    Several hosts may announce the same name and version; a call goes to the one that
    announced it most recently. The mesh adds and removes hosts as they come and go.
    """

    def __init__(self, mesh: CapabilityMesh, descriptor: CapabilityDescriptor) -> None:
        self.descriptor = CapabilityDescriptor(
            descriptor.name, descriptor.version, descriptor.provider, dict(descriptor.metadata)
        )
        self._mesh = mesh
        self._hosts: list[str] = []

    def __repr__(self) -> str:
        d = self.descriptor
        return f"<MeshProvider {d.name}:{d.version} hosts={self._hosts}>"

    @property
    def hosts(self) -> tuple[str, ...]:
        """The hosts that run the capability, the preferred one last."""
        return tuple(self._hosts)

    def add(self, host_id: str) -> None:
        """Serve from ``host_id`` too, preferring it from now on."""
        if host_id in self._hosts:
            self._hosts.remove(host_id)
        self._hosts.append(host_id)

    def remove(self, host_id: str) -> bool:
        """Stop serving from ``host_id``; whether any host is left."""
        if host_id in self._hosts:
            self._hosts.remove(host_id)
        return bool(self._hosts)

    async def invoke(self, call: ActionCall) -> bytes:
        """Run the call on the preferred host and return its output.

        Raises:
            CapabilityError: PROVIDER_UNAVAILABLE when no host serves it any more, the host
                is lost meanwhile or too many calls are waiting; TIMEOUT when no result
                comes in time; else the remote broker's code and message.
        """
        d = self.descriptor
        if not self._hosts:
            raise CapabilityError(
                ErrorCode.PROVIDER_UNAVAILABLE,
                f"no host runs {d.name!r} version {d.version!r} any more",
                retryable=True,
            )
        host = self._hosts[-1]
        result = await self._mesh.call(host, call)
        if result.status is ActionStatus.OK:
            return result.output
        error = result.error
        code = (error.code if error is not None else "") or ErrorCode.CAPABILITY_ERROR
        message = (error.message if error is not None else "") or (
            f"host {host!r} answered {result.status.name} without an error"
        )
        raise CapabilityError(
            code,
            message,
            details=error.details if error is not None else None,
            retryable=result.status is ActionStatus.RETRYABLE,
        )
