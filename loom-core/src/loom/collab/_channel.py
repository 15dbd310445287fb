"""Reply channels: where a party's replies arrive."""

from __future__ import annotations

from typing import Protocol

from loom.bus import EventBus
from loom.collab._router import Ledger, ReplyRouter
from loom.topics import thread_reply_topic

__all__ = ["ReplyChannel", "ThreadReplies"]


class ReplyChannel(Protocol):
    """Gives each primitive call a started :class:`ReplyRouter` to expect its replies on.

    :class:`ThreadReplies` subscribes to the thread's reply topic per call; an agent's
    channel hands out the router on its private topic ``agent.{id}.replies``.
    """

    async def open(self, thread_id: str, ledger: Ledger) -> ReplyRouter:
        """A started router for a call in ``thread_id``, reporting to ``ledger``."""
        ...

    async def release(self, router: ReplyRouter) -> None:
        """The call that opened ``router`` has ended."""
        ...


class ThreadReplies:
    """Replies on ``thread.{id}.reply``, through a subscription made for each call.

    The subscription is made before the call publishes and removed when it ends, so a
    reply that comes later reaches no one here (the bus counts it as published, not
    delivered); one that comes between the end and the removal is counted late.
    """

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def open(self, thread_id: str, ledger: Ledger) -> ReplyRouter:
        """Subscribe to ``thread.{thread_id}.reply`` for one call."""
        router = ReplyRouter(self.bus, thread_reply_topic(thread_id), ledger)
        await router.start()
        return router

    async def release(self, router: ReplyRouter) -> None:
        """Unsubscribe the call's router."""
        await router.close()
