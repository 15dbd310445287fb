"""Metrics: counters read from the host, and rates from their change between two reads."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loom.errors import AgentNotFoundError

if TYPE_CHECKING:
    from loom_dashboard._observed import ObservedHost
    from loom_dashboard._tap import Tap

__all__ = ["MetricsView", "Rates"]


class Rates:
    """Per-second rates of counters, from their change since the previous sample.

    A sample is taken at most once per ``min_interval_s``; reads in between get the rates of
    the last sample, so many viewers reading often cost one sample per interval.

    Args:
        min_interval_s: the shortest interval rates are measured over.
    """

    def __init__(self, min_interval_s: float = 1.0) -> None:
        self.min_interval_s = min_interval_s
        self.window_s = 0.0
        self._prev: dict[str, int] = {}
        self._prev_t: float | None = None
        self._rates: dict[str, float] = {}

    def due(self, now: float) -> bool:
        """Whether a read at ``now`` takes a new sample."""
        return self._prev_t is None or now - self._prev_t >= self.min_interval_s

    def update(self, counters: Mapping[str, int], now: float) -> dict[str, float]:
        """Sample ``counters`` (if due) and return the rates, counters that moved only."""
        if self._prev_t is None:
            self._prev, self._prev_t = dict(counters), now
            return self._rates
        elapsed = now - self._prev_t
        if elapsed < self.min_interval_s:
            return self._rates
        prev = self._prev
        rates: dict[str, float] = {}
        for key, value in counters.items():
            # A counter that went down was reset (a topic forgotten and seen again).
            delta = value - prev.get(key, 0)
            if delta > 0:
                rates[key] = delta / elapsed
        self._prev, self._prev_t, self._rates = dict(counters), now, rates
        self.window_s = elapsed
        return rates

    def get(self, key: str) -> float:
        """The last rate of one counter (0.0 when it did not move)."""
        return self._rates.get(key, 0.0)


def _round(value: float) -> float:
    return round(value, 3)


class MetricsView:
    """Builds the ``/api/metrics`` document from the host and the tap.

    Args:
        host: the host watched.
        tap: the dashboard's tap (latency, routing events, its own drops).
        min_interval_s: the shortest interval rates are measured over.
    """

    def __init__(self, host: ObservedHost, tap: Tap, *, min_interval_s: float = 1.0) -> None:
        self.host = host
        self.tap = tap
        self.topic_rates = Rates(min_interval_s)
        self.total_rates = Rates(min_interval_s)

    def build(self, *, limit: int = 50, viewers: Mapping[str, int] | None = None) -> dict[str, Any]:
        """The metrics document; ``limit`` bounds the per-topic and per-queue lists."""
        now = time.time()
        bus = self._bus(limit, now)
        tools = self._tools(limit)
        totals = {
            "published": bus["published"],
            "delivered": bus["delivered"],
            "dropped": bus["dropped"],
            "tool_calls": tools["calls"],
            "tool_errors": tools["errors"],
        }
        rates = self.total_rates.update(totals, now)
        bus["events_per_s"] = _round(rates.get("published", 0.0))
        bus["deliveries_per_s"] = _round(rates.get("delivered", 0.0))
        bus["drops_per_s"] = _round(rates.get("dropped", 0.0))
        tools["calls_per_s"] = _round(rates.get("tool_calls", 0.0))
        tools["errors_per_s"] = _round(rates.get("tool_errors", 0.0))
        tap = self.tap
        return {
            "generated_ms": round(now * 1000.0, 3),
            "window_s": _round(self.total_rates.window_s),
            "bus": bus,
            "latency": tap.latency.snapshot(now),
            "queues": self._queues(limit),
            "tools": tools,
            "routing": self._routing(),
            "dashboard": {
                "seen": tap.seq,
                "dropped": tap.dropped,
                "ring": len(tap.ring),
                "threads": len(tap.threads),
                "threads_forgotten": tap.threads.forgotten,
                "viewers": dict(viewers or {}),
            },
        }

    # -- parts ---------------------------------------------------------------------------

    def _bus(self, limit: int, now: float) -> dict[str, Any]:
        stats = self.host.bus.all_stats()
        rates = self.topic_rates.update({t: s.published for t, s in stats.items()}, now)
        published = delivered = dropped = 0
        reasons: dict[str, int] = {}
        for s in stats.values():
            published += s.published
            delivered += s.delivered
            dropped += s.dropped
            for reason, n in s.dropped_by_reason.items():
                reasons[reason] = reasons.get(reason, 0) + n
        ranked = sorted(
            stats.items(), key=lambda item: (-rates.get(item[0], 0.0), -item[1].published, item[0])
        )
        topics = [
            {
                "topic": topic,
                "rate": _round(rates.get(topic, 0.0)),
                "published": s.published,
                "delivered": s.delivered,
                "dropped": s.dropped,
                "dropped_by_reason": dict(s.dropped_by_reason),
                "subscriptions": s.active_subscriptions,
                "backlog": s.backlog,
            }
            for topic, s in ranked[:limit]
        ]
        return {
            "published": published,
            "delivered": delivered,
            "dropped": dropped,
            "drops_by_reason": dict(sorted(reasons.items())),
            "topics_total": len(stats),
            "topics": topics,
            "backlog": [{"topic": t, "backlog": s.backlog} for t, s in stats.items() if s.backlog][
                :limit
            ],
        }

    def _queues(self, limit: int) -> dict[str, Any]:
        agents: list[dict[str, Any]] = []
        runtime = self.host.runtime
        if runtime is not None:
            capacity = getattr(runtime, "mailbox_size", None)
            for agent_id in runtime.agent_ids():
                try:
                    info = runtime.info(agent_id)
                except AgentNotFoundError:  # deleted between the two calls
                    continue
                agents.append(
                    _gauge({"id": agent_id, "status": info.status.value}, info.mailbox, capacity)
                )
        agents.sort(key=lambda g: (-(g["fill"] or 0.0), -g["depth"], g["id"]))
        return {"agents": agents[:limit], "subscriptions": self._subscriptions(limit)}

    def _subscriptions(self, limit: int) -> list[dict[str, Any]]:
        """The bus's queues (when the bus lists its subscriptions), fullest first.

        Subscriptions that share a queue (an agent's mailbox) are shown as one queue.
        """
        lister = getattr(self.host.bus, "subscriptions", None)
        if not callable(lister):
            return []
        own = self.tap.subscription_id
        queues: dict[int, dict[str, Any]] = {}
        for sub in lister():
            queue = sub.queue
            entry = queues.get(id(queue))
            if entry is None:
                policy = sub.backpressure.policy
                entry = queues[id(queue)] = _gauge(
                    {
                        "id": sub.id,
                        "patterns": [],
                        "qos": sub.qos.name,
                        "policy": policy.name if policy is not None else "",
                        "dropped": 0,
                        "dashboard": sub.id == own,
                    },
                    sub.qsize(),
                    queue.maxsize,
                )
            entry["patterns"].append(sub.pattern)
            entry["dropped"] += sub.dropped
        ranked = sorted(queues.values(), key=lambda g: (-(g["fill"] or 0.0), -g["depth"], g["id"]))
        return ranked[:limit]

    def _tools(self, limit: int) -> dict[str, Any]:
        broker = self.host.broker
        if broker is None:
            return {
                "available": False,
                "by_capability": [],
                "calls": 0,
                "errors": 0,
                "ok": 0,
                "failed": {},
                "error_rate": None,
                "breakers": [],
                "capabilities": 0,
            }
        stats = broker.stats
        ok = int(stats.ok)
        failed = {str(k): int(v) for k, v in dict(stats.failed).items()}
        errors = sum(failed.values())
        calls = ok + errors
        breakers: list[dict[str, str]] = []
        capabilities = list(broker.list_capabilities())
        for d in capabilities:
            state = broker.breaker_state(d.name, d.version)
            value = getattr(state, "value", state)
            if value is not None and value != "closed":
                breakers.append({"capability": d.name, "version": d.version, "state": str(value)})
        return {
            "available": True,
            "by_capability": _by_capability(getattr(stats, "by_capability", None), limit),
            "calls": calls,
            "ok": ok,
            "errors": errors,
            "failed": dict(sorted(failed.items())),
            "error_rate": _round(errors / calls) if calls else None,
            "cache_hits": int(getattr(stats, "cache_hits", 0)),
            "joined": int(getattr(stats, "joined", 0)),
            "capabilities": len(capabilities),
            "breakers": breakers,
        }

    def _routing(self) -> dict[str, Any]:
        seen = dict(self.tap.routes)
        router = getattr(self.host, "router", None)
        if router is None:
            return {"source": "events", "by_route": seen, "events_seen": seen}
        stats = router.stats
        return {
            "source": "router",
            "by_route": {str(k): int(v) for k, v in dict(stats.decisions).items()},
            "events_seen": seen,
            "policy_errors": int(getattr(stats, "policy_errors", 0)),
            "guarded": int(getattr(stats, "guarded", 0)),
            "fallbacks": int(getattr(stats, "fallbacks", 0)),
            "provider_failures": {
                str(k): int(v) for k, v in dict(getattr(stats, "provider_failures", {})).items()
            },
        }


def _gauge(entry: dict[str, Any], depth: int, capacity: int | None) -> dict[str, Any]:
    """``entry`` with depth, capacity and fill (0..1, None without a capacity)."""
    entry["depth"] = depth
    entry["capacity"] = capacity
    entry["fill"] = _round(depth / capacity) if capacity else None
    return entry


def _by_capability(per: object, limit: int) -> list[dict[str, Any]]:
    """Calls and error rates per capability, busiest first, from
    ``BrokerStats.by_capability`` (capability -> outcome -> count) when the broker keeps it."""
    if not isinstance(per, Mapping):
        return []
    rows: list[dict[str, Any]] = []
    for name, outcomes in per.items():
        counts = {str(k): int(v) for k, v in dict(outcomes).items()}
        calls = sum(counts.values())
        errors = calls - counts.get("OK", 0)
        rows.append(
            {
                "capability": str(name) or "(not registered)",
                "calls": calls,
                "errors": errors,
                "error_rate": _round(errors / calls) if calls else None,
                "outcomes": counts,
            }
        )
    rows.sort(key=lambda r: (-r["calls"], r["capability"]))
    return rows[:limit]
