"""The Envelope: collaboration context carried in ``Event.metadata`` and ``ActionCall.headers``.

Behaviour follows upstream Loom (shared/UPSTREAM.md §1, AC1.1-1.7): writers emit the bare keys,
readers also accept the ``loom.``-prefixed keys that some upstream SDK versions write.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loom.topics import agent_replies_topic, thread_broadcast_topic, thread_reply_topic

if TYPE_CHECKING:
    from loom._action import ActionCall
    from loom._event import Event

__all__ = ["DEFAULT_TTL", "ENVELOPE_KEYS", "Envelope"]

#: Hops an envelope may take before the runtime drops its event.
DEFAULT_TTL = 16

#: The metadata keys an envelope occupies (bare form; the ``loom.`` form is read too).
ENVELOPE_KEYS = ("thread_id", "correlation_id", "sender", "reply_to", "ttl", "hop", "ts")

_AGENT_PREFIX = "agent."


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _get(metadata: Mapping[str, str], key: str) -> str | None:
    value = metadata.get(key)
    return value if value is not None else metadata.get("loom." + key)


def _int_or(value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return default


@dataclass(slots=True)
class Envelope:
    """Thread, correlation and routing context of a message.

    Attributes:
        thread_id: the conversation this message belongs to.
        correlation_id: ties a reply to its request.
        sender: who sent it (``agent.{id}`` for agents).
        reply_to: the topic replies go to.
        ttl: hops left; the runtime drops a message whose ttl is exhausted.
        hop: hops taken so far.
        ts: creation time, ms since the epoch.
    """

    thread_id: str
    correlation_id: str
    sender: str = ""
    reply_to: str = ""
    ttl: int = DEFAULT_TTL
    hop: int = 0
    ts: int = 0

    @classmethod
    def new(cls, thread_id: str, sender: str = "") -> Envelope:
        """A fresh envelope: correlation = thread, ttl 16, hop 0, replies to the thread."""
        return cls(
            thread_id=thread_id,
            correlation_id=thread_id,
            sender=sender,
            reply_to=thread_reply_topic(thread_id),
            ttl=DEFAULT_TTL,
            hop=0,
            ts=_now_ms(),
        )

    @classmethod
    def with_agent_reply(cls, thread_id: str, sender: str, agent_id: str) -> Envelope:
        """A fresh envelope whose replies go to ``agent.{agent_id}.replies``."""
        envelope = cls.new(thread_id, sender)
        envelope.reply_to = agent_replies_topic(agent_id)
        return envelope

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], fallback_id: str) -> Envelope:
        """Read an envelope, filling what is missing (AC1.2).

        A missing thread id becomes ``fallback_id``; a missing correlation becomes the thread
        id; a missing or unparsable ttl becomes 16 and hop 0; a missing ts becomes now.
        """
        thread_id = _get(metadata, "thread_id") or fallback_id
        ts = _int_or(_get(metadata, "ts"), 0)
        return cls(
            thread_id=thread_id,
            correlation_id=_get(metadata, "correlation_id") or thread_id,
            sender=_get(metadata, "sender") or "",
            reply_to=_get(metadata, "reply_to") or thread_reply_topic(thread_id),
            ttl=_int_or(_get(metadata, "ttl"), DEFAULT_TTL),
            hop=_int_or(_get(metadata, "hop"), 0),
            ts=ts if ts > 0 else _now_ms(),
        )

    @classmethod
    def from_event(cls, event: Event) -> Envelope:
        """The envelope an event carries, with the event id as fallback thread id."""
        return cls.from_metadata(event.metadata, event.id)

    def to_metadata(self) -> dict[str, str]:
        """The seven bare keys and their values."""
        return {
            "thread_id": self.thread_id,
            "correlation_id": self.correlation_id,
            "sender": self.sender,
            "reply_to": self.reply_to,
            "ttl": str(self.ttl),
            "hop": str(self.hop),
            "ts": str(self.ts),
        }

    def attach(self, metadata: MutableMapping[str, str]) -> None:
        """Write all seven keys into ``metadata``, overwriting any present (AC1.3)."""
        metadata.update(self.to_metadata())

    def apply_to_event(self, event: Event) -> Event:
        """A copy of ``event`` carrying this envelope."""
        return event.with_metadata(self.to_metadata())

    def apply_to_call(self, call: ActionCall) -> None:
        """Write this envelope into ``call.headers`` and set ``call.correlation_id``."""
        self.attach(call.headers)
        call.correlation_id = self.correlation_id

    def next_hop(self) -> bool:
        """Take a hop: hop += 1, ttl -= 1 while positive; whether the message may go on (AC1.4)."""
        self.hop += 1
        if self.ttl > 0:
            self.ttl -= 1
        return self.ttl > 0

    @property
    def broadcast_topic(self) -> str:
        """``thread.{thread_id}.broadcast``."""
        return thread_broadcast_topic(self.thread_id)

    @property
    def reply_topic(self) -> str:
        """``thread.{thread_id}.reply``."""
        return thread_reply_topic(self.thread_id)

    def agent_reply_topic(self) -> str:
        """The sender's private topic ``agent.{id}.replies``; "" when sender is no agent (AC1.5)."""
        if not self.sender.startswith(_AGENT_PREFIX):
            return ""
        return agent_replies_topic(self.sender[len(_AGENT_PREFIX) :])
