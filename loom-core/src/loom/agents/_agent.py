"""The two shapes of agent code: a class with typed handlers, or a plain async function."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from loom._event import Event
    from loom.agents._context import Context

__all__ = ["Agent", "EventHandler", "FunctionAgent", "handles"]

#: A function agent: ``async def handler(ctx, event) -> None`` (a plain function works too).
EventHandler = Callable[["Context", "Event"], Awaitable[None] | None]

F = TypeVar("F", bound=Callable[..., Any])

_HANDLES_ATTR = "__loom_handles__"


def handles(*event_types: str) -> Callable[[F], F]:
    """Mark an :class:`Agent` method as the handler of these event types.

    Example:
        .. code-block:: python

            class Thermostat(Agent):
                topics = ("sensor.*.temp",)

                @handles("sensor.reading")
                async def on_reading(self, ctx: Context, event: Event) -> None:
                    ...
    """
    if not event_types:
        raise ValueError("handles() needs at least one event type")

    def mark(method: F) -> F:
        setattr(method, _HANDLES_ATTR, event_types)
        return method

    return mark


class Agent:
    """Base class for agents written as classes.

    Declare default subscriptions in ``topics`` and mark methods with :func:`handles`; an
    event whose type no method handles goes to :meth:`on_other`. Override :meth:`on_event`
    instead to take every event yourself. Handlers run one at a time, in arrival order.

    Lifecycle: :meth:`on_start` runs when the agent starts, and again after a supervised
    restart (with fresh ephemeral memory); :meth:`on_stop` when it stops.
    """

    #: Topic patterns the agent subscribes to when created (besides its private topic).
    topics: ClassVar[Sequence[str]] = ()

    _dispatch: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dispatch: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                for event_type in getattr(member, _HANDLES_ATTR, ()):
                    dispatch[event_type] = name
        cls._dispatch = dispatch

    async def on_start(self, ctx: Context) -> None:
        """Called when the agent starts or restarts."""

    async def on_stop(self, ctx: Context) -> None:
        """Called when the agent stops."""

    async def on_event(self, ctx: Context, event: Event) -> None:
        """Handle one event: by default, call the method marked for its type."""
        name = self._dispatch.get(event.type)
        if name is None:
            await self.on_other(ctx, event)
            return
        result = getattr(self, name)(ctx, event)
        if inspect.isawaitable(result):
            await result

    async def on_other(self, ctx: Context, event: Event) -> None:
        """Called for an event whose type no handler is marked for; ignores it by default."""


class FunctionAgent(Agent):
    """An agent made of one function ``handler(ctx, event)``, sync or async."""

    def __init__(self, handler: EventHandler) -> None:
        if not callable(handler):
            raise TypeError(f"an agent handler must be callable, not {type(handler).__name__}")
        self.handler = handler
        self._is_async = inspect.iscoroutinefunction(handler)

    async def on_event(self, ctx: Context, event: Event) -> None:
        result = self.handler(ctx, event)
        if self._is_async or inspect.isawaitable(result):
            await result  # type: ignore[misc]  # checked awaitable above

    def __repr__(self) -> str:
        return f"FunctionAgent({getattr(self.handler, '__qualname__', self.handler)!r})"
