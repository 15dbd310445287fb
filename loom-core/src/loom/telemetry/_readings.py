"""Readings: one consistent snapshot of the instrumented objects, taken on their loop.

Exporters collect metrics on their own threads (the Prometheus HTTP server, the OTLP
reader), while the bus, the runtime and the broker change on the event loop's thread
without locks. So a collection asks the loop for a snapshot (``call_soon_threadsafe``)
and waits for it a bounded time; a loop that does not answer in time (blocked, or
stopped) gets its last snapshot reported again, and the miss is counted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AgentReading", "BrokerReading", "QueueReading", "Readings", "Sources", "TopicReading"]

log = logging.getLogger("loom.telemetry")

#: Readings younger than this are reused: one collection runs many instrument callbacks.
_FRESH_S = 0.25


@dataclass(frozen=True, slots=True)
class TopicReading:
    """One topic of one bus; with ``retired``, the sums of the topics it forgot."""

    bus: int
    topic: str
    published: int
    delivered: int
    dropped_by_reason: dict[str, int]
    backlog: int
    retired: bool = False


@dataclass(frozen=True, slots=True)
class QueueReading:
    """One delivery queue (several subscriptions may share one: an agent's mailbox)."""

    qos: str
    depth: int
    capacity: int
    subscriptions: int


@dataclass(frozen=True, slots=True)
class AgentReading:
    """One agent of one runtime."""

    runtime: int
    agent_id: str
    status: str
    processed: int
    failures: int
    restarts: int
    expired: int
    late_replies: int
    mailbox: int
    mailbox_capacity: int


@dataclass(frozen=True, slots=True)
class BrokerReading:
    """One broker's counters and its circuits."""

    broker: int
    by_capability: dict[str, dict[str, int]]
    cache_hits: int
    joined: int
    circuits: dict[str, str]  # capability name -> state of its newest version


@dataclass(frozen=True, slots=True)
class RouterReading:
    """One model router's counters."""

    router: int
    decisions: dict[str, int]
    policy_errors: int
    guarded: int
    publish_errors: int
    fallbacks: int
    provider_failures: dict[str, int]


@dataclass(frozen=True)
class Readings:
    """Everything the metric callbacks report, as of ``taken`` (monotonic seconds)."""

    taken: float = 0.0
    topics: list[TopicReading] = field(default_factory=list)
    queues: list[QueueReading] = field(default_factory=list)
    agents: list[AgentReading] = field(default_factory=list)
    brokers: list[BrokerReading] = field(default_factory=list)
    routers: list[RouterReading] = field(default_factory=list)


class Sources:
    """The objects given to ``Telemetry.instrument``, and how to read them safely.

    Args:
        timeout_s: how long a collection on another thread waits for the loop.
    """

    def __init__(self, timeout_s: float = 2.0) -> None:
        self.timeout_s = timeout_s
        self.buses: list[Any] = []
        self.runtimes: list[Any] = []
        self.brokers: list[Any] = []
        self.routers: list[Any] = []
        self.timeouts = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._last = Readings()
        self._lock = threading.Lock()

    def add(self, kind: list[Any], obj: Any) -> None:
        """Observe ``obj`` (once, however often it is given) from the calling loop."""
        if obj is None or any(o is obj for o in kind):
            return
        kind.append(obj)
        try:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
        except RuntimeError:
            pass  # no loop yet: read directly until instrument runs inside one

    def clear(self) -> None:
        """Forget every object."""
        for kind in (self.buses, self.runtimes, self.brokers, self.routers):
            kind.clear()
        self._last = Readings()

    def read(self) -> Readings:
        """A snapshot, taken on the objects' loop (or the last one, if it does not answer)."""
        last = self._last
        if time.monotonic() - last.taken < _FRESH_S:
            return last
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            readings = self._last = self._take()  # on the loop: nothing moves meanwhile
            return readings
        with self._lock:  # one collecting thread at a time waits for the loop
            last = self._last
            if time.monotonic() - last.taken < _FRESH_S:
                return last
            if loop.is_closed():
                readings = dataclasses.replace(last, taken=time.monotonic())
            else:
                readings = self._take_on(loop, last)
            self._last = readings
            return readings

    def _take_on(self, loop: asyncio.AbstractEventLoop, last: Readings) -> Readings:
        future: concurrent.futures.Future[Readings] = concurrent.futures.Future()

        def take() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(self._take())
                except Exception as e:  # noqa: BLE001  # raised again in the collecting thread
                    future.set_exception(e)

        try:
            loop.call_soon_threadsafe(take)
            return future.result(self.timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            self.timeouts += 1
            if self.timeouts == 1:
                log.warning(
                    "telemetry: the event loop did not answer a metrics collection within "
                    "%.1f s; the last values are reported (counted in "
                    "loom.telemetry.collect_timeouts)",
                    self.timeout_s,
                )
            return dataclasses.replace(last, taken=time.monotonic())
        except RuntimeError:  # the loop closed meanwhile
            return dataclasses.replace(last, taken=time.monotonic())

    def _take(self) -> Readings:
        topics: list[TopicReading] = []
        queues: dict[int, tuple[Any, str, int]] = {}
        for index, bus in enumerate(self.buses):
            for topic, stats in bus.all_stats().items():
                topics.append(
                    TopicReading(
                        index,
                        topic,
                        stats.published,
                        stats.delivered,
                        dict(stats.dropped_by_reason),
                        stats.backlog,
                    )
                )
            retired_stats = getattr(bus, "retired_stats", None)
            if retired_stats is not None:
                stats = retired_stats()
                topics.append(
                    TopicReading(
                        index,
                        "",
                        stats.published,
                        stats.delivered,
                        dict(stats.dropped_by_reason),
                        0,
                        retired=True,
                    )
                )
            subscriptions = getattr(bus, "subscriptions", None)
            for sub in subscriptions() if subscriptions is not None else ():
                queue = sub.queue
                key = id(queue)
                _, qos, count = queues.get(key, (queue, sub.qos.name.lower(), 0))
                queues[key] = (queue, qos, count + 1)
        agents: list[AgentReading] = []
        for index, runtime in enumerate(self.runtimes):
            capacity = int(getattr(runtime, "mailbox_size", 0))
            for agent_id in runtime.agent_ids():
                info = runtime.info(agent_id)
                agents.append(
                    AgentReading(
                        index,
                        agent_id,
                        info.status.value,
                        info.processed,
                        info.failures,
                        info.restarts,
                        info.expired,
                        info.late_replies,
                        info.mailbox,
                        capacity,
                    )
                )
        brokers: list[BrokerReading] = []
        for index, broker in enumerate(self.brokers):
            stats = broker.stats
            circuits = {}
            for descriptor in broker.list_capabilities():
                state = broker.breaker_state(descriptor.name)
                if state is not None:
                    circuits[descriptor.name] = state.value
            brokers.append(
                BrokerReading(
                    index,
                    {name: dict(codes) for name, codes in stats.by_capability.items()},
                    stats.cache_hits,
                    stats.joined,
                    circuits,
                )
            )
        routers: list[RouterReading] = []
        for index, router in enumerate(self.routers):
            stats = router.stats
            routers.append(
                RouterReading(
                    index,
                    dict(Counter(stats.decisions)),
                    stats.policy_errors,
                    stats.guarded,
                    stats.publish_errors,
                    stats.fallbacks,
                    dict(Counter(stats.provider_failures)),
                )
            )
        return Readings(
            taken=time.monotonic(),
            topics=topics,
            queues=[
                QueueReading(qos, queue.qsize(), queue.maxsize, count)
                for queue, qos, count in queues.values()
            ],
            agents=agents,
            brokers=brokers,
            routers=routers,
        )
