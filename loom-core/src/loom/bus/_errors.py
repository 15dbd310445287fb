"""Errors of the event bus."""

from __future__ import annotations

from loom.errors import LoomError

__all__ = ["BusClosedError", "SubscriptionClosed"]


class SubscriptionClosed(LoomError):
    """The subscription or delivery queue is closed and holds nothing more to read.

    Raised by ``get()`` and ``get_nowait()`` once a queue is closed (by ``unsubscribe``,
    ``Subscription.close`` or the bus's ``shutdown``) and every event accepted before the
    close has been read. Iterating a subscription ends instead of raising it.
    """


class BusClosedError(LoomError, RuntimeError):
    """The bus is shut down: it takes no new subscriptions."""
