"""NatsBus, publishing: routes, encoding, the three publish modes and batches."""

from __future__ import annotations

from loom import Event
from loom.bus import refuse_event
from loom.errors import InvalidTopicError
from loom.telemetry import tracing_on
from loom.topics import validate_topic
from loom_nats._bus_state import _ROUTE_CACHE, BusState, _matches, _Route
from loom_nats._codec import encode_event, raise_too_large
from loom_nats._config import PublishMode
from loom_nats._trace import end_publish_span, start_publish_span

__all__ = ["Publishing", "publish_mode_coalesces"]


def publish_mode_coalesces(mode: PublishMode, realtime_batch: int) -> bool:
    """Whether publishes coalesce into batches: core mode (nothing to acknowledge per
    event) with ``realtime_batch`` of 2 or more."""
    return mode == "core" and realtime_batch > 1


class Publishing(BusState):
    """The publishing part of :class:`~loom_nats.NatsBus`."""

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
            refuse_event(event)
        if event.payload.__class__ is not bytes or not 0 <= event.priority <= 100:
            refuse_event(event)
        try:
            route = self._routes[topic]
        except (KeyError, TypeError):
            route_or_none = self._route_slow(topic)
            if route_or_none is None:
                return 0
            route = route_or_none
        if tracing_on():
            return await self._publish_traced(topic, route, event)
        coalescer = self._coalescer
        try:
            if coalescer is not None:  # the hot path of core mode: encoded with its batch
                subject = route.subject
                if not coalescer.hold(subject, event):
                    await coalescer.send(subject, event)
            else:
                data = self._encode(event)
                nc = self._nc
                if self.publish_mode == "core" and nc is not None and self.link.up.is_set():
                    await nc.publish(route.subject, data)
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
            try:
                if self._coalescer is not None:
                    await self._coalescer.send(route.subject, event)
                else:
                    data = self._encode(event)
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

    def _encode(self, event: Event) -> bytes:
        """The event encoded, no larger than the server's ``max_payload``."""
        data = encode_event(event)
        if len(data) > self._max_payload:
            raise_too_large(event, len(data), self._max_payload)
        return data

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
        if self._coalescer is not None:
            await self._coalescer.flush()
        await self._publisher.flush(timeout)
        if self.link.up.is_set():
            await self._round_trip(timeout)
