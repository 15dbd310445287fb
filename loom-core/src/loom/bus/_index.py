"""The subscription index: which subscriptions a topic reaches, cached per topic."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from loom.bus._stats import TopicCounters
from loom.bus._subscription import Subscription
from loom.topics import TopicPattern

__all__ = ["DEFAULT_ROUTE_CACHE_SIZE", "Route", "RouteTable"]

#: How many topics' routes are cached; beyond it the oldest cached route is dropped.
DEFAULT_ROUTE_CACHE_SIZE = 8192


class Route:
    """Where a topic's events go: its counters and the matching subscriptions."""

    __slots__ = ("counters", "subs")

    def __init__(self, counters: TopicCounters, subs: tuple[Subscription, ...]) -> None:
        self.counters = counters
        self.subs = subs


class RouteTable:
    """Subscriptions indexed by pattern, with a bounded cache of ``topic -> Route``.

    Exact patterns sit in a dict; wildcard patterns are grouped by pattern and matched
    with :class:`~loom.topics.TopicPattern` only when a topic's route is built. A route is
    built on a topic's first publish and reused until a subscription that matches the topic
    comes or goes (an exact one invalidates one entry; a wildcard one, the entries it
    matches).

    Args:
        counters_for: the counters of a topic, made on first use.
        max_cached: the cache bound.
    """

    __slots__ = ("_counters_for", "_exact", "_max_cached", "_wild", "routes")

    def __init__(
        self,
        counters_for: Callable[[str], TopicCounters],
        max_cached: int = DEFAULT_ROUTE_CACHE_SIZE,
    ) -> None:
        self._counters_for = counters_for
        self._max_cached = max_cached
        self._exact: dict[str, list[Subscription]] = {}
        self._wild: dict[str, tuple[TopicPattern, list[Subscription]]] = {}
        #: The route cache; the bus reads it directly on the hot path.
        self.routes: dict[str, Route] = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self._exact.values()) + sum(
            len(s) for _, s in self._wild.values()
        )

    def __iter__(self) -> Iterator[Subscription]:
        for subs in self._exact.values():
            yield from subs
        for _, subs in self._wild.values():
            yield from subs

    def add(self, sub: Subscription) -> None:
        """Index a subscription and invalidate the routes it changes."""
        pattern = TopicPattern.compile(sub.pattern)
        if pattern.has_wildcards:
            entry = self._wild.get(sub.pattern)
            if entry is None:
                self._wild[sub.pattern] = (pattern, [sub])
            else:
                entry[1].append(sub)
        else:
            self._exact.setdefault(sub.pattern, []).append(sub)
        self._invalidate(pattern)

    def remove(self, sub: Subscription) -> bool:
        """Unindex a subscription; False when it was not indexed."""
        pattern = TopicPattern.compile(sub.pattern)
        if pattern.has_wildcards:
            entry = self._wild.get(sub.pattern)
            subs = entry[1] if entry is not None else None
        else:
            subs = self._exact.get(sub.pattern)
        if subs is None or sub not in subs:
            return False
        subs.remove(sub)
        if not subs:
            if pattern.has_wildcards:
                del self._wild[sub.pattern]
            else:
                del self._exact[sub.pattern]
        self._invalidate(pattern)
        return True

    def match(self, topic: str) -> tuple[Subscription, ...]:
        """The subscriptions a valid concrete topic reaches, in subscription order (uncached)."""
        found = list(self._exact.get(topic, ()))
        if self._wild:
            for pattern, subs in self._wild.values():
                if pattern.matches(topic):
                    found.extend(subs)
            found.sort(key=_order)
        return tuple(found)

    @property
    def exact_patterns(self) -> dict[str, list[Subscription]]:
        """Subscriptions by exact (wildcard-free) pattern; read-only by convention."""
        return self._exact

    def route(self, topic: str) -> Route:
        """The cached route of a valid concrete topic, built on a miss."""
        route = self.routes.get(topic)
        if route is None:
            routes = self.routes
            if len(routes) >= self._max_cached:
                del routes[next(iter(routes))]  # the oldest entry (dicts keep insertion order)
            route = routes[topic] = Route(self._counters_for(topic), self.match(topic))
        return route

    def clear(self) -> None:
        """Forget every subscription and cached route."""
        self._exact.clear()
        self._wild.clear()
        self.routes.clear()

    def _invalidate(self, pattern: TopicPattern) -> None:
        routes = self.routes
        if not pattern.has_wildcards:
            routes.pop(pattern.pattern, None)
            return
        stale = [topic for topic in routes if pattern.matches(topic)]
        for topic in stale:
            del routes[topic]


def _order(sub: Subscription) -> int:
    return sub._seq
