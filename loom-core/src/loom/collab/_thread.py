"""Thread: the conversation an event belongs to, read from its envelope."""

from __future__ import annotations

import time
from dataclasses import dataclass

from loom._envelope import Envelope
from loom._event import Event, new_event_id
from loom.topics import thread_broadcast_topic, thread_reply_topic

__all__ = ["Thread"]


@dataclass(frozen=True, slots=True)
class Thread:
    """A conversation: its id, the envelope it was read from, and its topics.

    Get one with ``ctx.thread(event)`` (or :meth:`of`); pass it as ``thread=`` to a
    primitive to continue the conversation (same thread id, hop and ttl carried on), or as
    the first argument of ``ctx.reply`` to answer the event it was read from.

    Attributes:
        id: the thread id.
        envelope: the envelope it was read from (a copy: changing it changes nothing).
        event: the event it was read from; None for a thread started here.
    """

    id: str
    envelope: Envelope
    event: Event | None = None

    @classmethod
    def of(cls, event: Event) -> Thread:
        """The thread ``event`` belongs to (its own id when it carries no thread id)."""
        envelope = Envelope.from_event(event)
        return cls(envelope.thread_id, envelope, event)

    @classmethod
    def new(cls, sender: str = "", thread_id: str | None = None) -> Thread:
        """A new conversation started by ``sender`` (a fresh id unless one is given)."""
        tid = thread_id if thread_id is not None else new_event_id()
        return cls(tid, Envelope.new(tid, sender))

    @property
    def broadcast_topic(self) -> str:
        """``thread.{id}.broadcast``: where every member of the thread listens."""
        return thread_broadcast_topic(self.id)

    @property
    def reply_topic(self) -> str:
        """``thread.{id}.reply``: where replies to the thread's requests go by default."""
        return thread_reply_topic(self.id)

    @property
    def sender(self) -> str:
        """Who sent the event the thread was read from ("" when unknown)."""
        return self.envelope.sender

    @property
    def correlation_id(self) -> str:
        """The correlation id of the event the thread was read from."""
        return self.envelope.correlation_id

    @property
    def reply_to(self) -> str:
        """Where the event the thread was read from wants its replies."""
        return self.envelope.reply_to

    def envelope_for(self, correlation_id: str, sender: str, reply_to: str) -> Envelope:
        """An envelope for a new message in this thread: hop and ttl carry on."""
        envelope = self.envelope
        return Envelope(
            envelope.thread_id,
            correlation_id,
            sender,
            reply_to,
            envelope.ttl,
            envelope.hop,
            time.time_ns() // 1_000_000,
        )


def thread_of(value: Thread | str | None, sender: str) -> Thread:
    """A :class:`Thread` from a thread, a thread id, or None (a new thread)."""
    if isinstance(value, Thread):
        return value
    if value is None:
        return Thread.new(sender)
    if not isinstance(value, str) or not value:
        raise ValueError(f"thread must be a Thread or a non-empty thread id, got {value!r}")
    if "." in value or any(c.isspace() for c in value):
        raise ValueError(f"thread id {value!r} must hold no dots and no whitespace")
    return Thread.new(sender, value)
