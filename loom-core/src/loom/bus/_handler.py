"""The task behind a handler subscription: drain its queue, call the handler per event.

Public as :func:`loom.bus.run_handler`, so that every bus backend runs handlers alike."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import cast

from loom._event import Event
from loom.bus._subscription import Subscription

__all__ = ["run_handler"]

log = logging.getLogger("loom.bus")


async def run_handler(
    sub: Subscription, handler: Callable[[str, Event], Awaitable[None] | None]
) -> None:
    """Call ``handler(topic, event)`` for each event of ``sub``, in order, until it closes.

    A handler that raises is logged (with the subscription id, topic and event id) and
    counted in ``sub.errors``; the loop goes on with the next event.
    """
    is_async = inspect.iscoroutinefunction(handler)
    async for topic, event in sub:
        try:
            if is_async:
                await cast("Awaitable[None]", handler(topic, event))
            else:
                result = handler(topic, event)
                if result is not None and inspect.isawaitable(result):
                    await result
        except Exception:  # a subscriber's failure must not stop its delivery
            sub.errors += 1
            log.exception(
                "handler of subscription %s failed on topic %r, event %s",
                sub.id,
                topic,
                event.id,
            )
