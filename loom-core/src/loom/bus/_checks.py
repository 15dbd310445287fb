"""What every bus backend refuses, said the same way by each."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from loom._event import Event
from loom.errors import InvalidEventError

if TYPE_CHECKING:
    from loom.bus._base import Handler
    from loom.bus._queue import DeliveryQueue

__all__ = ["check_handler", "refuse_event"]


def check_handler(handler: Handler | None, queue: DeliveryQueue | None) -> None:
    """Check a subscribe call's ``handler`` and ``queue`` arguments.

    Raises:
        TypeError: ``handler`` is not callable.
        ValueError: both are given (a handler drains its own queue).
    """
    if handler is None:
        return
    if not callable(handler):
        raise TypeError(f"handler must be callable, not {handler!r}")
    if queue is not None:
        raise ValueError(
            "give a handler or a shared queue, not both: a handler drains its own queue"
        )


def refuse_event(event: object) -> NoReturn:
    """Raise the error for an object a bus's publish fast path did not accept.

    A backend checks on its hot path, inline, that ``event`` is an :class:`~loom.Event`
    whose payload is bytes and whose priority is in 0..100, and calls this when a check
    fails: the message says which.

    Raises:
        InvalidEventError: always.
    """
    if not isinstance(event, Event):
        raise InvalidEventError(
            f"publish takes a loom.Event, not {type(event).__name__}: "
            "wrap the data, e.g. Event('my.type', payload_bytes)"
        )
    if event.payload.__class__ is not bytes:
        raise InvalidEventError(
            f"event {event.id!r}: payload must be bytes, not {type(event.payload).__name__}"
        )
    raise InvalidEventError(
        f"event {event.id!r}: priority must be an int in 0..100, got {event.priority!r}"
    )
