"""Batched and Background subscriptions: a JetStream pull consumer feeding one local
subscription, with a bounded window of requested-but-unhandled events.

The consumer asks the server for at most ``batch`` events at a time and asks for more
only as it hands them on, so a subscriber that stops reading stops the flow: the stream
holds the backlog, not this process. An event counts as handled once it is in the local
queue (or dropped there by the subscription's policy, or unreadable); the consumer uses
``AckPolicy.ALL``, so one acknowledgement covers every event handled before it, sent at
the end of each burst and at least every ``batch / 4`` events. An event that waits for
room keeps its acknowledgement timer alive with "in progress" signals, so it is not
redelivered meanwhile. An event whose acknowledgement was lost comes back, and is
recognised by its stream sequence and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loom.bus import Policy, Subscription
from loom_nats._codec import decode_message
from loom_nats._errors import StreamConfigError
from loom_nats._stream import create_consumer

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription as NatsSubscription
    from nats.js.client import JetStreamContext

    from loom_nats._link import Link
    from loom_nats._stats import Telemetry

__all__ = ["ConsumerSettings", "PullConsumer", "StartAt"]

log = logging.getLogger("loom.nats")

_ACK = b""  # an empty body acknowledges (+ACK)
_IN_PROGRESS = b"+WPI"
_TERMINATE = b"+TERM"
#: Stream sequences remembered per consumer to recognise redeliveries of handled events.
_RECENT = 4096


@dataclass(frozen=True, slots=True)
class StartAt:
    """Where a new consumer starts: after the newest event (the default), at a stream
    sequence, or at a time."""

    seq: int | None = None
    time: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    """Tuning shared by the bus's consumers.

    Attributes:
        batch: most events requested and not yet handled (the in-flight window).
        ack_wait: seconds the server waits for an acknowledgement before redelivering.
        heartbeat: seconds between the server's idle heartbeats on a pull request; three
            missed ones make the consumer ask again (a server restart loses requests).
        expires: seconds a pull request lives on the server.
        inactive_threshold: seconds after which the server deletes an ephemeral consumer
            nobody pulls from (a crashed process leaves nothing behind for long).
    """

    batch: int = 256
    ack_wait: float = 30.0
    heartbeat: float = 5.0
    expires: float = 30.0
    inactive_threshold: float = 120.0


def _ack_tokens(reply: str) -> tuple[int, int, int] | None:
    """(delivery count, stream sequence, consumer sequence) from a JetStream ack subject."""
    tokens = reply.split(".")
    n = len(tokens)
    if n == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
        base = 4
    elif n >= 11:  # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>...
        base = 6
    else:
        return None
    try:
        return int(tokens[base]), int(tokens[base + 1]), int(tokens[base + 2])
    except ValueError:
        return None


class PullConsumer:
    """One JetStream pull consumer feeding one local subscription.

    Args:
        link: the bus's connection.
        telemetry: the bus's counters.
        js: the JetStream context.
        sub: the local subscription to feed.
        stream: the stream name.
        subject: the filter subject (prefix included).
        strip: length of the prefix and its dot, removed from subjects to get topics.
        name: the consumer's name.
        durable: whether the consumer outlives this process (a durable name).
        start: where a new consumer starts.
        settings: the window, timers and limits.
    """

    def __init__(
        self,
        link: Link,
        telemetry: Telemetry,
        js: JetStreamContext,
        sub: Subscription,
        *,
        stream: str,
        subject: str,
        strip: int,
        name: str,
        durable: bool,
        start: StartAt,
        settings: ConsumerSettings,
    ) -> None:
        self._link = link
        self._telemetry = telemetry
        self._js = js
        self.sub = sub
        # Only a BLOCK overflow waits for room; the other policies decide at once.
        self._blocks = sub.backpressure.overflow(sub.qos) is Policy.BLOCK
        self.stream = stream
        self.subject = subject
        self._strip = strip
        self.name = name
        self.durable = durable
        self._start = start
        self._settings = settings
        self._batch = settings.batch
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"
        self._request_body = json.dumps(
            {
                "batch": 0,
                "expires": int(settings.expires * 1e9),
                "idle_heartbeat": int(settings.heartbeat * 1e9),
            }
        )
        self._inbox = ""
        self._nats_sub: NatsSubscription | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._outstanding = 0
        self._last_activity = time.monotonic()
        self._blocked = False
        self._closed = False
        self._last_cseq = 0
        self.last_sseq = 0
        self._recent: set[int] = set()
        self._recent_order: deque[int] = deque()
        self._ack_all = True
        self._ack_reply: str | None = None
        self._since_ack = 0
        self._ack_every = max(1, settings.batch // 4)

    @property
    def _nc(self) -> Client:
        return self._link.nc

    def _config(self, start: StartAt) -> Any:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, ReplayPolicy

        settings = self._settings
        if start.seq is not None:
            policy, seq, when = DeliverPolicy.BY_START_SEQUENCE, start.seq, None
        elif start.time is not None:
            policy, seq, when = DeliverPolicy.BY_START_TIME, None, start.time
        else:
            policy, seq, when = DeliverPolicy.NEW, None, None
        return ConsumerConfig(
            name=self.name,
            durable_name=self.name if self.durable else None,
            filter_subject=self.subject,
            ack_policy=AckPolicy.ALL,
            ack_wait=settings.ack_wait,
            max_ack_pending=settings.batch * 4,
            max_deliver=-1,
            deliver_policy=policy,
            opt_start_seq=seq,
            opt_start_time=when,
            replay_policy=ReplayPolicy.INSTANT,
            inactive_threshold=None if self.durable else settings.inactive_threshold,
        )

    async def start(self, *, rewind: bool) -> None:
        """Create the consumer (or bind to the durable of that name), then start pulling.

        Args:
            rewind: re-create an existing durable at this subscription's start point
                (a replay was asked for).

        Raises:
            StreamConfigError: the server refused the consumer, or a durable of that name
                exists with another filter.
        """
        from nats.js.api import AckPolicy
        from nats.js.errors import NotFoundError

        bound = False
        if self.durable and not rewind:
            try:
                info = await self._js.consumer_info(self.stream, self.name)
            except NotFoundError:
                pass
            else:
                if info.config.filter_subject != self.subject:
                    raise StreamConfigError(
                        f"durable consumer {self.name!r} exists on stream {self.stream!r} with "
                        f"filter {info.config.filter_subject!r}, not {self.subject!r}: choose "
                        "another durable name, or delete it (NatsBus.delete_durable)"
                    )
                if info.config.deliver_subject:
                    raise StreamConfigError(
                        f"consumer {self.name!r} on stream {self.stream!r} is a push consumer; "
                        "loom-nats needs a pull consumer: choose another durable name"
                    )
                bound = True
                # A durable made with explicit acknowledgements keeps them.
                self._ack_all = info.config.ack_policy == AckPolicy.ALL
        if not bound:
            await create_consumer(self._js, self.stream, self._config(self._start), replace=rewind)
        nc = self._nc
        self._inbox = nc.new_inbox()
        self._nats_sub = await nc.subscribe(
            self._inbox,
            cb=self._on_message,
            pending_msgs_limit=self._batch * 2 + 1024,
            pending_bytes_limit=0,  # bounded by the message count
        )
        await self._request()
        self._watchdog = asyncio.create_task(self._watch(), name=f"loom.nats watch {self.name}")

    # -- pulling -------------------------------------------------------------------------

    async def _request(self) -> None:
        """Ask for as many events as the window has room for, when it is half empty."""
        if self._closed or not self._link.up.is_set() or self._outstanding > self._batch // 2:
            return
        wanted = self._batch - self._outstanding
        self._outstanding = self._batch
        body = self._request_body.replace('"batch": 0', f'"batch": {wanted}', 1)
        await self._nc.publish(self._next_subject, body.encode(), reply=self._inbox)

    async def rearm(self) -> None:
        """After a reconnect: make sure the consumer still exists, then ask afresh (the
        server forgets pull requests of a lost connection)."""
        if self._closed:
            return
        self._outstanding = 0
        await self._ensure_exists()
        await self._request()

    async def _ensure_exists(self) -> None:
        from nats.errors import Error as NatsClientError
        from nats.js.errors import NotFoundError

        try:
            await self._js.consumer_info(self.stream, self.name)
        except NotFoundError:
            # The server lost it (memory storage, an inactivity timeout during a long
            # outage): re-create it right after the last event handled, losing nothing the
            # stream still holds.
            start = StartAt(seq=self.last_sseq + 1) if self.last_sseq else self._start
            await create_consumer(self._js, self.stream, self._config(start))
            self._telemetry.count_recreated()
            log.warning(
                "re-created JetStream consumer %s on %s (from %s)",
                self.name,
                self.subject,
                f"sequence {start.seq}" if start.seq else "its start point",
            )
        except (NatsClientError, TimeoutError) as exc:
            log.warning("checking JetStream consumer %s: %s", self.name, exc)

    async def _watch(self) -> None:
        """Ask again when the server has gone quiet for three heartbeats (lost requests)."""
        period = self._settings.heartbeat
        while not self._closed:
            await asyncio.sleep(period)
            if self._blocked or not self._link.up.is_set():
                continue
            if time.monotonic() - self._last_activity > 3 * period:
                self._last_activity = time.monotonic()
                try:
                    await self.rearm()
                except Exception as exc:  # noqa: BLE001 - the watchdog must outlive any failure
                    log.warning("re-arming JetStream consumer %s: %s", self.name, exc)

    # -- receiving -----------------------------------------------------------------------

    async def _on_message(self, msg: Msg) -> None:
        self._last_activity = time.monotonic()
        reply = msg.reply
        if not reply:
            await self._on_status(msg)
            return
        if self._outstanding > 0:
            self._outstanding -= 1
        tokens = _ack_tokens(reply)
        if tokens is None:
            return
        delivered, sseq, cseq = tokens
        if delivered > 1 and sseq in self._recent:
            self._telemetry.count_duplicate()
            await self._acknowledge(reply, sseq, cseq)
            return
        # One event, or a batch of core publishes (see loom_nats._coalesce).
        events, error = decode_message(msg.data, msg.headers)
        if error is not None:
            self._telemetry.undecodable(msg.subject, error)
            if not events:
                if not self._ack_all:
                    await self._nc.publish(reply, _TERMINATE)  # never redeliver it
                await self._acknowledge(reply, sseq, cseq, sent=not self._ack_all)
                return
        sub = self.sub
        topic = msg.subject[self._strip :]
        for event in events:
            if not sub.accepts(event):
                continue
            queue = sub.queue
            if not self._blocks or queue.qsize() < queue.maxsize:
                queued = await sub.deliver(topic, event)
            else:
                queued = await self._deliver_waiting(topic, event, reply)
            if queued:
                self._telemetry.counters_for(topic).delivered += 1
            elif sub.closed:
                # Not acknowledged: the durable's next reader gets the message (a batch
                # whole, so the events before this one twice).
                return
        await self._acknowledge(reply, sseq, cseq)

    async def _acknowledge(self, reply: str, sseq: int, cseq: int, *, sent: bool = False) -> None:
        """Record an event as handled and acknowledge it, then ask for more.

        With ``AckPolicy.ALL`` one acknowledgement covers every earlier event, so it goes
        out every ``batch / 4`` events and whenever the client holds nothing more to hand
        on (the end of a burst): one message instead of one per event.
        """
        self._handled(sseq, cseq)
        if not self._ack_all:
            if not sent:
                await self._nc.publish(reply, _ACK)
        else:
            self._ack_reply = reply
            self._since_ack += 1
            nats_sub = self._nats_sub
            if self._since_ack >= self._ack_every or nats_sub is None or not nats_sub.pending_msgs:
                await self._flush_ack()
        await self._request()

    async def _flush_ack(self) -> None:
        reply = self._ack_reply
        if reply is not None:
            self._ack_reply = None
            self._since_ack = 0
            await self._nc.publish(reply, _ACK)

    async def _deliver_waiting(self, topic: str, event: Any, reply: str) -> bool:
        """Deliver into a full queue: wait for room, telling the server we are at it."""
        await self._flush_ack()  # what came before is handled: no redelivery while we wait
        counters = self._telemetry.counters_for(topic)
        counters.backlog += 1
        self._blocked = True
        task = asyncio.ensure_future(self.sub.deliver(topic, event))
        try:
            every = self._settings.ack_wait / 3
            while True:
                done, _ = await asyncio.wait({task}, timeout=every)
                if done:
                    return task.result()
                await self._nc.publish(reply, _IN_PROGRESS)
        finally:
            counters.backlog -= 1
            self._blocked = False
            self._last_activity = time.monotonic()
            if not task.done():
                task.cancel()

    def _handled(self, sseq: int, cseq: int) -> None:
        self._last_cseq = cseq
        if sseq > self.last_sseq:
            self.last_sseq = sseq
        recent = self._recent
        recent.add(sseq)
        order = self._recent_order
        order.append(sseq)
        if len(order) > _RECENT:
            recent.discard(order.popleft())

    async def _on_status(self, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get("Status", "")
        if status == "100":  # idle heartbeat
            return
        if status == "408":  # the request expired: what it did not deliver is not coming
            try:
                pending = int(headers.get("Nats-Pending-Messages", "0"))
            except ValueError:
                pending = self._outstanding
            self._outstanding = max(0, self._outstanding - pending)
        else:  # 404 no messages, 409 consumer deleted / limits / leadership change
            description = next(
                (v for k, v in headers.items() if str(k).endswith("Description")), ""
            )
            self._outstanding = 0
            if status == "409" and "deleted" in description.lower():
                await self._ensure_exists()
            elif status not in ("404", "409"):
                log.warning("JetStream consumer %s: status %s %s", self.name, status, description)
        await self._request()

    # -- settling and closing --------------------------------------------------------------

    async def caught_up(self) -> bool:
        """Whether every event the stream holds for this consumer now has been handled
        (or waits for room in a full queue, which counts as handled for this purpose)."""
        if self._blocked or self._closed:
            return True
        info = await self._js.consumer_info(self.stream, self.name)
        return info.num_pending == 0 and self._last_cseq >= (info.delivered.consumer_seq or 0)

    async def close(self, *, delete: bool) -> None:
        """Stop pulling; delete the consumer when it is not durable (best effort)."""
        if self._closed:
            return
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        nats_sub = self._nats_sub
        if nats_sub is not None:
            with contextlib.suppress(Exception):  # the connection may be gone already
                if self._link.up.is_set():
                    await self._flush_ack()
                await nats_sub.unsubscribe()
        if delete and not self.durable and self._link.up.is_set():
            with contextlib.suppress(Exception):  # the server deletes it when idle anyway
                await self._js.delete_consumer(self.stream, self.name)
