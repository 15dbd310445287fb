"""Knowing when an app's agents are idle: handlers running, mailboxes, bus traffic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from loom._event import Event
from loom.agents import Agent, AgentRuntime, Context
from loom.bus import EventBus

__all__ = ["Activity"]

log = logging.getLogger("loom.app")

#: Polls of an idle app, this far apart, that must see nothing change.
_POLL_S = 0.02
_SETTLE_POLLS = 3


class Activity:
    """Counts the handlers of an app's agents that are running, to tell when all is quiet.

    Each tracked agent's ``on_event`` is wrapped on the instance (the class is left
    alone), so ``runtime.agent(id)`` is still the user's object.
    """

    def __init__(self) -> None:
        #: Handlers running now.
        self.busy = 0
        #: Handler calls that have ended (returned or raised).
        self.ended = 0
        self.untracked: list[str] = []

    def track(self, agent_id: str, agent: Agent) -> None:
        """Wrap ``agent.on_event`` so its calls are counted."""
        inner: Callable[[Context, Event], Any] = agent.on_event

        async def on_event(ctx: Context, event: Event) -> None:
            self.busy += 1
            try:
                await inner(ctx, event)
            finally:
                self.busy -= 1
                self.ended += 1

        try:
            object.__setattr__(agent, "on_event", on_event)
        except (AttributeError, TypeError):
            # A class with __slots__ and no __dict__: its handler runs untracked, and
            # only its mailbox tells when it is idle.
            self.untracked.append(agent_id)
            log.debug("agent %s: handler activity not tracked (no instance dict)", agent_id)

    def _state(self, runtime: AgentRuntime, bus: EventBus) -> tuple[int, int, int, int]:
        mailbox = 0
        for agent_id in runtime.agent_ids():
            mailbox += runtime.info(agent_id).mailbox
        published = sum(stats.published for stats in bus.all_stats().values())
        return self.busy, mailbox, self.ended, published

    async def until_idle(self, runtime: AgentRuntime, bus: EventBus) -> None:
        """Return once no handler runs, every mailbox is empty and nothing was published
        or handled over a few consecutive polls."""
        previous: tuple[int, int, int, int] | None = None
        quiet = 0
        while True:
            state = self._state(runtime, bus)
            busy, mailbox = state[0], state[1]
            if busy == 0 and mailbox == 0 and state == previous:
                quiet += 1
                if quiet >= _SETTLE_POLLS:
                    return
            else:
                quiet = 0
            previous = state
            await asyncio.sleep(_POLL_S)
