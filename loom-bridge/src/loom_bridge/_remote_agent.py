"""Run agent code in its own process, connected to a Loom host through the bridge."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self

import grpc.aio

from loom import ProviderKind
from loom.actions import CapabilityFunction, Provider
from loom.agents import DEFAULT_MAILBOX, Agent, AgentInfo, AgentRuntime, EventHandler, RestartPolicy
from loom.v1 import bridge_pb2
from loom_bridge._client_config import ClientConfig
from loom_bridge._link import BridgeLink
from loom_bridge._registration import check_agent_id
from loom_bridge._remote_broker import RemoteBroker, as_provider
from loom_bridge._remote_bus import RemoteBus
from loom_bridge._run import run_agents

__all__ = ["RemoteAgent"]

log = logging.getLogger("loom.bridge.client")

CapabilityLike = Provider | CapabilityFunction[..., Any] | Callable[..., Any]


class RemoteAgent:
    """An agent that runs here and takes part in a Loom host through its bridge.

    The agent code is the same as for an embedded agent: an :class:`~loom.agents.Agent`
    subclass with :func:`~loom.agents.handles` methods, or ``async def handler(ctx,
    event)``. It runs in a local :class:`~loom.agents.AgentRuntime` (one mailbox, events in
    order, supervised restarts) whose bus is the bridge (:class:`RemoteBus`), so
    ``ctx.publish``, ``ctx.emit``, ``ctx.reply``, ``ctx.subscribe`` and the collaboration
    primitives (``ctx.request``, ``ctx.fanout``, ``ctx.barrier``, ``ctx.contract_net``,
    with replies on the agent's private topic) act on the host's bus; ``ctx.invoke`` and
    ``ctx.tool`` go through its :class:`RemoteBroker` to the host's ActionBroker
    (ForwardAction), which also reaches the agent's own capabilities.

    The connection registers the agent's topics (its private ``agent.{id}.replies``
    included) and capabilities, opens the stream with the Ack, heartbeats, and reconnects
    with backoff after any failure, registering again.

    Args:
        agent_id: the agent's id (one topic token: no dots or spaces).
        agent: the agent code.
        topics: topic patterns to subscribe to besides the class's ``topics``.
        capabilities: capabilities this agent serves: :func:`~loom.actions.capability`
            functions, plain functions or providers.
        config: how to reach the bridge; None reads ``LOOM_BRIDGE_ADDR`` and
            ``LOOM_BRIDGE_TOKEN`` (:meth:`ClientConfig.from_env`).
        metadata: sent with the registration (``qos`` picks the QoS of deliveries).
        state_store: persistent state for ``ctx.state``, as for an embedded agent.
        mailbox_size: the agent's mailbox bound.
        restart_policy: the supervisor's policy.

    Example:
        .. code-block:: python

            async def echo(ctx, event):
                await ctx.reply(event, "echo.reply", event.payload)

            async with RemoteAgent("echo", echo, topics=["echo.requests"]) as agent:
                await agent.wait_closed()
    """

    def __init__(
        self,
        agent_id: str,
        agent: Agent | EventHandler,
        *,
        topics: Iterable[str] = (),
        capabilities: Iterable[CapabilityLike] = (),
        config: ClientConfig | None = None,
        metadata: Mapping[str, str] | None = None,
        state_store: Any = None,
        mailbox_size: int = DEFAULT_MAILBOX,
        restart_policy: RestartPolicy | None = None,
    ) -> None:
        check_agent_id(agent_id)
        self.agent_id = agent_id
        self.config = config if config is not None else ClientConfig.from_env()
        self.metadata = dict(metadata or {})
        self._agent = agent
        self._topics = tuple(topics)
        self.bus = RemoteBus(self._reregister)
        self.broker = RemoteBroker(self._reregister)
        for item in capabilities:
            self.broker.register(as_provider(item))
        self.runtime = AgentRuntime(
            self.bus,
            state_store=state_store,
            mailbox_size=mailbox_size,
            restart_policy=restart_policy,
            broker=self.broker,
        )
        self.link = BridgeLink(
            agent_id,
            self.config,
            registration=self.registration,
            on_delivery=self.bus.deliver,
            on_action_call=self.broker.serve,
        )
        self.bus.attach(self.link)
        self.broker.attach(self.link)
        self._started = False

    def __repr__(self) -> str:
        return f"<RemoteAgent {self.agent_id} {self.link!r}>"

    def registration(self) -> bridge_pb2.AgentRegisterRequest:
        """The registration sent at each connection: the bus's patterns and the broker's
        capabilities (as kind GRPC)."""
        request = bridge_pb2.AgentRegisterRequest(
            agent_id=self.agent_id,
            subscribed_topics=self.bus.patterns(),
            metadata=self.metadata,
        )
        for descriptor in self.broker.list_capabilities():
            descriptor.provider = ProviderKind.GRPC
            request.capabilities.append(descriptor.to_proto())
        return request

    async def _reregister(self) -> None:
        if not self._started:
            return  # the first connection registers what there is by then
        try:
            await self.link.register_now()
        except grpc.aio.AioRpcError as exc:
            # The connection is failing; the next one registers the current state.
            log.warning(
                "agent %s: could not register again now (%s); the next connection will",
                self.agent_id,
                exc.code().name,
            )

    @property
    def connected(self) -> bool:
        """Whether the stream to the bridge is open now."""
        return self.link.connected

    def info(self) -> AgentInfo:
        """The agent's status and counters, as the local runtime keeps them."""
        return self.runtime.info(self.agent_id)

    async def start(self, *, wait: bool = True) -> None:
        """Create the agent, connect, then start the agent.

        Args:
            wait: wait for the first connection (else it is made in the background and
                what the agent publishes meanwhile waits in the bounded outbound queue).

        Raises:
            RegistrationError: the bridge refused the registration.
            NotConnectedError: no connection within ``config.connect_timeout_s``.
        """
        if self._started:
            return
        await self.bus.start()
        await self.runtime.create(self.agent_id, self._agent, topics=self._topics)
        try:
            await self.link.start(wait=wait)
        except BaseException:
            await self._close()
            raise
        self._started = True
        await self.runtime.start(self.agent_id)

    async def stop(self, *, flush_timeout_s: float = 1.0) -> None:
        """Stop the agent (``on_stop`` runs), send what it queued (waiting up to
        ``flush_timeout_s``), then close the connection."""
        if not self._started:
            return
        self._started = False
        await self.runtime.shutdown()
        await self.link.flush(flush_timeout_s)
        await self._close()

    async def _close(self) -> None:
        await self.link.stop()
        await self.broker.aclose()
        await self.bus.shutdown()

    async def wait_closed(self) -> None:
        """Wait until the connection stops for good (stopped, or replaced by another
        connection of the same agent id)."""
        await self.link.wait_closed()

    async def run(self) -> None:
        """Start, run until SIGINT or SIGTERM (or the connection stops for good), then
        stop. For a script's ``asyncio.run(agent.run())``.

        The signal handlers are shared with every other ``run()`` and :func:`run_agents`
        on the loop, so several agents may run side by side in one process (one signal stops
        them all); the handlers that were there before are put back when the last returns.
        :func:`run_agents` runs several agents as one.

        Raises:
            BridgeError: the agent could not start, or its connection stopped for good.
        """
        await run_agents(self)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
