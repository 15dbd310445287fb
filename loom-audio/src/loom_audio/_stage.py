"""Stage: the base of every audio bus participant (sources, VAD, STT, wake, TTS, sinks)."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from loom import Event, QoS
from loom.bus import Backpressure, EventBus, Subscription

__all__ = ["Stage"]

log = logging.getLogger("loom_audio")

_LOG_EVERY_S = 1.0

StageHandler = Callable[[str, Event], Awaitable[None] | None]


class Stage:
    """A participant of the audio pipeline on an event bus.

    A stage subscribes to its input topics when started and publishes to its output
    topics. Audio frames arrive on Realtime subscriptions: a stage that falls behind loses
    the oldest frames instead of slowing the stage before it (the microphone never waits).
    Every lost frame is counted (:attr:`dropped`, and in the bus's ``TopicStats``) and the
    stage says so in the log, at most once a second.

    Args:
        name: the stage's name in logs and events.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._bus: EventBus | None = None
        self._subscriptions: list[Subscription] = []
        self._seen_drops: dict[str, int] = {}
        self._unlogged_drops = 0
        self._last_drop_log = 0.0
        self._reported: dict[str, float] = {}
        self.bad_input = 0

    def __repr__(self) -> str:
        state = "running" if self._bus is not None else "stopped"
        return f"<{type(self).__name__} {self.name!r} {state}>"

    @property
    def bus(self) -> EventBus:
        """The bus the stage runs on.

        Raises:
            RuntimeError: the stage is not started.
        """
        if self._bus is None:
            raise RuntimeError(f"stage {self.name!r} is not started")
        return self._bus

    @property
    def running(self) -> bool:
        """Whether the stage is started."""
        return self._bus is not None

    @property
    def dropped(self) -> int:
        """Input events lost because the stage's queues were full (or closed)."""
        return sum(sub.dropped for sub in self._subscriptions)

    async def start(self, bus: EventBus) -> None:
        """Subscribe and start working on ``bus``. Idempotent."""
        if self._bus is not None:
            return
        self._bus = bus
        try:
            await self._on_start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Unsubscribe and stop. Idempotent."""
        if self._bus is None:
            return
        bus = self._bus
        try:
            await self._on_stop()
        finally:
            for sub in self._subscriptions:
                await bus.unsubscribe(sub.id)
            self._subscriptions.clear()
            self._bus = None

    def status(self) -> dict[str, Any]:
        """Counters for logs, tests and ``loom audio`` commands."""
        return {"name": self.name, "running": self.running, "dropped": self.dropped}

    # -- for subclasses ---------------------------------------------------------------------

    async def _on_start(self) -> None:
        """Subscribe and start tasks (called by :meth:`start`)."""

    async def _on_stop(self) -> None:
        """Stop tasks (called by :meth:`stop`, before the subscriptions close)."""

    async def _subscribe(
        self,
        pattern: str,
        handler: StageHandler,
        *,
        event_types: Iterable[str] = (),
        qos: QoS = QoS.REALTIME,
        queue_size: int | None = None,
    ) -> Subscription:
        """Subscribe ``handler`` to ``pattern``; lost frames are counted and logged."""
        is_async = inspect.iscoroutinefunction(handler)
        sub: Subscription | None = None

        async def handle(topic: str, event: Event) -> None:
            if sub is not None and sub.dropped != self._seen_drops.get(sub.id, 0):
                self._note_drops(sub)
            if is_async:
                await handler(topic, event)  # type: ignore[misc]  # checked coroutine function
            else:
                handler(topic, event)

        sub = await self.bus.subscribe(
            pattern,
            event_types=tuple(event_types),
            qos=qos,
            backpressure=Backpressure(queue_size=queue_size) if queue_size else None,
            handler=handle,
        )
        self._subscriptions.append(sub)
        return sub

    async def _publish(self, topic: str, event: Event) -> int:
        bus = self._bus
        if bus is None:
            return 0
        return await bus.publish(topic, event)

    def _note_drops(self, sub: Subscription) -> None:
        new = sub.dropped - self._seen_drops.get(sub.id, 0)
        self._seen_drops[sub.id] = sub.dropped
        self._unlogged_drops += new
        now = time.monotonic()
        if now - self._last_drop_log >= _LOG_EVERY_S:
            log.warning(
                "%s: dropped %d events from %r (queue of %d full: the stage is slower than "
                "real time); %d dropped in all",
                self.name,
                self._unlogged_drops,
                sub.pattern,
                sub.backpressure.queue_size or 0,
                self.dropped,
            )
            self._unlogged_drops = 0
            self._last_drop_log = now

    def _report_bad_input(self, key: str, message: str) -> None:
        """Log a problem with the input once per ``key`` and minute; count every one."""
        self.bad_input += 1
        now = time.monotonic()
        last = self._reported.get(key)
        if last is None or now - last >= 60.0:
            self._reported[key] = now
            log.error("%s: %s", self.name, message)
