"""What an agent's handler sees: its id, the bus, its state and memory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loom._envelope import Envelope
from loom._event import Event
from loom.topics import agent_replies_topic

if TYPE_CHECKING:
    from loom.agents._runtime import AgentRuntime
    from loom.bus import EventBus

__all__ = ["Context"]


class Context:
    """The agent's view of the world, passed to every handler.

    Attributes:
        agent_id: the agent's id.
        sender: ``agent.{agent_id}``, the sender written into envelopes.
        topic: the concrete topic of the event being handled ("" outside a handler).
        memory: ephemeral context, kept in memory and reset on a supervised restart.
        state: the agent's persistent state (a key-value view of the runtime's state store,
            namespaced by agent id), or None when the runtime has no store.
    """

    __slots__ = ("_bus", "_runtime", "agent_id", "memory", "sender", "state", "topic")

    def __init__(self, runtime: AgentRuntime, agent_id: str, state: Any) -> None:
        self._runtime = runtime
        self._bus: EventBus = runtime.bus
        self.agent_id = agent_id
        self.sender = f"agent.{agent_id}"
        self.topic = ""
        self.memory: dict[str, Any] = {}
        self.state = state

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

    async def reply(self, original: Event, type: str, payload: bytes = b"") -> Event:
        """Answer ``original``: to its ``reply_to`` (or its sender's private topic), same thread.

        The correlation id is kept (the original's id when it has none), so a requester can
        match the reply.
        """
        request = Envelope.from_event(original)
        topic = original.reply_to or request.agent_reply_topic()
        if not topic:
            raise ValueError(f"event {original.id!r} has no reply_to and no agent sender")
        envelope = Envelope(
            thread_id=request.thread_id,
            correlation_id=original.correlation_id or original.id,
            sender=self.sender,
            reply_to=agent_replies_topic(self.agent_id),
            ttl=request.ttl,
            hop=request.hop,
            ts=request.ts,
        )
        event = Event(type, payload, source=self.sender, metadata=envelope.to_metadata())
        await self._bus.publish(topic, event)
        return event

    async def subscribe(self, pattern: str) -> None:
        """Subscribe this agent to one more topic pattern, while it runs."""
        await self._runtime.subscribe(self.agent_id, pattern)

    async def unsubscribe(self, pattern: str) -> None:
        """Drop one of this agent's subscriptions (not its private topic)."""
        await self._runtime.unsubscribe(self.agent_id, pattern)
