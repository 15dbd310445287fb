"""NatsBus, subscribing: Realtime taps on core NATS, JetStream consumers, unsubscribing."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterable
from datetime import datetime

from loom import QoS
from loom.bus import (
    Backpressure,
    BusClosedError,
    DeliveryQueue,
    Handler,
    Subscription,
    check_handler,
    run_handler,
)
from loom.topics import TopicPattern
from loom_nats._bus_state import _TAP_PENDING, BusState
from loom_nats._config import (
    check_name,
    durable_name,
)
from loom_nats._consumer import PullConsumer, StartAt
from loom_nats._errors import NatsUnavailableError, StreamConfigError
from loom_nats._realtime import RealtimeTap
from loom_nats._replay import check_start

__all__ = ["Subscribing"]


class Subscribing(BusState):
    """The subscribing part of :class:`~loom_nats.NatsBus`."""

    async def subscribe(
        self,
        pattern: str,
        *,
        event_types: Iterable[str] = (),
        qos: QoS = QoS.REALTIME,
        backpressure: Backpressure | None = None,
        queue: DeliveryQueue | None = None,
        handler: Handler | None = None,
        durable: str | None = None,
        replay_from_seq: int | None = None,
        replay_from_time: datetime | float | None = None,
    ) -> Subscription:
        """Subscribe to the topics ``pattern`` matches; see :meth:`EventBus.subscribe`.

        Realtime subscriptions listen on core NATS; Batched and Background ones read the
        stream through a JetStream consumer of their own.

        Args:
            pattern: a topic or a pattern with ``*`` / ``>`` wildcards.
            event_types: take only these event types (filtered on arrival).
            qos: REALTIME, BATCHED or BACKGROUND.
            backpressure: policy and queue size overrides, applied on arrival.
            queue: a shared queue to deliver into (an agent's mailbox).
            handler: call this per event on a task the bus runs.
            durable: the JetStream durable consumer name (Batched and Background): events
                published while no subscriber holds it wait in the stream for the next
                one. Without it, a named bus derives one from its name and the
                subscription; an unnamed bus uses a consumer that ends with the
                subscription.
            replay_from_seq: start at this stream sequence (history first, then live).
            replay_from_time: start at the first event stored at or after this time (an
                aware datetime, or seconds since the epoch).

        Raises:
            InvalidTopicError: the pattern is invalid.
            ValueError: the backpressure settings do not fit the QoS; ``queue`` with
                ``queue_size`` or with ``handler``; ``durable`` or a replay on a Realtime
                subscription; a durable name this bus already uses.
            BusClosedError: the bus is shut down.
            StreamConfigError: the server refused the consumer.
            NatsError: the bus is not started.
        """
        if self._closed:
            raise BusClosedError("the bus is shut down; it takes no new subscriptions")
        compiled = TopicPattern.compile(pattern)
        subject = self._subject(pattern)
        qos = QoS(qos)
        check_handler(handler, queue)
        replaying = replay_from_seq is not None or replay_from_time is not None
        start_time = check_start(replay_from_seq, replay_from_time) if replaying else None
        if qos is QoS.REALTIME and (durable is not None or replaying):
            raise ValueError(
                "durable and replay_from_* need QoS.BATCHED or QoS.BACKGROUND (JetStream); "
                "Realtime subscriptions listen on core NATS and keep no history"
            )
        if durable is not None:
            check_name("durable", durable)
        self._require_started()
        seq = next(self._ids)
        sub = Subscription(
            f"sub_{pattern}_{seq:x}",
            pattern,
            qos=qos,
            event_types=event_types,
            backpressure=backpressure,
            queue=queue,
            on_drop=self._telemetry.count_drop,
            on_close=self._close_subscription,
            seq=seq,
        )
        if qos is QoS.REALTIME:
            await self._attach_realtime(sub, subject)
        else:
            consumer_name = durable or self._auto_durable(sub)
            is_durable = consumer_name is not None
            if consumer_name is None:
                consumer_name = f"loom-{sub.id.rsplit('_', 1)[-1]}-{id(sub):x}"
            elif any(c.name == consumer_name for c in self._consumers.values()):
                raise ValueError(
                    f"durable {consumer_name!r} is in use by another subscription of this bus "
                    "(two holders would share its events, not each get all of them)"
                )
            assert self._js is not None
            consumer = PullConsumer(
                self.link,
                self._telemetry,
                self._js,
                sub,
                stream=self.stream,
                subject=subject,
                strip=self._strip,
                name=consumer_name,
                durable=is_durable,
                start=StartAt(seq=replay_from_seq, time=start_time),
                settings=self._consumer_settings,
            )
            await self._start_consumer(consumer, rewind=replaying and is_durable)
            if self._shut_down():
                await consumer.close(delete=True)
                raise BusClosedError("the bus was shut down while subscribing")
            self._consumers[sub.id] = consumer
        self._subs[sub.id] = sub
        if not compiled.has_wildcards:
            self._telemetry.counters_for(pattern)
        self._routes.clear()
        if handler is not None:
            task = asyncio.create_task(run_handler(sub, handler), name=f"loom.nats {sub.id}")
            sub.task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return sub

    async def _start_consumer(self, consumer: PullConsumer, *, rewind: bool) -> None:
        """Start a consumer, waiting out an outage like a publish does.

        Raises:
            NatsUnavailableError: the connection stayed down past ``outage_timeout``, or
                JetStream did not answer.
            StreamConfigError: the server refused the consumer.
        """
        from nats.errors import Error as NatsClientError
        from nats.js.errors import APIError

        doing = f"subscribe to {consumer.subject!r}"
        await self.link.wait_up(self._outage_timeout, doing)
        try:
            await consumer.start(rewind=rewind)
        except APIError as exc:  # refusals of the create are StreamConfigError already
            await consumer.close(delete=True)
            raise StreamConfigError(
                f"{doing}: JetStream refused: {exc.description} (err_code {exc.err_code})"
            ) from None
        except (NatsClientError, TimeoutError) as exc:
            await consumer.close(delete=True)
            raise NatsUnavailableError(f"{doing}: JetStream did not answer ({exc!r})") from None

    async def _attach_realtime(self, sub: Subscription, subject: str) -> None:
        tap = self._taps.get(subject)
        if tap is None:
            tap = RealtimeTap(self._telemetry, subject, self._strip)
            assert self._nc is not None
            tap.nats_sub = await self._nc.subscribe(
                subject,
                cb=tap.on_message,
                pending_msgs_limit=_TAP_PENDING,
                pending_bytes_limit=64 << 20,
            )
            # Once the server has the interest, a publish from any connection reaches it.
            with contextlib.suppress(Exception):  # disconnected: the client re-subscribes
                await self._round_trip(self._ack_timeout)
            if self._shut_down():
                await tap.nats_sub.unsubscribe()
                raise BusClosedError("the bus was shut down while subscribing")
            self._taps[subject] = tap
        tap.subs.append(sub)
        self._tap_of[sub.id] = tap

    def _auto_durable(self, sub: Subscription) -> str | None:
        """The durable name a named bus gives a subscription: the lowest free ``nth``."""
        if self.name is None:
            return None
        taken = {c.name for c in self._consumers.values()}
        for nth in itertools.count(1):
            candidate = durable_name(self.name, sub.pattern, sub.qos, sub.event_types, nth)
            if candidate not in taken:
                return candidate
        raise AssertionError("unreachable")  # pragma: no cover

    async def unsubscribe(self, subscription_id: str) -> bool:
        """End a subscription; see :meth:`EventBus.unsubscribe`.

        Events already on their way to it (this bus's earlier publishes included) still
        reach its queue, for at most ``drain_timeout`` seconds; then nothing more does. A
        durable consumer stays on the server (see :meth:`delete_durable`).
        """
        sub = self._subs.pop(subscription_id, None)
        if sub is None:
            return False
        self._routes.clear()
        tap = self._tap_of.pop(subscription_id, None)
        consumer = self._consumers.get(subscription_id)
        try:
            await self._drain(tap, consumer)
        finally:
            if tap is not None:
                tap.subs.remove(sub)
                if not tap.subs:
                    self._taps.pop(tap.subject, None)
                    if tap.nats_sub is not None:
                        with contextlib.suppress(Exception):  # a closed connection
                            await tap.nats_sub.unsubscribe()
            if consumer is not None:
                self._consumers.pop(subscription_id, None)
                await consumer.close(delete=True)
            sub._close()  # no public way for a backend to end a Subscription (see docs/nats.md)
        return True

    async def _drain(self, tap: RealtimeTap | None, consumer: PullConsumer | None) -> None:
        if not self.link.up.is_set() or self._nc is None:
            return
        with contextlib.suppress(Exception, TimeoutError):  # draining is best effort
            async with asyncio.timeout(self._drain_timeout):
                if self._coalescer is not None:
                    await self._coalescer.flush()
                await self._round_trip(self._drain_timeout)
                while not (
                    (tap is None or tap.pending() == 0)
                    and (consumer is None or await consumer.caught_up())
                ):
                    await asyncio.sleep(0.001)

    async def _close_subscription(self, sub: Subscription) -> None:
        if not await self.unsubscribe(sub.id):
            sub._close()

    def subscriptions(self) -> list[Subscription]:
        """The live subscriptions, oldest first."""
        return list(self._subs.values())

    async def delete_durable(self, durable: str) -> bool:
        """Delete a durable consumer from the server (its position is forgotten).

        Returns:
            Whether it existed.

        Raises:
            ValueError: a live subscription of this bus holds it.
        """
        from nats.js.errors import NotFoundError

        self._require_started()
        check_name("durable", durable)
        if any(c.name == durable for c in self._consumers.values()):
            raise ValueError(f"durable {durable!r} is held by a live subscription: close it first")
        assert self._js is not None
        try:
            return bool(await self._js.delete_consumer(self.stream, durable))
        except NotFoundError:
            return False
