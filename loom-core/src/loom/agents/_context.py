"""What an agent's handler sees: its id, the bus, its state and memory, and the
collaboration and action calls it makes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, overload

from loom._action import ActionCall, ActionResult, ActionStatus
from loom._envelope import Envelope
from loom._event import Event
from loom.collab import (
    ALL,
    COLLAB_CFP,
    COLLAB_PROPOSAL,
    COLLAB_REPLY,
    COLLAB_REQUEST,
    BarrierResult,
    Collab,
    ContractNetResult,
    FanoutResult,
    Payload,
    Strategy,
    Thread,
)
from loom.collab._checks import positive_seconds
from loom.collab._collab import build_reply, proposal_metadata
from loom.collab._payload import encode_payload
from loom.collab._request import request as _request
from loom.errors import AgentError, LoomError
from loom.topics import agent_replies_topic

if TYPE_CHECKING:
    from loom.agents._runtime import AgentRuntime
    from loom.bus import EventBus

__all__ = ["ActionFailedError", "ActionInvoker", "Context"]


class ActionInvoker(Protocol):
    """What ``ctx.invoke`` needs of a broker: ``loom.actions.ActionBroker`` is one."""

    async def invoke(self, call: ActionCall) -> ActionResult:
        """Run ``call`` and return its result (never raising for a failed action)."""
        ...


class ActionFailedError(LoomError, RuntimeError):
    """``ctx.tool`` got a result that is not ACTION_OK.

    Attributes:
        capability: the capability called.
        result: the :class:`~loom.ActionResult` (status, error code and message).
        code: the error code (``NOT_FOUND``, ``INVALID_PARAMS``, ...), or the status name
            when the result carries no error.
    """

    def __init__(self, capability: str, result: ActionResult) -> None:
        self.capability = capability
        self.result = result
        error = result.error
        self.code = error.code if error is not None else ActionStatus(result.status).name
        detail = f": {error.message}" if error is not None and error.message else ""
        super().__init__(f"capability {capability!r} failed with {self.code}{detail}")


class Context:
    """The agent's view of the world, passed to every handler.

    Besides the bus (:meth:`publish`, :meth:`emit`) it offers the collaboration
    primitives, with replies arriving on the agent's private topic ``agent.{id}.replies``
    and handed to the waiting call even while the agent is busy in the handler that made
    it (see :class:`~loom.collab.Collab` for each primitive's contract), and
    :meth:`invoke` / :meth:`tool` for capabilities, through the runtime's broker.

    Attributes:
        agent_id: the agent's id.
        sender: ``agent.{agent_id}``, the sender written into envelopes.
        topic: the concrete topic of the event being handled ("" outside a handler).
        memory: ephemeral context, kept in memory and reset on a supervised restart.
        state: the agent's persistent state (``store.for_agent(agent_id)``, a key-value
            view of the runtime's state store), or None when the runtime has no store.
    """

    __slots__ = (
        "_broker",
        "_bus",
        "_collab",
        "_runtime",
        "agent_id",
        "memory",
        "sender",
        "state",
        "topic",
    )

    def __init__(self, runtime: AgentRuntime, agent_id: str, state: Any) -> None:
        self._runtime = runtime
        self._bus: EventBus = runtime.bus
        self._broker: ActionInvoker | None = runtime.broker
        self._collab: Collab | None = None
        self.agent_id = agent_id
        self.sender = f"agent.{agent_id}"
        self.topic = ""
        self.memory: dict[str, Any] = {}
        self.state = state

    @property
    def collab(self) -> Collab:
        """This agent's collaboration party: its primitives and ``stats``."""
        collab = self._collab
        if collab is None:
            channel = self._runtime._reply_channel(self.agent_id)
            collab = self._collab = Collab(self._bus, self.sender, channel=channel)
        return collab

    # -- the bus ---------------------------------------------------------------------------

    def thread(self, event: Event | None = None) -> Thread:
        """The conversation ``event`` belongs to, or a new one started by this agent."""
        return Thread.new(self.sender) if event is None else Thread.of(event)

    async def publish(self, topic: str, event: Event) -> int:
        """Publish an event as is; returns the number of deliveries."""
        return await self._bus.publish(topic, event)

    async def emit(
        self,
        topic: str,
        type: str,
        payload: bytes = b"",
        *,
        envelope: Envelope | None = None,
        metadata: Mapping[str, str] | None = None,
        priority: int = 50,
        tags: tuple[str, ...] = (),
    ) -> Event:
        """Build an event from this agent and publish it; returns the event.

        Without an ``envelope`` the event starts a new thread (its own id) with this agent
        as sender and replies going to the agent's private topic.
        """
        event = Event(
            type,
            payload,
            source=self.sender,
            metadata=dict(metadata or {}),
            priority=priority,
            tags=tags,
        )
        if envelope is None:
            envelope = Envelope.with_agent_reply(event.id, self.sender, self.agent_id)
        else:
            envelope.sender = self.sender
        envelope.attach(event.metadata)
        await self._bus.publish(topic, event)
        return event

    @overload
    async def reply(
        self,
        original: Event | Thread,
        type: str = ...,
        payload: Payload = ...,
        *,
        metadata: Mapping[str, str] | None = ...,
        priority: int = ...,
    ) -> Event: ...

    @overload
    async def reply(
        self,
        original: Event | Thread,
        type: bytes | Mapping[str, Any] | list[Any],
        *,
        metadata: Mapping[str, str] | None = ...,
        priority: int = ...,
    ) -> Event: ...

    async def reply(
        self,
        original: Event | Thread,
        type: str | bytes | Mapping[str, Any] | list[Any] = COLLAB_REPLY,
        payload: Payload = b"",
        *,
        metadata: Mapping[str, str] | None = None,
        priority: int = 50,
    ) -> Event:
        """Answer ``original``: to its ``reply_to`` (or its sender's private topic), same thread.

        The correlation id is kept (the original's id when it has none), so a requester can
        match the reply; hop and ttl carry on. ``original`` may be the event or the
        :class:`~loom.collab.Thread` read from it. ``ctx.reply(event, {"ok": True})``, with
        a payload in place of the type, sends a ``collab.reply``; a mapping or list
        payload is sent as JSON, a str as UTF-8.

        Raises:
            ValueError: the original has no ``reply_to`` and no agent sender.
            TypeError: the payload cannot be encoded, or is given twice.
        """
        if not isinstance(type, str):
            if payload != b"":
                raise TypeError("reply() got a payload in place of the type and another one")
            type, payload = COLLAB_REPLY, type
        topic, event = build_reply(
            original,
            type,
            payload,
            sender=self.sender,
            reply_to=agent_replies_topic(self.agent_id),
            metadata=metadata,
            priority=priority,
        )
        await self._bus.publish(topic, event)
        return event

    async def subscribe(self, pattern: str) -> None:
        """Subscribe this agent to one more topic pattern, while it runs."""
        await self._runtime.subscribe(self.agent_id, pattern)

    async def unsubscribe(self, pattern: str) -> None:
        """Drop one of this agent's subscriptions (not its private topic)."""
        await self._runtime.unsubscribe(self.agent_id, pattern)

    # -- collaboration ---------------------------------------------------------------------

    async def request(
        self,
        topic: str,
        type: str = COLLAB_REQUEST,
        payload: Payload = b"",
        *,
        timeout_s: float = 5.0,
        thread: Thread | None = None,
        metadata: Mapping[str, str] | None = None,
        priority: int = 50,
    ) -> Event:
        """Send a request to ``topic`` and return the first reply (see
        :meth:`Collab.request <loom.collab.Collab.request>`).

        Safe to await inside a handler: the reply reaches this call without going
        through the agent's mailbox.

        Raises:
            CollabTimeout: no reply within ``timeout_s``.
        """
        return await _request(
            self._collab or self.collab,
            topic,
            type,
            payload,
            timeout_s=timeout_s,
            thread=thread,
            metadata=metadata,
            priority=priority,
        )

    async def fanout(
        self,
        topics: Sequence[str],
        type: str = COLLAB_REQUEST,
        payload: Payload = b"",
        *,
        strategy: Strategy | str = ALL,
        timeout_s: float = 5.0,
        thread: Thread | None = None,
        metadata: Mapping[str, str] | None = None,
        priority: int = 50,
    ) -> FanoutResult:
        """Request from every topic and collect as ``strategy`` says (see
        :meth:`Collab.fanout <loom.collab.Collab.fanout>`).

        Raises:
            CollabTimeout: the strategy was not satisfied in time (``result`` holds the
                replies that came).
        """
        return await self.collab.fanout(
            topics,
            type,
            payload,
            strategy=strategy,
            timeout_s=timeout_s,
            thread=thread,
            metadata=metadata,
            priority=priority,
        )

    async def barrier(
        self,
        thread: Thread | str,
        n: int,
        *,
        timeout_s: float = 5.0,
        participate: bool = True,
    ) -> BarrierResult:
        """Check in on ``thread`` and wait for ``n`` distinct participants (see
        :meth:`Collab.barrier <loom.collab.Collab.barrier>`).

        Raises:
            CollabTimeout: fewer than ``n`` arrived in time (``result.arrived`` says who).
        """
        return await self.collab.barrier(thread, n, timeout_s=timeout_s, participate=participate)

    async def contract_net(
        self,
        thread: Thread | str | None,
        payload: Payload = b"",
        *,
        window_s: float,
        max_awards: int = 1,
        bidders: int | None = None,
        result_timeout_s: float | None = None,
        type: str = COLLAB_CFP,
        metadata: Mapping[str, str] | None = None,
    ) -> ContractNetResult:
        """Run a contract-net round on ``thread`` (see
        :meth:`Collab.contract_net <loom.collab.Collab.contract_net>`).

        Raises:
            CollabTimeout: nobody bid, or a winner delivered no result in time.
        """
        return await self.collab.contract_net(
            thread,
            payload,
            window_s=window_s,
            max_awards=max_awards,
            bidders=bidders,
            result_timeout_s=result_timeout_s,
            type=type,
            metadata=metadata,
        )

    async def propose(
        self,
        cfp: Event,
        score: float,
        payload: Payload = b"",
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> Event:
        """Bid on a call for proposals: a ``collab.proposal`` reply with ``score``.

        Raises:
            ValueError: ``score`` is not a finite number.
        """
        md = proposal_metadata(score, metadata)
        return await self.reply(cfp, COLLAB_PROPOSAL, payload, metadata=md)

    # -- actions ---------------------------------------------------------------------------

    async def invoke(
        self,
        capability: str,
        params: Payload | None = None,
        *,
        version: str = "",
        timeout_s: float | None = None,
        thread: Thread | None = None,
    ) -> ActionResult:
        """Invoke a capability through the runtime's broker; returns its result as is.

        The call carries this agent's envelope in its headers (the ``thread``'s, or a new
        one whose thread is the call id) and ``x-agent-id``.

        Args:
            capability: the capability's name.
            params: its input: a mapping (sent as JSON), bytes or str; None sends ``{}``.
            version: the version wanted; "" takes the broker's choice.
            timeout_s: the call's timeout; None takes the broker's default.
            thread: the conversation the call belongs to.

        Raises:
            AgentError: the runtime has no broker.
            ValueError: ``timeout_s`` is not a positive number.
        """
        broker = self._broker
        if broker is None:
            raise AgentError(
                f"agent {self.agent_id!r} cannot invoke {capability!r}: the runtime has no "
                "action broker (create it with AgentRuntime(bus, broker=...))"
            )
        payload = b"{}" if params is None else encode_payload(params)[0]
        timeout_ms = 0
        if timeout_s is not None:
            timeout_ms = max(1, round(positive_seconds("timeout_s", timeout_s) * 1000))
        call = ActionCall(capability, payload, version=version, timeout_ms=timeout_ms)
        reply_to = agent_replies_topic(self.agent_id)
        if thread is None:
            envelope = Envelope.with_agent_reply(call.id, self.sender, self.agent_id)
        else:
            envelope = thread.envelope_for(call.id, self.sender, reply_to)
        envelope.apply_to_call(call)
        call.headers["x-agent-id"] = self.agent_id
        return await broker.invoke(call)

    async def tool(
        self,
        capability: str,
        params: Payload | None = None,
        *,
        version: str = "",
        timeout_s: float | None = None,
        thread: Thread | None = None,
    ) -> Any:
        """Invoke a capability (as :meth:`invoke`) and return its output, decoded.

        Returns:
            The output parsed as JSON; the raw bytes when it is not JSON; None when empty.

        Raises:
            ActionFailedError: the result is not ACTION_OK (its code and message say why).
            AgentError: the runtime has no broker.
        """
        result = await self.invoke(
            capability, params, version=version, timeout_s=timeout_s, thread=thread
        )
        if result.status != ActionStatus.OK:
            raise ActionFailedError(capability, result)
        output = result.output
        if not output:
            return None
        try:
            return json.loads(output)
        except ValueError:
            return output
