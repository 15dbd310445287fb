"""NatsBus: the Loom event bus on NATS, Realtime on core NATS, Batched and Background on
JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loom import Event, QoS
from loom.bus import (
    Backpressure,
    BusClosedError,
    DeliveryQueue,
    DropReason,
    EventBus,
    Handler,
    Subscription,
    TopicStats,
)
from loom.errors import InvalidEventError, InvalidTopicError
from loom.telemetry import tracing_on
from loom.topics import TopicPattern, validate_topic
from loom_nats._codec import encode_event
from loom_nats._config import (
    DEFAULT_SERVERS,
    PUBLISH_MODES,
    PublishMode,
    StreamLimits,
    check_name,
    check_prefix,
    durable_name,
    stream_name_for,
)
from loom_nats._consumer import ConsumerSettings, PullConsumer, StartAt
from loom_nats._errors import NatsError, NatsUnavailableError, StreamConfigError
from loom_nats._handler import run_handler
from loom_nats._link import Link, make_tls_context
from loom_nats._outage import count_missed
from loom_nats._publisher import Publisher
from loom_nats._realtime import RealtimeTap
from loom_nats._replay import ReplayedEvent, check_start, replay_stream
from loom_nats._stats import NatsStats, Telemetry, TopicCounters
from loom_nats._stream import ensure_stream
from loom_nats._trace import end_publish_span, start_publish_span

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.api import StreamInfo
    from nats.js.client import JetStreamContext

__all__ = ["CONNECTION_TOPIC", "NatsBus"]

log = logging.getLogger("loom.nats")

#: The topic on which a bus tells its own subscriptions that its connection went down
#: (event type ``bus.disconnected``) or came back (``bus.reconnected``, with metadata
#: ``outage_s``), and, once counted, what its Realtime subscriptions missed meanwhile
#: (``bus.realtime_missed``, metadata ``missed`` events, ``deliveries``, ``outage_s``); all
#: carry the ``server`` in metadata. Delivered locally, not via NATS.
CONNECTION_TOPIC = "bus.nats.connection"

#: A subject must fit NATS's 4096-byte control line together with a reply inbox.
MAX_SUBJECT_BYTES = 2048
#: Most topics whose routes are cached; beyond it the cache starts over.
_ROUTE_CACHE = 8192
#: Messages a Realtime tap may hold before the client drops (counted in realtime_lost).
_TAP_PENDING = 65_536


class _Route:
    """What ``publish`` needs about a topic: its subject, counters and local subscribers."""

    __slots__ = ("counters", "subject", "subs", "typed")

    def __init__(
        self, subject: str, counters: TopicCounters, subs: tuple[Subscription, ...]
    ) -> None:
        self.subject = subject
        self.counters = counters
        self.subs = subs
        self.typed = any(sub.event_types for sub in subs)


def _positive(name: str, value: object, *, integer: bool = False) -> None:
    ok = (value.__class__ is int if integer else isinstance(value, int | float)) and not isinstance(
        value, bool
    )
    if not ok or value <= 0:  # type: ignore[operator]
        kind = "an int" if integer else "a number"
        raise ValueError(f"{name} must be {kind} > 0, got {value!r}")


class NatsBus(EventBus):
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

    async def _ensure_stream(self) -> StreamInfo:
        assert self._js is not None
        return await ensure_stream(
            self._js,
            self.stream,
            [f"{self.prefix}.>"],
            self.limits,
            create=self._create_stream,
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

    def _shut_down(self) -> bool:
        """Whether ``shutdown`` began (re-read after an await: it may have run meanwhile)."""
        return self._closed

    def _require_started(self) -> None:
        if not self._started:
            raise NatsError("the NatsBus is not started: await bus.start() (or use async with)")

    # -- publish -----------------------------------------------------------------------------

    async def publish(self, topic: str, event: Event) -> int:
        """Publish ``event`` on ``topic``; see :meth:`EventBus.publish`.

        Returns:
            How many of this bus's subscriptions the event is on its way to (0 after
            shutdown); subscribers elsewhere are not counted.

        Raises:
            InvalidTopicError: the topic is invalid, holds a wildcard, or is too long for
                a NATS subject.
            InvalidEventError: not an :class:`~loom.Event`, a field out of its contract, or
                larger than the server's ``max_payload``.
            NatsUnavailableError: the connection stayed down longer than ``outage_timeout``.
            PublishError: JetStream refused the event or never acknowledged it (``"ack"``
                mode).
            NatsError: the bus is not started.
        """
        if event.__class__ is not Event and not isinstance(event, Event):
            raise InvalidEventError(
                f"publish takes a loom.Event, not {type(event).__name__}: "
                "wrap the data, e.g. Event('my.type', payload_bytes)"
            )
        if event.payload.__class__ is not bytes or not 0 <= event.priority <= 100:
            _check_event_fields(event)
        try:
            route = self._routes[topic]
        except (KeyError, TypeError):
            route_or_none = self._route_slow(topic)
            if route_or_none is None:
                return 0
            route = route_or_none
        if tracing_on():
            return await self._publish_traced(topic, route, event)
        data = encode_event(event)
        if len(data) > self._max_payload:
            raise InvalidEventError(
                f"event {event.id!r} is {len(data)} bytes encoded, more than the server's "
                f"max_payload of {self._max_payload}"
            )
        nc = self._nc
        try:
            if self.publish_mode == "core" and nc is not None and self.link.up.is_set():
                await nc.publish(route.subject, data)  # the hot path of core mode
            else:
                assert self._publisher is not None
                await self._publisher.send(route.subject, data, event.id)
        except self._connection_closed:
            if self._closed:
                return 0  # shut down while this publish was on its way
            raise
        route.counters.published += 1
        if route.typed:
            return sum(1 for sub in route.subs if sub.accepts(event))
        return len(route.subs)

    async def _publish_traced(self, topic: str, route: _Route, event: Event) -> int:
        """``publish`` with tracing on: inside a publish span whose W3C context the event's
        metadata carries over the wire (see :mod:`loom_nats._trace`)."""
        span = start_publish_span(topic, route.subject, event)
        try:
            data = encode_event(event)
            if len(data) > self._max_payload:
                raise InvalidEventError(
                    f"event {event.id!r} is {len(data)} bytes encoded, more than the server's "
                    f"max_payload of {self._max_payload}"
                )
            try:
                assert self._publisher is not None
                await self._publisher.send(route.subject, data, event.id)
            except self._connection_closed:
                if not self._closed:
                    raise
                if span is not None:  # shut down while this publish was on its way
                    end_publish_span(span, 0, None)
                return 0
        except BaseException as exc:
            if span is not None:
                end_publish_span(span, 0, exc)
            raise
        route.counters.published += 1
        count = (
            sum(1 for sub in route.subs if sub.accepts(event)) if route.typed else len(route.subs)
        )
        if span is not None:
            end_publish_span(span, count, None)
        return count

    def _route_slow(self, topic: str) -> _Route | None:
        """The route of a topic not in the cache: validate, build, cache. None once shut
        down."""
        if not isinstance(topic, str):
            raise InvalidTopicError(repr(topic), f"a topic is a str, not {type(topic).__name__}")
        validate_topic(topic)
        subject = self._subject(topic)
        if self._closed:
            return None
        self._require_started()
        if len(self._routes) >= _ROUTE_CACHE:
            self._routes.clear()
        subs = tuple(sub for sub in self._subs.values() if _matches(sub, topic))
        route = self._routes[topic] = _Route(subject, self._telemetry.counters_for(topic), subs)
        return route

    def _subject(self, topic: str) -> str:
        subject = f"{self.prefix}.{topic}"
        if len(subject.encode()) > MAX_SUBJECT_BYTES:
            raise InvalidTopicError(
                topic[:40] + "…", f"longer than {MAX_SUBJECT_BYTES} bytes as a NATS subject"
            )
        return subject

    async def flush(self, timeout: float = 10.0) -> None:
        """Confirm every publish so far: send what the client buffers, and in ``"async"``
        mode wait for every acknowledgement.

        Raises:
            PublishError: JetStream refused or never acknowledged some publishes since the
                last flush (``"async"`` mode), or ``timeout`` passed first.
            NatsError: the bus is not started.
        """
        self._require_started()
        assert self._publisher is not None
        assert self._nc is not None
        await self._publisher.flush(timeout)
        if self.link.up.is_set():
            await self._nc.flush(int(max(1, timeout)))

    # -- subscribe ---------------------------------------------------------------------------

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
        if handler is not None:
            if not callable(handler):
                raise TypeError(f"handler must be callable, not {handler!r}")
            if queue is not None:
                raise ValueError(
                    "give a handler or a shared queue, not both: a handler drains its own queue"
                )
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
                await self._nc.flush(int(max(1, self._ack_timeout)))
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
                await self._nc.flush(int(max(1, self._drain_timeout)))
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
                if self._publisher is not None and self._publisher.pending_acks:
                    with contextlib.suppress(Exception):
                        await self._publisher.flush(timeout)
                await self._nc.flush(int(max(1, timeout)))
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
            publish_failures=publisher.failures if publisher else 0,
            pending_acks=publisher.pending_acks if publisher else 0,
            duplicates_skipped=self._telemetry.duplicates,
            consumers_recreated=self._telemetry.recreated,
        )

    def _active(self, topic: str) -> int:
        if self._closed:
            return 0
        return sum(1 for sub in self._subs.values() if _matches(sub, topic))

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


class _NeverRaised(Exception):
    """Stands for an exception class that is not loaded yet."""


def _matches(sub: Subscription, topic: str) -> bool:
    return TopicPattern.compile(sub.pattern).matches(topic)


def _check_event_fields(event: Event) -> None:
    if event.payload.__class__ is not bytes:
        raise InvalidEventError(
            f"event {event.id!r}: payload must be bytes, not {type(event.payload).__name__}"
        )
    raise InvalidEventError(
        f"event {event.id!r}: priority must be an int in 0..100, got {event.priority!r}"
    )
