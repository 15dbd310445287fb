"""The task behind a handler subscription: drain its queue, call the handler per event.

The same contract as the memory bus's handlers (``loom.bus`` keeps its runner private).
"""

from __future__ import annotations

import inspect
import logging

from loom.bus import Handler, Subscription

__all__ = ["run_handler"]

log = logging.getLogger("loom.nats")


async def run_handler(sub: Subscription, handler: Handler) -> None:
    """Call ``handler(topic, event)`` for each event of ``sub``, in order, until it closes.

    A handler that raises is logged (with the subscription id, topic and event id) and
    counted in ``sub.errors``; the loop goes on with the next event.
    """
    async for topic, event in sub:
        try:
            result = handler(topic, event)
            if result is not None and inspect.isawaitable(result):
                await result
        except Exception:  # a subscriber's failure must not stop its delivery
            sub.errors += 1
            log.exception(
                "handler of subscription %s failed on topic %r, event %s", sub.id, topic, event.id
            )
