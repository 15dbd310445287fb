"""NatsBus, the connection: the stream made on start and after a reconnect, outages told to
subscribers, and what Realtime subscriptions missed during one counted."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from loom import Event, QoS
from loom.bus import DropReason
from loom_nats._bus_state import CONNECTION_TOPIC, BusState, _matches
from loom_nats._errors import NatsError
from loom_nats._outage import count_missed
from loom_nats._stream import ensure_stream

if TYPE_CHECKING:
    from nats.js.api import StreamInfo

__all__ = ["ConnectionEvents"]

log = logging.getLogger("loom.nats")


class ConnectionEvents(BusState):
    """The connection part of :class:`~loom_nats.NatsBus`."""

    async def _ensure_stream(self) -> StreamInfo:
        assert self._js is not None
        return await ensure_stream(
            self._js,
            self.stream,
            [f"{self.prefix}.>"],
            self.limits,
            create=self._create_stream,
        )

    def _client_error(self, exc: Exception) -> None:
        self._telemetry.client_error(exc)

    async def _announce(self, type: str, **metadata: str) -> None:
        """Tell this bus's subscriptions to :data:`CONNECTION_TOPIC` about the connection
        (locally: while disconnected nothing goes through the server). Never waits: a full
        queue that would block misses the news (counted as dropped)."""
        event = Event(
            type, source="loom.nats", metadata={"server": self.link.server or "", **metadata}
        )
        counters = self._telemetry.counters_for(CONNECTION_TOPIC)
        for sub in list(self._subs.values()):
            if not _matches(sub, CONNECTION_TOPIC):
                continue
            if sub.qos is not QoS.REALTIME and sub.qsize() >= sub.queue.maxsize:
                sub.dropped += 1
                counters.drop(DropReason.QUEUE_FULL, False)
            elif await sub.deliver(CONNECTION_TOPIC, event):
                counters.delivered += 1

    async def _on_disconnect(self) -> None:
        if not self._closed:
            for tap in self._taps.values():  # remember what still arrives, to count the rest
                if tap.witnessed is None:
                    tap.witnessed = set()
            await self._announce("bus.disconnected")

    async def _on_reconnect(self) -> None:
        if self._closed:
            return
        await self._announce("bus.reconnected", outage_s=f"{self.link.last_outage:.3f}")
        end_seq = 0
        try:
            # A server that lost the stream (memory storage) gets it back.
            end_seq = (await self._ensure_stream()).state.last_seq
        except NatsError as exc:
            log.error("after reconnecting, the stream %s cannot be made: %s", self.stream, exc)
        if self._taps:
            task = asyncio.create_task(
                self._count_missed(self.link.outage_began, end_seq, self.link.disconnects),
                name="loom.nats realtime loss",
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._publisher is not None and self._publisher.mode == "async":
            await self._publisher.resend()
        for consumer in list(self._consumers.values()):
            try:
                await consumer.rearm()
            except Exception as exc:  # noqa: BLE001 - one consumer's failure must not stop the others
                log.warning("re-arming JetStream consumer %s: %s", consumer.name, exc)

    async def _count_missed(self, since: float, end_seq: int, outage: int) -> None:
        """Count what each Realtime tap missed during the outage that began at ``since``
        (see :mod:`loom_nats._outage`), then tell this bus's subscribers."""
        assert self._js is not None
        events: dict[str, int] = {}
        deliveries: dict[str, int] = {}
        for tap in [t for t in self._taps.values() if t.witnessed is not None]:
            try:
                missed = await count_missed(
                    self._js,
                    stream=self.stream,
                    tap=tap,
                    since=since,
                    end_seq=end_seq,
                    strip=self._strip,
                )
            except Exception as exc:  # noqa: BLE001 - a count that fails must not stop the bus
                log.warning("counting what %r missed during the outage: %s", tap.subject, exc)
                continue
            finally:
                if self.link.disconnects == outage:  # not down again meanwhile
                    tap.witnessed = None
            for subject, n in missed.events.items():
                events[subject] = events.get(subject, 0) + n
            for topic, n in missed.deliveries.items():
                deliveries[topic] = deliveries.get(topic, 0) + n
        self._telemetry.count_missed(events, deliveries)
        self._telemetry.outages_counted += 1
        total = sum(events.values())
        if total:
            log.warning(
                "Realtime subscriptions missed %d events during the outage of %.2f s: %s",
                total,
                self.link.last_outage,
                ", ".join(f"{s[self._strip :]} {n}" for s, n in sorted(events.items())[:10]),
            )
        if not self._closed:
            await self._announce(
                "bus.realtime_missed",
                missed=str(total),
                deliveries=str(sum(deliveries.values())),
                outage_s=f"{self.link.last_outage:.3f}",
            )
