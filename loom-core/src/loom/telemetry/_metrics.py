"""The metrics: observed from the instrumented objects at collection, sampled where a
histogram needs samples.

Counters of events, deliveries, drops, agent work, tool calls and routing decisions are
observable instruments whose callbacks read the objects' own counters (one snapshot per
collection, see :mod:`loom.telemetry._readings`): the hot paths count nothing for
telemetry. Only the delivery latency histogram and the LLM calls record samples.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from loom.telemetry._labels import OTHER, BoundedLabels, Totals
from loom.telemetry._readings import Readings, Sources, TopicReading

if TYPE_CHECKING:
    from collections import Counter

    from opentelemetry.metrics import Histogram

    from loom._event import Event
    from loom.agents._context import Context
    from loom.telemetry._switch import HandleHook

__all__ = ["LATENCY_BUCKETS_S", "LLM_BUCKETS_S", "Metrics", "event_age_s", "latency_sampler"]

#: Bucket bounds of the delivery latency histogram, in seconds.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Bucket bounds of the LLM call duration histogram, in seconds.
LLM_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: The capability label of calls for a capability that is not registered.
UNREGISTERED = "unregistered"
_CIRCUIT_STATES = ("closed", "open", "half_open")

_Callback = Callable[[CallbackOptions], Iterable[Observation]]


def event_age_s(event: Event) -> float:
    """Seconds since the event was made (its ``timestamp_ms``), never below 0."""
    return max(0.0, time.time() - event.timestamp_ms / 1000)


def latency_sampler(record: Callable[[float], None], every: int) -> HandleHook:
    """A handle hook that times one event in ``every``, and at least one a second.

    The second rule reads the clock from the events (``timestamp_ms``), so a quiet agent's
    latency is still seen without a clock call per event. It returns the handler's
    awaitable itself, so the runtime awaits no extra coroutine.
    """
    countdown = 1
    last_ms = 0

    def handle(
        ctx: Context,
        topic: str,
        event: Event,
        on_event: Callable[[Context, Event], Awaitable[None]],
    ) -> Awaitable[None]:
        nonlocal countdown, last_ms
        countdown -= 1
        stamp = event.timestamp_ms
        if countdown <= 0 or stamp - last_ms >= 1000:
            countdown = every
            last_ms = stamp
            record(event_age_s(event))
        return on_event(ctx, event)

    return handle


def _retired_topic(source: tuple[int, str, bool]) -> tuple[int, str, bool] | None:
    """The retired source of a bus that took over a forgotten topic's counts."""
    bus, _, retired = source
    return None if retired else (bus, "", True)


def _retired_drop(source: tuple[int, str, bool, str]) -> tuple[int, str, bool, str] | None:
    bus, _, retired, reason = source
    return None if retired else (bus, "", True, reason)


