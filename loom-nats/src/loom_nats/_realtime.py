"""Realtime subscriptions on core NATS: one NATS subscription per pattern, shared by every
local Realtime subscription with that pattern (the event is decoded once for all of them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loom.bus import Subscription
from loom.errors import ProtocolError
from loom_nats._codec import decode_event

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription as NatsSubscription

    from loom_nats._stats import Telemetry

__all__ = ["RealtimeTap"]


class RealtimeTap:
    """A core NATS subscription on one subject pattern, feeding local subscriptions.

    Args:
        telemetry: the bus's counters.
        subject: the NATS subject pattern (prefix included).
        strip: length of the prefix and its dot, removed from subjects to get topics.
    """

    __slots__ = ("_strip", "_telemetry", "nats_sub", "subject", "subs")

    def __init__(self, telemetry: Telemetry, subject: str, strip: int) -> None:
        self._telemetry = telemetry
        self._strip = strip
        self.subject = subject
        self.subs: list[Subscription] = []
        self.nats_sub: NatsSubscription | None = None

    async def on_message(self, msg: Msg) -> None:
        """Decode one message and offer it to each local subscription (never waits:
        Realtime policies drop instead)."""
        try:
            event = decode_event(msg.data)
        except ProtocolError as exc:
            self._telemetry.undecodable(msg.subject, exc)
            return
        topic = msg.subject[self._strip :]
        counters = self._telemetry.counters_for(topic)
        for sub in self.subs:
            if await sub.deliver(topic, event):
                counters.delivered += 1

    def pending(self) -> int:
        """Messages the client received for this tap that are not handled yet."""
        sub = self.nats_sub
        return sub.pending_msgs if sub is not None else 0
