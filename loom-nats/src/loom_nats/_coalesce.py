"""Coalescing of core publishes: events published to one subject within one loop
iteration travel as one NATS message.

The first event on a subject in an iteration goes out at once, alone (a lone request
waits for nothing). The ones that follow it on that subject in the same iteration are
held and sent together, as a batch (a delimited stream marked by
:data:`~loom_nats._codec.BATCH_HEADER`, see :mod:`loom_nats._codec`), when the batch
reaches its count or byte cap, or right after the iteration (a callback scheduled with
``call_soon``, never a timer: nothing waits longer than the loop takes to come round).
One message per batch instead of one per event is what makes high rates possible: the
client's per-message costs (a ``Msg`` object, a queue hop and a callback on each
receiver) are paid once per batch.

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

from loom_nats._codec import BATCH_HEADER, varint

if TYPE_CHECKING:
    from loom_nats._publisher import Publisher

__all__ = ["Coalescer"]

log = logging.getLogger("loom.nats")


class _Held:
    """A subject's events held for the next batch: the delimited stream so far, how many
    events it holds, and the last one alone (sent plain when it is the only one)."""

    __slots__ = ("body", "count", "last")

    def __init__(self) -> None:
        self.body = bytearray()
        self.count = 0
        self.last = b""

    def add(self, data: bytes) -> None:
        body = self.body
        size = len(data)
        if size < 0x80:  # the common lengths inline; see loom_nats._codec.encode_batch
            body.append(size)
        elif size < 0x4000:
            body.append(size & 0x7F | 0x80)
            body.append(size >> 7)
        else:
            body += varint(size)
        body += data
        self.count += 1
        self.last = data

    def take(self) -> tuple[bytes, int]:
        """The held body (the plain event when only one is held) and its count; empties
        the holder."""
        count = self.count
        body = self.last if count == 1 else bytes(self.body)
        self.body = bytearray()
        self.count = 0
        self.last = b""
        return body, count


class Coalescer:
    """Per-subject batching of core publishes for one bus.

    Args:
        publisher: sends the messages (and waits out an outage).
        max_events: most events in one batch (at least 2).
        max_bytes: most bytes of encoded events in one batch; an event alone larger than
            this goes as a single message.
    """

    __slots__ = (
        "_held",
        "_loop",
        "_max_bytes",
        "_max_events",
        "_publisher",
        "_scheduled",
        "_task",
        "lost",
    )

    def __init__(self, publisher: Publisher, *, max_events: int, max_bytes: int) -> None:
        if max_events < 2:
            raise ValueError(f"max_events must be >= 2 to coalesce, got {max_events}")
        self._publisher = publisher
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._loop = asyncio.get_running_loop()
        #: Subjects published to in this iteration, with what they hold (None: nothing
        #: yet, the usual case of a lone publish, which then costs no holder).
        self._held: dict[str, _Held | None] = {}
        self._scheduled = False
        self._task: asyncio.Task[None] | None = None
        #: Events the background flush could not send (the connection stayed down).
        self.lost = 0

    @property
    def held(self) -> int:
        """Events held for a batch now."""
        return sum(h.count for h in self._held.values() if h is not None)

    def hold(self, subject: str, data: bytes) -> bool:
        """Hold one encoded event for the subject's batch when that needs no send now
        (the common case within a burst): no coroutine per event.

        Returns:
            True when held; False when the caller must ``await send(subject, data)`` (the
            subject's first event in this iteration, or one that fills the batch).
        """
        held = self._held.get(subject)
        if held is None or held.count + 1 >= self._max_events:
            return False
        if len(held.body) + len(data) >= self._max_bytes:
            return False
        held.add(data)
        return True

    async def send(self, subject: str, data: bytes) -> None:
        """Send one encoded event on ``subject``: at once when it is the subject's first
        in this iteration, else with the next batch.

        Raises:
            NatsUnavailableError: the connection stayed down past ``outage_timeout``
                (only a send made now, not a held event, raises).
        """
        held_map = self._held
        if subject not in held_map:
            held_map[subject] = None
            if not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self._end_of_iteration)
            await self._publisher.send_core(subject, data)
            return
        held = held_map[subject]
        if held is None:
            held = held_map[subject] = _Held()
        max_bytes = self._max_bytes
        if held.count and len(held.body) + len(data) > max_bytes:
            await self._send(subject, *held.take())
            if self._held.get(subject) is not held:  # flushed while that send waited
                held = self._open(subject)
        held.add(data)
        if held.count >= self._max_events or len(held.body) >= max_bytes:
            await self._send(subject, *held.take())

    def _open(self, subject: str) -> _Held:
        """Hold events of ``subject`` from now on, flushed after this iteration."""
        held = self._held[subject] = _Held()
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._end_of_iteration)
        return held

    async def _send(self, subject: str, body: bytes, count: int) -> None:
        if count == 1:
            await self._publisher.send_core(subject, body)
        else:
            await self._publisher.send_core(subject, body, {BATCH_HEADER: str(count)})

    def _end_of_iteration(self) -> None:
        """Forget which subjects were published to; flush what they hold."""
        self._scheduled = False
        held = self._held
        for subject in [s for s, h in held.items() if h is None or not h.count]:
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
            entry = held.pop(subject)
            if entry is None or not entry.count:
                continue
            body, count = entry.take()
            try:
                await self._send(subject, body, count)
            except BaseException:
                self.lost += count
                raise

    async def close(self) -> None:
        """Send what is held (best effort: a closed connection loses it, counted)."""
        task = self._task
        if task is not None:
            await asyncio.wait({task})
        try:
            await self.flush()
        except Exception as exc:  # noqa: BLE001 - shutting down: log, count, go on
            log.error("core publishes held for a batch were lost at shutdown: %s", exc)