class Metrics:
    """Every instrument, and the state that keeps their labels bounded and counts monotonic.

    Args:
        meter: where the instruments are made.
        sources: the instrumented objects.
        label_limit: values each label (topic, agent, capability, provider, model) takes
            before the rest are reported as ``other``.
        export_failures: failures by exporter, reported as
            ``loom.telemetry.export_failures``.
    """

    def __init__(
        self,
        meter: Meter,
        sources: Sources,
        label_limit: int,
        export_failures: Counter[str],
    ) -> None:
        self.sources = sources
        self.topics = BoundedLabels(label_limit)
        self.agents = BoundedLabels(label_limit)
        self.capabilities = BoundedLabels(label_limit)
        self.providers = BoundedLabels(label_limit)
        self.models = BoundedLabels(label_limit)
        self._export_failures = export_failures
        self._totals: dict[str, Totals] = {}
        self.delivery_latency: Histogram = meter.create_histogram(
            "loom.agent.delivery_latency",
            unit="s",
            description=(
                "Age of an event when an agent's handler starts (from Event.timestamp_ms, "
                "1 ms resolution); one event in latency_sample_every with tracing off"
            ),
            explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS_S),
        )
        self.llm_calls = meter.create_counter(
            "loom.llm.calls", unit="{call}", description="LLM calls by provider, model, outcome"
        )
        self.llm_tokens = meter.create_counter(
            "loom.llm.tokens", unit="{token}", description="Tokens used, by kind (input, output)"
        )
        self.llm_retries = meter.create_counter(
            "loom.llm.retries", unit="{retry}", description="LLM attempts retried"
        )
        self.llm_duration = meter.create_histogram(
            "loom.llm.duration",
            unit="s",
            description="LLM call duration, retries included",
            explicit_bucket_boundaries_advisory=list(LLM_BUCKETS_S),
        )
        self._observe(meter)

    # -- instruments ---------------------------------------------------------------------

    def _observe(self, meter: Meter) -> None:
        counters: list[tuple[str, str, str, _Callback]] = [
            ("loom.bus.published", "{event}", "Events published, by topic", self._published),
            ("loom.bus.delivered", "{delivery}", "Deliveries queued, by topic", self._delivered),
            ("loom.bus.dropped", "{delivery}", "Deliveries dropped, by topic and reason",
             self._dropped),
            ("loom.agent.processed", "{event}", "Events an agent handled",
             self._agent("processed")),
            ("loom.agent.failures", "{failure}", "Handler failures", self._agent("failures")),
            ("loom.agent.restarts", "{restart}", "Supervised restarts", self._agent("restarts")),
            ("loom.agent.expired", "{event}", "Events dropped: ttl exhausted",
             self._agent("expired")),
            ("loom.agent.late_replies", "{event}", "Replies that came after their call ended",
             self._agent("late_replies")),
            ("loom.broker.calls", "{call}", "Capability calls by capability and outcome code",
             self._broker_calls),
            ("loom.broker.cache_hits", "{call}", "Calls answered from the idempotency cache",
             self._broker_field("cache_hits")),
            ("loom.broker.joined", "{call}", "Repeated calls that joined one still running",
             self._broker_field("joined")),
            ("loom.router.decisions", "{decision}", "Routing decisions by route",
             self._router_decisions),
            ("loom.router.policy_errors", "{error}", "Routing policy failures",
             self._router_field("policy_errors")),
            ("loom.router.guarded", "{decision}", "Decisions changed to keep privacy",
             self._router_field("guarded")),
            ("loom.router.fallbacks", "{request}", "Requests served by the fallback provider",
             self._router_field("fallbacks")),
            ("loom.router.publish_errors", "{event}", "Decision events the bus refused",
             self._router_field("publish_errors")),
            ("loom.router.provider_failures", "{call}", "Failed provider calls, by provider",
             self._provider_failures),
            ("loom.telemetry.export_failures", "{export}", "Exports that failed, by exporter",
             self._exports),
            ("loom.telemetry.collect_timeouts", "{collection}",
             "Collections the event loop did not answer in time", self._timeouts),
        ]  # fmt: skip
        for name, unit, description, callback in counters:
            meter.create_observable_counter(
                name, callbacks=[callback], unit=unit, description=description
            )
        gauges: list[tuple[str, str, str, _Callback]] = [
            ("loom.bus.backlog", "{publish}", "Publishes in flight (waiting for queue room)",
             self._backlog),
            ("loom.bus.topics", "{topic}", "Topics the bus keeps statistics of", self._topic_count),
            ("loom.bus.subscriptions", "{subscription}", "Live subscriptions by QoS",
             self._subscriptions),
            ("loom.bus.queue.depth", "{event}", "Events waiting in delivery queues, by QoS",
             self._queue_depth),
            ("loom.bus.queue.fill", "1", "Fullest delivery queue's depth / bound, by QoS",
             self._queue_fill),
            ("loom.agent.mailbox.depth", "{event}", "Events waiting in an agent's mailbox",
             self._mailbox_depth),
            ("loom.agent.mailbox.fill", "1", "Mailbox depth / bound", self._mailbox_fill),
            ("loom.agents", "{agent}", "Agents by status", self._agent_status),
            ("loom.broker.circuit", "{capability}", "Capabilities by circuit state",
             self._circuits),
        ]  # fmt: skip
        for name, unit, description, callback in gauges:
            meter.create_observable_gauge(
                name, callbacks=[callback], unit=unit, description=description
            )

    def _read(self) -> Readings:
        readings = self.sources.read()
        if len(self.topics) < self.topics.limit:
            busiest = sorted(readings.topics, key=lambda t: t.published, reverse=True)
            self.topics.admit(t.topic for t in busiest if not t.retired)
        if len(self.agents) < self.agents.limit:
            self.agents.admit(a.agent_id for a in readings.agents)
        if len(self.capabilities) < self.capabilities.limit:
            self.capabilities.admit(
                name for b in readings.brokers for name in b.by_capability if name
            )
        return readings

    def _count(
        self,
        name: str,
        counts: Iterable[tuple[Any, tuple[str, ...], int]],
        keys: tuple[str, ...],
        retired_of: Callable[[Any], Any] | None = None,
    ) -> list[Observation]:
        totals = self._totals.get(name)
        if totals is None:
            totals = self._totals[name] = Totals()
        return [
            Observation(value, dict(zip(keys, labels, strict=True)))
            for labels, value in totals.update(counts, retired_of).items()
        ]

    # -- the bus ---------------------------------------------------------------------------

    def _published(self, options: CallbackOptions) -> list[Observation]:
        r = self._read()
        label = self._topic
        counts = (((t.bus, t.topic, t.retired), (label(t),), t.published) for t in r.topics)
        return self._count("published", counts, ("topic",), _retired_topic)

    def _delivered(self, options: CallbackOptions) -> list[Observation]:
        r = self._read()
        label = self._topic
        counts = (((t.bus, t.topic, t.retired), (label(t),), t.delivered) for t in r.topics)
        return self._count("delivered", counts, ("topic",), _retired_topic)

    def _dropped(self, options: CallbackOptions) -> list[Observation]:
        r = self._read()
        label = self._topic
        counts = (
            ((t.bus, t.topic, t.retired, reason), (label(t), reason.lower()), n)
            for t in r.topics
            for reason, n in t.dropped_by_reason.items()
        )
        return self._count("dropped", counts, ("topic", "reason"), _retired_drop)

    def _backlog(self, options: CallbackOptions) -> list[Observation]:
        sums: dict[str, int] = {}
        label = self._topic
        for t in self._read().topics:
            key = label(t)
            sums[key] = sums.get(key, 0) + t.backlog
        return [Observation(n, {"topic": topic}) for topic, n in sums.items()]

    def _topic(self, reading: TopicReading) -> str:
        return OTHER if reading.retired else self.topics.label(reading.topic)

    def _topic_count(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(sum(not t.retired for t in self._read().topics))]

    def _by_qos(self, value: Callable[[list[Any]], float]) -> list[Observation]:
        groups: dict[str, list[Any]] = {}
        for q in self._read().queues:
            groups.setdefault(q.qos, []).append(q)
        return [Observation(value(qs), {"qos": qos}) for qos, qs in groups.items()]

    def _subscriptions(self, options: CallbackOptions) -> list[Observation]:
        return self._by_qos(lambda qs: sum(q.subscriptions for q in qs))

    def _queue_depth(self, options: CallbackOptions) -> list[Observation]:
        return self._by_qos(lambda qs: sum(q.depth for q in qs))

    def _queue_fill(self, options: CallbackOptions) -> list[Observation]:
        return self._by_qos(lambda qs: max(q.depth / q.capacity if q.capacity else 0.0 for q in qs))

    # -- agents ----------------------------------------------------------------------------

    def _agent(self, field: str) -> _Callback:
        def observe(options: CallbackOptions) -> list[Observation]:
            label = self.agents.label
            counts = (
                ((a.runtime, a.agent_id), (label(a.agent_id),), getattr(a, field))
                for a in self._read().agents
            )
            return self._count(f"agent.{field}", counts, ("agent",))

        return observe

    def _mailbox_depth(self, options: CallbackOptions) -> list[Observation]:
        sums: dict[str, int] = {}
        label = self.agents.label
        for a in self._read().agents:
            key = label(a.agent_id)
            sums[key] = sums.get(key, 0) + a.mailbox
        return [Observation(n, {"agent": agent}) for agent, n in sums.items()]

    def _mailbox_fill(self, options: CallbackOptions) -> list[Observation]:
        fills: dict[str, float] = {}
        label = self.agents.label
        for a in self._read().agents:
            key = label(a.agent_id)
            fill = a.mailbox / a.mailbox_capacity if a.mailbox_capacity else 0.0
            fills[key] = max(fills.get(key, 0.0), fill)
        return [Observation(f, {"agent": agent}) for agent, f in fills.items()]

    def _agent_status(self, options: CallbackOptions) -> list[Observation]:
        counts: dict[str, int] = {}
        for a in self._read().agents:
            counts[a.status] = counts.get(a.status, 0) + 1
        return [Observation(n, {"status": status}) for status, n in counts.items()]

    # -- the broker ------------------------------------------------------------------------

    def _capability(self, name: str) -> str:
        return self.capabilities.label(name) if name else UNREGISTERED

    def _broker_calls(self, options: CallbackOptions) -> list[Observation]:
        counts = (
            ((b.broker, name, code), (self._capability(name), code), n)
            for b in self._read().brokers
            for name, codes in b.by_capability.items()
            for code, n in codes.items()
        )
        return self._count("broker.calls", counts, ("capability", "code"))

    def _broker_field(self, field: str) -> _Callback:
        def observe(options: CallbackOptions) -> list[Observation]:
            counts = (((b.broker,), (), getattr(b, field)) for b in self._read().brokers)
            return self._count(f"broker.{field}", counts, ())

        return observe

    def _circuits(self, options: CallbackOptions) -> list[Observation]:
        counts: dict[tuple[str, str], int] = {}
        for b in self._read().brokers:
            for name, state in b.circuits.items():
                capability = self._capability(name)
                for s in _CIRCUIT_STATES:
                    key = (capability, s)
                    counts[key] = counts.get(key, 0) + (state == s)
        return [
            Observation(n, {"capability": capability, "state": state})
            for (capability, state), n in counts.items()
        ]

    # -- the router ------------------------------------------------------------------------

    def _router_decisions(self, options: CallbackOptions) -> list[Observation]:
        counts = (
            ((r.router, route), (route,), n)
            for r in self._read().routers
            for route, n in r.decisions.items()
        )
        return self._count("router.decisions", counts, ("route",))

    def _router_field(self, field: str) -> _Callback:
        def observe(options: CallbackOptions) -> list[Observation]:
            counts = (((r.router,), (), getattr(r, field)) for r in self._read().routers)
            return self._count(f"router.{field}", counts, ())

        return observe

    def _provider_failures(self, options: CallbackOptions) -> list[Observation]:
        readings = self._read()
        self.providers.admit(p for r in readings.routers for p in r.provider_failures)
        counts = (
            ((r.router, provider), (self.providers.label(provider),), n)
            for r in readings.routers
            for provider, n in r.provider_failures.items()
        )
        return self._count("router.provider_failures", counts, ("provider",))

    # -- telemetry itself ------------------------------------------------------------------

    def _exports(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(n, {"exporter": name}) for name, n in self._export_failures.items()]

    def _timeouts(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(self.sources.timeouts)]

    # -- LLM calls (recorded per call: they take milliseconds to seconds) -------------------

    def llm_labels(self, provider: str, model: str) -> dict[str, str]:
        """The bounded labels of one provider and model."""
        self.providers.admit((provider,))
        self.models.admit((model,))
        return {"provider": self.providers.label(provider), "model": self.models.label(model)}

    def record_llm(
        self,
        labels: dict[str, str],
        outcome: str,
        seconds: float,
        input_tokens: int | None,
        output_tokens: int | None,
    ) -> None:
        """Count one LLM call."""
        self.llm_calls.add(1, {**labels, "outcome": outcome})
        self.llm_duration.record(seconds, labels)
        if input_tokens:
            self.llm_tokens.add(input_tokens, {**labels, "type": "input"})
        if output_tokens:
            self.llm_tokens.add(output_tokens, {**labels, "type": "output"})
