"""NatsBus: the Loom event bus on NATS, Realtime on core NATS, Batched and Background on
JetStream.

The bus is built from parts, each in a module of its own: publishing
(:mod:`loom_nats._bus_publish`), subscribing (:mod:`loom_nats._bus_subscribe`) and the
connection's events (:mod:`loom_nats._bus_connection`), over the state they share
(:mod:`loom_nats._bus_state`). This module puts them together: options, start, shutdown,
settling, replay and statistics.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loom.bus import (
    BusClosedError,
    Subscription,
    TopicStats,
)
from loom.topics import TopicPattern
from loom_nats._bus_connection import ConnectionEvents
from loom_nats._bus_publish import Publishing, publish_mode_coalesces
from loom_nats._bus_state import CONNECTION_TOPIC, _matches, _NeverRaised, _Route
from loom_nats._bus_subscribe import Subscribing
from loom_nats._coalesce import Coalescer
from loom_nats._config import (
    DEFAULT_REALTIME_BATCH,
    DEFAULT_SERVERS,
    PUBLISH_MODES,
    PublishMode,
    StreamLimits,
    batch_bytes,
    check_name,
    check_prefix,
    check_realtime_batch,
    stream_name_for,
)
from loom_nats._consumer import ConsumerSettings, PullConsumer
from loom_nats._link import Link, make_tls_context
from loom_nats._publisher import Publisher
from loom_nats._realtime import RealtimeTap
from loom_nats._replay import ReplayedEvent, check_start, replay_stream
from loom_nats._stats import NatsStats, Telemetry

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.api import StreamInfo
    from nats.js.client import JetStreamContext

__all__ = ["CONNECTION_TOPIC", "NatsBus"]

log = logging.getLogger("loom.nats")


def _positive(name: str, value: object, *, integer: bool = False) -> None:
    ok = (value.__class__ is int if integer else isinstance(value, int | float)) and not isinstance(
        value, bool
    )
    if not ok or value <= 0:  # type: ignore[operator]
        kind = "an int" if integer else "a number"
        raise ValueError(f"{name} must be {kind} > 0, got {value!r}")


class NatsBus(Publishing, Subscribing, ConnectionEvents):
    """The event bus on a NATS server: the same API and contract as
    :class:`~loom.bus.MemoryBus`, across processes and machines.

    Topics are subjects under ``prefix`` (``sensor.kitchen`` travels as
    ``loom.sensor.kitchen``; the prefix never shows in topics you see) and events travel as
    ``loom.v1.Event`` protobuf. Every publish goes into one JetStream stream over
    ``{prefix}.>``, created or updated on :meth:`start` with ``limits``.

    - Realtime subscriptions listen on core NATS: the freshest data, nothing stored for
      them; while disconnected they miss what is published.
    - Batched and Background subscriptions read the stream through a JetStream pull
      consumer each, acknowledging an event once it is in the local queue; a slow reader
      holds back the consumer (at most ``max_inflight`` events requested ahead), not the
      publisher. With a bus ``name`` (or a subscription's ``durable``) the consumer is
      durable: a restarted host resumes where it stopped, missing nothing.
    - The local queue's backpressure policy (drop, sample, aggregate, block) applies on
      the receiving side as on the memory bus.

    ``publish`` returns how many of *this* bus's subscriptions the event is on its way to
    (remote subscribers are not counted). Delivery is asynchronous; :meth:`settle` waits
    until it has landed. Statistics are this bus's view: ``published`` counts its own
    publishes, ``delivered`` and ``dropped`` what reached its subscriptions.

    Args:
        servers: NATS URL, comma-separated URLs, or a list (a cluster).
        prefix: subject prefix of every topic; buses with different prefixes on one
            server are separate buses.
        stream: the JetStream stream's name; default the prefix in upper case.
        name: the bus's name: the connection name, and the stem of durable consumer
            names. Give each host its own name to make its Batched subscriptions durable.
        publish_mode: ``"ack"`` (await each PubAck), ``"async"`` (a window of
            ``max_pending_acks``; :meth:`flush` confirms) or ``"core"`` (no acknowledgement);
            see :data:`~loom_nats.PublishMode`.
        realtime_batch: in ``"core"`` mode, the most events published to one subject in
            one loop iteration that travel as one NATS message (a batch); 0 sends one
            message per event. Every host on the prefix must run a loom-nats that reads
            batches (this one and later).
        limits: the stream's retention limits (:class:`~loom_nats.StreamLimits` or a dict).
        create_stream: create or update the stream on start; off, a missing stream is an
            error (for accounts that may not manage streams).
        user, password, token: credentials.
        credentials: path of a ``.creds`` file (JWT and NKey seed).
        nkey_seed: path of an NKey seed file.
        tls: an ``ssl.SSLContext``, or True for the system's CA certificates.
        tls_ca, tls_cert, tls_key: paths of a CA bundle and of a client certificate and key.
        connect_timeout: seconds per connection attempt.
        reconnect_wait: seconds between reconnection attempts.
        reconnect_buffer: bytes of core publishes buffered while disconnected.
        outage_timeout: seconds a publish waits for a lost connection before it fails
            with :class:`~loom_nats.NatsUnavailableError`.
        max_waiting_publishes: publishes that may wait for the connection at once.
        ack_timeout: seconds to wait for one PubAck before sending again.
        max_pending_acks: the ``"async"`` window.
        max_inflight: events a JetStream subscription requests ahead of its reader.
        ack_wait: seconds JetStream waits for an acknowledgement before redelivering.
        heartbeat: seconds between JetStream idle heartbeats (a dead pull is re-armed
            after three missed ones).
        drain_timeout: seconds ``unsubscribe`` waits for events already on their way.

    Raises:
        ValueError: an option is out of range, naming it.

    Example:
        .. code-block:: python

            async with NatsBus("nats://127.0.0.1:4222", name="host-a") as bus:
                sub = await bus.subscribe("sensor.>", qos=QoS.BATCHED)
                await bus.publish("sensor.kitchen.temp", Event("reading", b"21.5"))
                topic, event = await sub.get()
    """

    def __init__(
        self,
        servers: str | Sequence[str] = DEFAULT_SERVERS,
        *,
        prefix: str = "loom",
        stream: str | None = None,
        name: str | None = None,
        publish_mode: PublishMode = "ack",
        realtime_batch: int = DEFAULT_REALTIME_BATCH,
        limits: StreamLimits | dict[str, Any] | None = None,
        create_stream: bool = True,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        credentials: str | None = None,
        nkey_seed: str | None = None,
        tls: ssl.SSLContext | bool | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        connect_timeout: float = 2.0,
        reconnect_wait: float = 0.5,
        reconnect_buffer: int = 8 << 20,
        outage_timeout: float = 10.0,
        max_waiting_publishes: int = 1000,
        ack_timeout: float = 5.0,
        max_pending_acks: int = 4096,
        max_inflight: int = 256,
        ack_wait: float = 30.0,
        heartbeat: float = 5.0,
        drain_timeout: float = 2.0,
    ) -> None:
        if isinstance(servers, str):
            server_list = [s.strip() for s in servers.split(",") if s.strip()]
        else:
            server_list = [str(s) for s in servers]
        if not server_list:
            raise ValueError("servers must name at least one NATS URL, e.g. nats://127.0.0.1:4222")
        if publish_mode not in PUBLISH_MODES:
            raise ValueError(
                f"publish_mode must be one of {sorted(PUBLISH_MODES)}, got {publish_mode!r}"
            )
        for option, value in (
            ("connect_timeout", connect_timeout),
            ("reconnect_wait", reconnect_wait),
            ("outage_timeout", outage_timeout),
            ("ack_timeout", ack_timeout),
            ("ack_wait", ack_wait),
            ("heartbeat", heartbeat),
            ("drain_timeout", drain_timeout),
        ):
            _positive(option, value)
        for option, value in (
            ("reconnect_buffer", reconnect_buffer),
            ("max_waiting_publishes", max_waiting_publishes),
            ("max_pending_acks", max_pending_acks),
            ("max_inflight", max_inflight),
        ):
            _positive(option, value, integer=True)
        self.prefix = check_prefix(prefix)
        self.stream = (
            check_name("stream", stream) if stream is not None else stream_name_for(prefix)
        )
        self.name = check_name("name", name) if name is not None else None
        self.publish_mode: PublishMode = publish_mode
        self.realtime_batch = check_realtime_batch(realtime_batch)
        self.limits = StreamLimits.coerce(limits)
        self._create_stream = create_stream
        self._strip = len(self.prefix) + 1
        options: dict[str, Any] = {
            "name": self.name or "loom",
            "connect_timeout": connect_timeout,
            "reconnect_time_wait": reconnect_wait,
            "pending_size": reconnect_buffer,
            # Every subject the bus sends is a topic it validated (whitespace and control
            # characters included) or an inbox: nats-py's regex per publish is redundant.
            "skip_subject_validation": True,
        }
        if user is not None:
            options["user"] = user
        if password is not None:
            options["password"] = password
        if token is not None:
            options["token"] = token
        if credentials is not None:
            options["user_credentials"] = credentials
        if nkey_seed is not None:
            options["nkeys_seed"] = nkey_seed
        context = make_tls_context(tls, tls_ca, tls_cert, tls_key)
        if context is not None:
            options["tls"] = context
        self._connect_options = options
        self._servers = server_list
        self._outage_timeout = outage_timeout
        self._ack_timeout = ack_timeout
        self._max_waiting = max_waiting_publishes
        self._max_pending_acks = max_pending_acks
        self._drain_timeout = drain_timeout
        self._consumer_settings = ConsumerSettings(
            batch=max_inflight,
            ack_wait=ack_wait,
            heartbeat=heartbeat,
            expires=max(30.0, heartbeat * 6),
        )
        self._telemetry = Telemetry(self.prefix)
        self.link: Link = Link(
            server_list,
            options,
            on_reconnect=self._on_reconnect,
            on_disconnect=self._on_disconnect,
            on_error=self._client_error,
        )
        self._js: JetStreamContext | None = None
        self._publisher: Publisher | None = None
        self._coalescer: Coalescer | None = None
        self._nc: Client | None = None
        self._max_payload = 1 << 20
        # nats.errors.ConnectionClosedError once started (nats is not imported before).
        self._connection_closed: type[Exception] = _NeverRaised
        self._started = False
        self._closed = False
        self._ids = itertools.count(1)
        self._subs: dict[str, Subscription] = {}
        self._taps: dict[str, RealtimeTap] = {}
        self._consumers: dict[str, PullConsumer] = {}
        self._tap_of: dict[str, RealtimeTap] = {}
        self._counters = self._telemetry.topics
        self._routes: dict[str, _Route] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        state = "shut down" if self._closed else "running" if self._started else "not started"
        return (
            f"<NatsBus {state} {','.join(self._servers)} prefix={self.prefix!r} "
            f"stream={self.stream!r}, {len(self._subs)} subscriptions>"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, create or update the stream, get ready to publish. Idempotent.

        Raises:
            NatsUnavailableError: no server answered, or it refused the credentials.
            StreamConfigError: the server refused the stream configuration.
            BusClosedError: the bus was shut down.
        """
        if self._closed:
            raise BusClosedError("the bus is shut down; make a new NatsBus")
        if self._started:
            return
        nc = await self.link.open()
        from nats.errors import ConnectionClosedError

        self._connection_closed = ConnectionClosedError
        try:
            self._nc = nc
            self._max_payload = nc.max_payload or self._max_payload
            self._js = nc.jetstream(timeout=self._ack_timeout)
            await self._ensure_stream()
            publisher = Publisher(
                self.link,
                self.publish_mode,
                ack_timeout=self._ack_timeout,
                outage_timeout=self._outage_timeout,
                max_waiting=self._max_waiting,
                max_pending_acks=self._max_pending_acks,
            )
            await publisher.start()
            if publish_mode_coalesces(self.publish_mode, self.realtime_batch):
                self._coalescer = Coalescer(
                    publisher,
                    max_events=self.realtime_batch,
                    max_bytes=batch_bytes(self._max_payload, self.limits.max_msg_size),
                    max_payload=self._max_payload,
                )
        except BaseException:
            await self.link.close()
            raise
        self._publisher = publisher
        self._started = True
        log.info(
            "NATS bus connected to %s, stream %s over %s.>",
            self.link.server,
            self.stream,
            self.prefix,
        )

    async def shutdown(self) -> None:
        """Confirm pending publishes, close every subscription and queue, let handlers
        drain, disconnect. Durable consumers stay on the server for the next run.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        subs = list(self._subs.values())
        taps = list(self._taps.values())
        consumers = list(self._consumers.values())
        self._subs.clear()
        self._taps.clear()
        self._tap_of.clear()
        self._consumers.clear()
        self._routes.clear()
        if self._coalescer is not None:
            await self._coalescer.close()
        if self._publisher is not None:
            await self._publisher.close(timeout=self._ack_timeout)
        for tap in taps:
            if tap.nats_sub is not None:
                with contextlib.suppress(Exception):  # the connection may be gone
                    await tap.nats_sub.unsubscribe()
        for consumer in consumers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.close(delete=True), 1.0)
        for sub in subs:
            sub._close()  # no public way for a backend to end a Subscription (see docs/nats.md)
            sub.queue.close()  # shared queues too: the bus that fed them is gone
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await self.link.close()

    # -- settling, replay, statistics ---------------------------------------------------------

    async def settle(self, timeout: float = 5.0) -> bool:
        """Wait until what was published so far (by this bus for sure; by others as far
        as the server has it) has reached this bus's subscriptions' queues, or waits for
        room in a full one.

        Returns:
            True when settled, False when ``timeout`` passed first (or disconnected).
        """
        if not self._started or self._closed or self._nc is None:
            return True
        if not self.link.up.is_set():
            return False
        try:
            async with asyncio.timeout(timeout):
                if self._coalescer is not None:
                    await self._coalescer.flush()
                if self._publisher is not None and self._publisher.pending_acks:
                    with contextlib.suppress(Exception):
                        await self._publisher.flush(timeout)
                await self._round_trip(timeout)
                while True:
                    if all(tap.pending() == 0 for tap in self._taps.values()):
                        results = [await c.caught_up() for c in list(self._consumers.values())]
                        if all(results):
                            return True
                    await asyncio.sleep(0.002)
        except TimeoutError:
            return False

    async def replay(
        self,
        pattern: str,
        *,
        from_seq: int | None = None,
        from_time: datetime | float | None = None,
        event_types: Iterable[str] = (),
        limit: int | None = None,
    ) -> AsyncIterator[ReplayedEvent]:
        """Read the stream's history of the topics ``pattern`` matches, oldest first, from
        a sequence or a time up to the newest event stored when the call began.

        Nobody's position moves: the replay reads through a short-lived consumer of its
        own. To replay into a live subscription instead, subscribe with
        ``replay_from_seq`` or ``replay_from_time``.

        Args:
            pattern: a topic or pattern.
            from_seq: the first stream sequence to read.
            from_time: read what was stored at or after this time (aware datetime, or
                seconds since the epoch).
            event_types: only these event types.
            limit: stop after this many events.

        Yields:
            :class:`~loom_nats.ReplayedEvent` records (sequence, topic, event, time).

        Raises:
            ValueError: both or neither start given, or a bad one.
            InvalidTopicError: the pattern is invalid.
        """
        TopicPattern.compile(pattern)
        subject = self._subject(pattern)
        start_time = check_start(from_seq, from_time)
        if limit is not None and (limit.__class__ is not int or limit < 1):
            raise ValueError(f"limit must be an int >= 1, got {limit!r}")
        types = frozenset(event_types) or None
        self._require_started()
        assert self._js is not None
        async for item in replay_stream(
            self._js,
            stream=self.stream,
            subject=subject,
            strip=self._strip,
            from_seq=from_seq,
            from_time=start_time,
            event_types=types,
            limit=limit,
            batch=self._consumer_settings.batch,
            undecodable=self._telemetry.undecodable,
        ):
            yield item

    async def stream_info(self) -> StreamInfo:
        """The stream's configuration and state (messages, bytes, sequences, consumers),
        as ``nats.js.api.StreamInfo``."""
        self._require_started()
        assert self._js is not None
        return await self._js.stream_info(self.stream)

    def stats(self, topic: str) -> TopicStats | None:
        """A snapshot of a topic's statistics as this bus sees them; see
        :meth:`EventBus.stats`."""
        counters = self._counters.get(topic)
        if counters is None:
            return None
        return counters.snapshot(self._active(topic))

    def all_stats(self) -> dict[str, TopicStats]:
        """Snapshots of every known topic's statistics."""
        return {t: c.snapshot(self._active(t)) for t, c in self._counters.items()}

    def nats_stats(self) -> NatsStats:
        """What the bus counts about the connection and the stream."""
        publisher = self._publisher
        return NatsStats(
            connected=self.link.up.is_set(),
            server=self.link.server,
            stream=self.stream,
            disconnects=self.link.disconnects,
            reconnects=self.link.reconnects,
            outage_seconds=self.link.outage_seconds(),
            undecodable=dict(self._telemetry.undecodable_by_subject),
            realtime_lost=dict(self._telemetry.realtime_lost),
            realtime_missed=dict(self._telemetry.realtime_missed),
            outages_counted=self._telemetry.outages_counted,
            publish_retries=publisher.retries if publisher else 0,
            publish_failures=(publisher.failures if publisher else 0)
            + (self._coalescer.lost if self._coalescer else 0),
            pending_acks=publisher.pending_acks if publisher else 0,
            duplicates_skipped=self._telemetry.duplicates,
            consumers_recreated=self._telemetry.recreated,
        )

    def _active(self, topic: str) -> int:
        if self._closed:
            return 0
        return sum(1 for sub in self._subs.values() if _matches(sub, topic))
