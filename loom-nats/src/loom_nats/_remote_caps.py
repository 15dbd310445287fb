"""Capabilities and agents across hosts: each host announces what it has on the bus, and
calls the capabilities other hosts announced through its own broker.

A :class:`CapabilityMesh` joins one host's :class:`~loom.actions.ActionBroker` and
:class:`~loom.directory.AgentDirectory` to every other host's on the same bus:

- every ``announce_interval_s`` (and when it sees a host it did not know) it publishes on
  ``mesh.announce`` the capabilities its broker runs itself and the agents its runtime
  runs, with its host id;
- what other hosts announce becomes :class:`MeshProvider` providers in its broker (a local
  provider of the same name and version always wins) and records in its agent directory
  (metadata ``host``);
- a call to a :class:`MeshProvider` travels as a ``loom.v1.ActionCall`` on
  ``mesh.{host}.call``; that host's broker runs it (timeouts, validation, idempotency and
  circuit breaker as for a local call) and the ``loom.v1.ActionResult`` comes back on
  ``mesh.{caller}.reply``;
- a host that says goodbye, or is not heard for ``expire_after_s``, is dropped: its
  capabilities and agents disappear, its unanswered calls fail PROVIDER_UNAVAILABLE, and
  ``mesh.host.lost`` is published on ``mesh.hosts``; when it announces again it is back.

Every host on the bus can call every announced capability: the mesh trusts the bus as much
as the bus's credentials do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from loom import ActionCall, ActionError, ActionResult, ActionStatus, CapabilityDescriptor, Event
from loom.actions import ActionBroker, CapabilityError, ErrorCode
from loom.bus import Backpressure, EventBus, Policy, Subscription
from loom.directory import AgentDirectory, AgentRecord
from loom.topics import validate_topic
from loom_nats._mesh_provider import MeshProvider, MeshStats
from loom_nats._mesh_wire import (
    HOSTS_TOPIC,
    LEAVE,
    MESH_ANNOUNCE_TOPIC,
    announcement,
    call_event,
    call_topic,
    read_announcement,
    read_call,
    read_result,
    reply_topic,
    result_event,
)

__all__ = [
    "HOSTS_TOPIC",
    "MESH_ANNOUNCE_TOPIC",
    "CapabilityMesh",
    "MeshProvider",
    "MeshStats",
    "call_topic",
]

log = logging.getLogger("loom.nats.mesh")


@dataclass(eq=False)
class _Peer:
    host_id: str
    last_seen: float
    capabilities: frozenset[tuple[str, str]] = frozenset()
    agents: frozenset[str] = frozenset()


class CapabilityMesh:
    """Shares one host's capabilities and agents with the other hosts on its bus.

    Args:
        bus: the bus the hosts share (a started ``NatsBus``, or any ``EventBus``).
        broker: this host's broker: its own providers are announced; other hosts'
            capabilities are registered in it as :class:`MeshProvider`.
        host_id: this host's id, unique on the bus; one topic token (no ``.``, ``*``,
            ``>`` or whitespace).
        directory: the agent directory to announce and to fill with other hosts' agents
            (the runtime's ``directory``); None shares no agents.
        announce_interval_s: seconds between announcements (each is also a heartbeat).
        expire_after_s: a host not heard for this long is dropped; default three
            intervals.
        call_timeout_s: the wait for a result of a call that names no timeout.
        max_concurrent_calls: calls from other hosts run here at once; more are refused
            PROVIDER_UNAVAILABLE (retryable).
        max_pending_calls: calls this host waits on at once; more fail the same way.
        max_peers: hosts remembered at once; announcements of more are ignored (counted).

    Raises:
        ValueError: a bad host id or bound, naming it.

    Example:
        .. code-block:: python

            async with NatsBus(url, name="host-a") as bus, ActionBroker() as broker:
                runtime = AgentRuntime(bus, broker=broker)
                mesh = CapabilityMesh(bus, broker, host_id="host-a",
                                      directory=runtime.directory)
                await mesh.start()
                ...  # broker.invoke() now reaches capabilities of other hosts too
                await mesh.close()
    """

    def __init__(
        self,
        bus: EventBus,
        broker: ActionBroker,
        *,
        host_id: str,
        directory: AgentDirectory | None = None,
        announce_interval_s: float = 5.0,
        expire_after_s: float | None = None,
        call_timeout_s: float = 30.0,
        max_concurrent_calls: int = 256,
        max_pending_calls: int = 1024,
        max_peers: int = 1024,
    ) -> None:
        if not isinstance(host_id, str) or not host_id or "." in host_id:
            raise ValueError(f"host_id must be one topic token (no '.'), got {host_id!r}")
        try:
            validate_topic(call_topic(host_id))
        except ValueError as exc:
            raise ValueError(f"host_id {host_id!r} is not a valid topic token: {exc}") from None
        for label, value in (
            ("announce_interval_s", announce_interval_s),
            ("call_timeout_s", call_timeout_s),
            ("max_concurrent_calls", max_concurrent_calls),
            ("max_pending_calls", max_pending_calls),
            ("max_peers", max_peers),
        ):
            if isinstance(value, bool) or not value > 0:
                raise ValueError(f"{label} must be positive, got {value!r}")
        expire = 3 * announce_interval_s if expire_after_s is None else expire_after_s
        if not expire > announce_interval_s:
            raise ValueError(
                f"expire_after_s ({expire}) must be longer than announce_interval_s "
                f"({announce_interval_s}), or every host would expire between announcements"
            )
        self.bus = bus
        self.broker = broker
        self.host_id = host_id
        self.directory = directory
        self.announce_interval_s = float(announce_interval_s)
        self.expire_after_s = float(expire)
        self.call_timeout_s = float(call_timeout_s)
        self.max_concurrent_calls = max_concurrent_calls
        self.max_pending_calls = max_pending_calls
        self.max_peers = max_peers
        self.stats = MeshStats()
        self._peers: dict[str, _Peer] = {}
        self._remote_agents: dict[str, str] = {}  # agent id -> the host that announced it
        self._pending: dict[str, tuple[str, asyncio.Future[ActionResult]]] = {}
        self._serving: set[asyncio.Task[None]] = set()
        self._subscriptions: list[Subscription] = []
        self._ticker: asyncio.Task[None] | None = None
        self._started = False

    def __repr__(self) -> str:
        return f"<CapabilityMesh {self.host_id} peers={sorted(self._peers)}>"

    @property
    def peers(self) -> list[str]:
        """The other hosts heard from and not lost, sorted."""
        return sorted(self._peers)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the mesh topics, announce this host and keep announcing."""
        if self._started:
            return
        self._started = True
        bus = self.bus
        # Announcements are periodic: losing the oldest of a burst loses nothing for
        # long. Calls and results are only handed to tasks, so their queues drain fast.
        self._subscriptions = [
            await bus.subscribe(
                MESH_ANNOUNCE_TOPIC,
                handler=self._on_announce,
                backpressure=Backpressure(Policy.DROP_OLDEST, queue_size=1024),
            ),
            await bus.subscribe(
                call_topic(self.host_id),
                handler=self._on_call,
                backpressure=Backpressure(Policy.DROP_NEWEST, queue_size=4096),
            ),
            await bus.subscribe(
                reply_topic(self.host_id),
                handler=self._on_result,
                backpressure=Backpressure(Policy.DROP_NEWEST, queue_size=4096),
            ),
        ]
        await self.announce()
        self._ticker = asyncio.create_task(self._tick(), name=f"mesh-{self.host_id}")

    async def close(self) -> None:
        """Say goodbye, stop taking calls, fail the calls still waiting, and drop every
        other host's capabilities and agents from this host. Idempotent."""
        if not self._started:
            return
        self._started = False
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        with contextlib.suppress(Exception):  # the bus may be gone already
            await self.bus.publish(MESH_ANNOUNCE_TOPIC, Event(LEAVE, b"", source=self.host_id))
        for sub in self._subscriptions:
            with contextlib.suppress(Exception):
                await self.bus.unsubscribe(sub.id)
        self._subscriptions = []
        for task in list(self._serving):
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)
        for host_id in list(self._peers):
            await self._drop(host_id, why=f"host {self.host_id!r} left the mesh")

    async def __aenter__(self) -> CapabilityMesh:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- announcing -------------------------------------------------------------------------

    async def announce(self) -> None:
        """Publish this host's capabilities and agents now (also done every interval)."""
        capabilities = []
        for descriptor in self.broker.list_capabilities():
            provider = self.broker.provider(descriptor.name, descriptor.version)
            if provider is None or isinstance(provider, MeshProvider):
                continue  # only what runs here: never re-export another host's
            capabilities.append(descriptor)
        agents: list[AgentRecord] = []
        if self.directory is not None:
            agents = [r for r in self.directory.all() if r.agent_id not in self._remote_agents]
        await self.bus.publish(
            MESH_ANNOUNCE_TOPIC, announcement(self.host_id, capabilities, agents)
        )

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.announce_interval_s)
            try:
                await self.announce()
            except Exception as exc:  # noqa: BLE001 - an outage; the next tick tries again
                log.warning("mesh %s: announcing failed: %s", self.host_id, exc)
            now = time.monotonic()
            for peer in list(self._peers.values()):
                if now - peer.last_seen > self.expire_after_s:
                    quiet = now - peer.last_seen
                    log.warning(
                        "mesh %s: host %r lost: not heard for %.1f s",
                        self.host_id,
                        peer.host_id,
                        quiet,
                    )
                    self.stats.hosts_lost += 1
                    await self._drop(peer.host_id, why=f"host {peer.host_id!r} was lost")
                    await self._report("mesh.host.lost", peer.host_id, quiet_s=f"{quiet:.3f}")

    async def _on_announce(self, topic: str, event: Event) -> None:
        host_id = event.source
        if host_id == self.host_id:
            return
        if event.type == LEAVE:
            if host_id in self._peers:
                log.info("mesh %s: host %r left", self.host_id, host_id)
                await self._drop(host_id, why=f"host {host_id!r} left the mesh")
            return
        try:
            capabilities, agents = read_announcement(event)
        except ValueError as exc:
            self.stats.malformed += 1
            log.warning("mesh %s: unreadable announcement from %r: %s", self.host_id, host_id, exc)
            return
        peer = self._peers.get(host_id)
        if peer is None:
            if len(self._peers) >= self.max_peers:
                self.stats.peers_refused += 1
                return
            peer = self._peers[host_id] = _Peer(host_id, time.monotonic())
            await self._apply_capabilities(peer, capabilities)
            self._apply_agents(peer, agents)
            self.stats.hosts_joined += 1
            log.info("mesh %s: host %r joined", self.host_id, host_id)
            await self._report("mesh.host.joined", host_id)
            await self.announce()  # so the newcomer need not wait an interval for us
            return
        peer.last_seen = time.monotonic()
        await self._apply_capabilities(peer, capabilities)
        self._apply_agents(peer, agents)

    async def _apply_capabilities(
        self, peer: _Peer, descriptors: list[CapabilityDescriptor]
    ) -> None:
        keys = frozenset((d.name, d.version) for d in descriptors)
        for descriptor in descriptors:
            current = self.broker.provider(descriptor.name, descriptor.version)
            if isinstance(current, MeshProvider):
                current.add(peer.host_id)
            elif current is None:
                provider = MeshProvider(self, descriptor)
                provider.add(peer.host_id)
                self.broker.register(provider)
            # else a provider of this host runs it: the local one wins
        for name, version in peer.capabilities - keys:
            await self._withdraw(name, version, peer.host_id)
        peer.capabilities = keys

    async def _withdraw(self, name: str, version: str, host_id: str) -> None:
        current = self.broker.provider(name, version)
        if isinstance(current, MeshProvider) and not current.remove(host_id):
            await self.broker.unregister(name, version)

    def _apply_agents(self, peer: _Peer, records: list[AgentRecord]) -> None:
        directory = self.directory
        if directory is None:
            return
        ids = set()
        for record in records:
            owner = self._remote_agents.get(record.agent_id)
            if owner is None and record.agent_id in directory:
                continue  # an agent of this host has that id: it wins here
            directory.register(record)
            self._remote_agents[record.agent_id] = peer.host_id
            ids.add(record.agent_id)
        for agent_id in peer.agents - ids:
            if self._remote_agents.get(agent_id) == peer.host_id:
                del self._remote_agents[agent_id]
                directory.unregister(agent_id)
        peer.agents = frozenset(ids)

    async def _drop(self, host_id: str, *, why: str) -> None:
        peer = self._peers.pop(host_id, None)
        if peer is None:
            return
        for name, version in peer.capabilities:
            await self._withdraw(name, version, host_id)
        if self.directory is not None:
            for agent_id in peer.agents:
                if self._remote_agents.get(agent_id) == host_id:
                    del self._remote_agents[agent_id]
                    self.directory.unregister(agent_id)
        for token, (target, future) in list(self._pending.items()):
            if target == host_id and not future.done():
                future.set_exception(
                    CapabilityError(ErrorCode.PROVIDER_UNAVAILABLE, why, retryable=True)
                )
                del self._pending[token]

    async def _report(self, kind: str, host_id: str, **extra: str) -> None:
        metadata = {"host": host_id, "observer": self.host_id, **extra}
        try:
            await self.bus.publish(
                HOSTS_TOPIC, Event(kind, b"", source=self.host_id, metadata=metadata)
            )
        except Exception as exc:  # noqa: BLE001 - the log line above already reported it
            log.debug("mesh %s: reporting %s failed: %s", self.host_id, kind, exc)

    # -- calls ------------------------------------------------------------------------------

    async def call(self, host_id: str, call: ActionCall) -> ActionResult:
        """Run ``call`` on ``host_id``'s broker and return its result.

        Raises:
            CapabilityError: PROVIDER_UNAVAILABLE when the host is not known, is lost
                before answering, or ``max_pending_calls`` calls already wait; TIMEOUT
                when no result comes within the call's timeout (or ``call_timeout_s``).
        """
        if host_id not in self._peers:
            raise CapabilityError(
                ErrorCode.PROVIDER_UNAVAILABLE,
                f"host {host_id!r} is not in the mesh of {self.host_id!r}",
                retryable=True,
            )
        if len(self._pending) >= self.max_pending_calls:
            raise CapabilityError(
                ErrorCode.PROVIDER_UNAVAILABLE,
                f"{self.max_pending_calls} calls already wait for other hosts (max_pending_calls)",
                retryable=True,
            )
        request = call_event(self.host_id, call)
        future: asyncio.Future[ActionResult] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = (host_id, future)
        timeout_s = call.timeout_ms / 1000 if call.timeout_ms > 0 else self.call_timeout_s
        try:
            await self.bus.publish(call_topic(host_id), request)
            self.stats.calls_sent += 1
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            self.stats.calls_timed_out += 1
            raise CapabilityError(
                ErrorCode.TIMEOUT,
                f"host {host_id!r} sent no result for {call.capability!r} in {timeout_s:g} s",
                retryable=True,
            ) from None
        finally:
            self._pending.pop(request.id, None)

    async def _on_call(self, topic: str, event: Event) -> None:
        try:
            call, reply_to = read_call(event)
        except ValueError as exc:
            self.stats.malformed += 1
            log.warning(
                "mesh %s: unreadable call from %r on %s: %s", self.host_id, event.source, topic, exc
            )
            return
        provider = self.broker.provider(call.capability, call.version)
        refusal = None
        if provider is None or isinstance(provider, MeshProvider):
            refusal = ActionResult(
                call.id,
                ActionStatus.ERROR,
                error=ActionError(
                    ErrorCode.NOT_FOUND,
                    f"host {self.host_id!r} does not run {call.capability!r} "
                    f"version {call.version or 'any'!r}",
                ),
            )
        elif len(self._serving) >= self.max_concurrent_calls:
            refusal = ActionResult(
                call.id,
                ActionStatus.RETRYABLE,
                error=ActionError(
                    ErrorCode.PROVIDER_UNAVAILABLE,
                    f"host {self.host_id!r} runs {self.max_concurrent_calls} calls from "
                    "other hosts already (max_concurrent_calls)",
                ),
            )
        if refusal is not None:
            self.stats.calls_refused += 1
            await self._answer(reply_to, event.id, refusal)
            return
        task = asyncio.create_task(self._serve(call, reply_to, event.id))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _serve(self, call: ActionCall, reply_to: str, token: str) -> None:
        result = await self.broker.invoke(call)
        self.stats.calls_served += 1
        await self._answer(reply_to, token, result)

    async def _answer(self, reply_to: str, token: str, result: ActionResult) -> None:
        try:
            await self.bus.publish(reply_to, result_event(self.host_id, token, result))
        except Exception as exc:  # noqa: BLE001 - the caller times out and says so
            log.warning("mesh %s: sending a result to %s failed: %s", self.host_id, reply_to, exc)

    async def _on_result(self, topic: str, event: Event) -> None:
        pending = self._pending.pop(event.metadata.get("in_reply_to", ""), None)
        if pending is None or pending[1].done():
            self.stats.late_results += 1
            return
        try:
            result = read_result(event.payload)
        except ValueError as exc:
            self.stats.malformed += 1
            pending[1].set_exception(
                CapabilityError(
                    ErrorCode.PROVIDER_UNAVAILABLE,
                    f"host {pending[0]!r} sent an unreadable result: {exc}",
                )
            )
            return
        pending[1].set_result(result)
