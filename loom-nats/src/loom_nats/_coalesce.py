"""Coalescing of core publishes: events published to one subject within one loop
iteration travel as one NATS message.

The first event on a subject in an iteration goes out at once, alone (a lone request
waits for nothing). The ones that follow it on that subject in the same iteration are
held, as events, and sent together as a batch (a ``loom.v1.EventBatch`` of columns marked
by :data:`~loom_nats._codec.BATCH_HEADER`, see :mod:`loom_nats._codec`) when the batch
reaches its count, or right after the iteration (a callback scheduled with ``call_soon``,
never a timer: nothing waits longer than the loop takes to come round). A batch over the
byte budget is cut into several. One message per batch instead of one per event is what
makes high rates possible: the client's per-message costs (a ``Msg`` object, a queue hop
and a callback on each receiver) are paid once per batch, and protobuf encodes and decodes
a batch's columns in a few calls instead of several per event.

Order per subject holds: every send of a subject appends to the client's outgoing buffer
synchronously, in the order of the events, and a subject's held events are sent before
any later event on it. The one exception is said in docs/nats.md: when the connection is
down *and* the client's reconnect buffer is full, sends wait for the connection, and
those waiting in different tasks resume in no set order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from loom.errors import InvalidEventError
from loom_nats._codec import (
    BATCH_HEADER,
    check_event,
    encode_batch,
    encode_event,
    raise_too_large,
)

if TYPE_CHECKING:
    from loom import Event
    from loom_nats._publisher import Publisher

__all__ = ["Coalescer"]

log = logging.getLogger("loom.nats")


class Coalescer:
    """Per-subject batching of core publishes for one bus.

    An event sent at once is encoded then; one held for a batch is checked first
    (:func:`~loom_nats._codec.check_event`), so that either way a bad event raises in its
    publish. A held event that still fails to encode at the flush (a field of the wrong type
    that the check does not look at) is dropped alone, logged and counted in :attr:`lost`.

    Args:
        publisher: sends the messages (and waits out an outage).
        max_events: most events in one batch (at least 2).
        max_bytes: most bytes in one batch message; an event alone larger than this goes
            as a single message.
        max_payload: the server's ``max_payload``: no event may be larger encoded.
    """

    __slots__ = (
        "_budget",
        "_held",
        "_loop",
        "_max_events",
        "_max_payload",
        "_publisher",
        "_scheduled",
        "_task",
        "lost",
    )

    def __init__(
        self, publisher: Publisher, *, max_events: int, max_bytes: int, max_payload: int
    ) -> None:
        if max_events < 2:
            raise ValueError(f"max_events must be >= 2 to coalesce, got {max_events}")
        self._publisher = publisher
        self._max_events = max_events
        self._budget = max_bytes
        self._max_payload = max_payload
        self._loop = asyncio.get_running_loop()
        #: Subjects published to in this iteration, with the events they hold (None:
        #: nothing yet, the usual case of a lone publish, which then costs no list).
        self._held: dict[str, list[Event] | None] = {}
        self._scheduled = False
        self._task: asyncio.Task[None] | None = None
        #: Events given up: the background flush could not send them (the connection
        #: stayed down), or they could not be encoded.
        self.lost = 0

    @property
    def held(self) -> int:
        """Events held for a batch now."""
        return sum(len(h) for h in self._held.values() if h is not None)

    def hold(self, subject: str, event: Event) -> bool:
        """Hold one event for the subject's batch when that needs no send now (the common
        case within a burst): no coroutine per event.

        Returns:
            True when held; False when the caller must ``await send(subject, event)`` (the
            subject's first event in this iteration, or one that fills the batch).

        Raises:
            InvalidEventError: the event could not travel (see
                :func:`~loom_nats._codec.check_event`).
        """
        held = self._held.get(subject)
        if held is None or len(held) + 1 >= self._max_events:
            return False
        check_event(event, self._max_payload)
        held.append(event)
        return True

    async def send(self, subject: str, event: Event) -> None:
        """Send one event on ``subject``: at once when it is the subject's first in this
        iteration, else with the next batch.

        Raises:
            InvalidEventError: the event cannot be encoded, or is larger than
                ``max_payload`` encoded.
            NatsUnavailableError: the connection stayed down past ``outage_timeout``
                (only a send made now, not a held event, raises).
        """
        held_map = self._held
        if subject not in held_map:
            held_map[subject] = None
            if not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self._end_of_iteration)
            data = encode_event(event)
            if len(data) > self._max_payload:
                raise_too_large(event, len(data), self._max_payload)
            await self._publisher.send_core(subject, data)
            return
        check_event(event, self._max_payload)
        held = held_map[subject]
        if held is None:
            held_map[subject] = [event]
            return
        held.append(event)
        if len(held) >= self._max_events:
            held_map[subject] = []  # what comes while this batch is sent is held anew
            await self._send(subject, held)

    async def _send(self, subject: str, events: list[Event]) -> None:
        """Send held events in order: as batches within the budget, one alone as itself.
        What a failed send leaves unsent is counted in :attr:`lost`."""
        send_core = self._publisher.send_core
        while events:
            try:
                body, count = encode_batch(events, self._budget)
            except InvalidEventError:
                events = self._encodable(events)
                continue
            try:
                if count == 1:  # alone, or alone over the budget: as itself
                    await send_core(subject, body)
                else:
                    await send_core(subject, body, {BATCH_HEADER: str(count)})
            except BaseException:
                self.lost += len(events)
                raise
            events = events[count:]

    def _encodable(self, events: list[Event]) -> list[Event]:
        """The events that encode on their own; the others are logged and counted."""
        kept = []
        for event in events:
            try:
                encode_event(event)
            except InvalidEventError as exc:
                self.lost += 1
                log.error("a core publish held for a batch was dropped: %s", exc)
            else:
                kept.append(event)
        return kept

    def _end_of_iteration(self) -> None:
        """Forget which subjects were published to; flush what they hold."""
        self._scheduled = False
        held = self._held
        for subject in [s for s, h in held.items() if not h]:
            del held[subject]
        if held and self._task is None:
            self._task = self._loop.create_task(self._flush_held(), name="loom.nats coalesce")

    async def _flush_held(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # noqa: BLE001 - nobody awaits this task: log and count
            dropped = self.held
            self.lost += dropped
            self._held.clear()
            log.error(
                "core publishes held for a batch could not be sent (%d more given up): %s",
                dropped,
                exc,
            )
        finally:
            self._task = None

    async def flush(self) -> None:
        """Send every held event now, in order per subject.

        Raises:
            NatsUnavailableError: the connection stayed down past ``outage_timeout``; the
                events not sent are counted in :attr:`lost`.
        """
        held = self._held
        while held:
            subject = next(iter(held))
            events = held.pop(subject)
            if not events:
                continue
            await self._send(subject, events)

    async def close(self) -> None:
        """Send what is held (best effort: a closed connection loses it, counted)."""
        task = self._task
        if task is not None:
            await asyncio.wait({task})
        try:
            await self.flush()
        except Exception as exc:  # noqa: BLE001 - shutting down: log, count, go on
            log.error("core publishes held for a batch were lost at shutdown: %s", exc)
