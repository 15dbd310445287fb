"""Which provider runs a decision, and the privacy guarantee no policy can break."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from loom.models._chat import ChatModel, Location
from loom.models._routing import ProviderInfo, Route, RoutingDecision, RoutingRequest

__all__ = ["DEFAULT_LOCAL_LATENCY_MS", "ProviderEntry", "ProviderTable"]

_DEFAULT_LATENCY_MS: Final = {Location.LOCAL: 50.0, Location.CLOUD: 500.0}
#: The estimated latency of a local route when nothing better is known.
DEFAULT_LOCAL_LATENCY_MS: Final = _DEFAULT_LATENCY_MS[Location.LOCAL]
_DEFAULT_COST: Final = {Location.LOCAL: 0.0, Location.CLOUD: 0.001}


@dataclass(frozen=True, kw_only=True)
class ProviderEntry:
    """A provider the router may send requests to.

    Attributes:
        name: its name, unique in the router.
        model: the chat model.
        location: local or cloud (see :class:`~loom.models.Location`).
        est_latency_ms: expected latency before any is observed (50 local, 500 cloud).
        cost_per_call: expected cost per request (0 local, 0.001 cloud).
    """

    name: str
    model: ChatModel
    location: Location = Location.CLOUD
    est_latency_ms: float | None = None
    cost_per_call: float | None = None

    @classmethod
    def of(cls, name: str, model: ChatModel) -> ProviderEntry:
        """An entry for ``model``, local only if the model says so (its ``location``)."""
        location = getattr(model, "location", Location.CLOUD)
        if location not in (Location.LOCAL, Location.CLOUD):
            raise ValueError(f"provider {name!r}: location {location!r} is not local or cloud")
        return cls(name=name, model=model, location=Location(location))

    def info(self) -> ProviderInfo:
        """What a policy is told of this provider."""
        return ProviderInfo(
            name=self.name,
            location=self.location,
            est_latency_ms=(
                _DEFAULT_LATENCY_MS[self.location]
                if self.est_latency_ms is None
                else self.est_latency_ms
            ),
            cost_per_call=(
                _DEFAULT_COST[self.location] if self.cost_per_call is None else self.cost_per_call
            ),
        )


class ProviderTable:
    """The router's providers: the defaults per route, what a request may use, and the
    settling of a policy's decision into one that keeps the privacy guarantee.

    Raises:
        ValueError: no providers, or two with one name.
    """

    def __init__(self, entries: Iterable[ProviderEntry]) -> None:
        self.entries: dict[str, ProviderEntry] = {}
        for entry in entries:
            if entry.name in self.entries:
                raise ValueError(f"two providers are named {entry.name!r}")
            self.entries[entry.name] = entry
        if not self.entries:
            raise ValueError("a model router needs at least one provider")
        self.infos = {name: e.info() for name, e in self.entries.items()}

    def _first(self, location: Location, exclude: str | None = None) -> str | None:
        for name, entry in self.entries.items():
            if entry.location is location and name != exclude:
                return name
        return None

    def admissible(self, request: RoutingRequest) -> list[ProviderInfo]:
        """The providers ``request``'s privacy level allows, as a policy sees them."""
        return [
            info
            for info in self.infos.values()
            if request.privacy.allows_cloud or info.location is Location.LOCAL
        ]

    @staticmethod
    def validate(decision: object) -> RoutingDecision:
        """``decision`` if it is a well-formed decision.

        Raises:
            TypeError: not a :class:`RoutingDecision`, or its route is no :class:`Route`.
            ValueError: no reason, or a number out of range.
        """
        if not isinstance(decision, RoutingDecision):
            raise TypeError(f"decide() returned {type(decision).__name__}, not a RoutingDecision")
        if not isinstance(decision.route, Route):
            raise TypeError(f"decision route {decision.route!r} is not a Route")
        if not isinstance(decision.reason, str) or not decision.reason.strip():
            raise ValueError("the decision has no reason")
        for label, value, high in (
            ("confidence", decision.confidence, 1.0),
            ("estimated_latency_ms", decision.estimated_latency_ms, math.inf),
            ("estimated_cost", decision.estimated_cost, math.inf),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0.0 <= value <= high
            ):
                raise ValueError(f"decision {label} {value!r} is out of range")
        return decision

    def settle(
        self, request: RoutingRequest, proposed: RoutingDecision, policy_name: str
    ) -> RoutingDecision:
        """The decision to carry out: privacy enforced, provider and fallback resolved.

        A Cloud or Hybrid route for a request that must stay local becomes LocalFallback;
        a provider the policy named that is unknown, off limits or unfit for the route is
        replaced; a route with no provider for it moves to what exists, or is dropped.
        Each change is appended to the reason.
        """
        privacy = request.privacy
        cloud_ok = privacy.allows_cloud
        notes: list[str] = []
        guarded = False
        route = proposed.route
        chosen = proposed.provider
        if route.uses_cloud and not cloud_ok:
            notes.append(f"privacy {privacy.value}: {route.value} refused, never sent to cloud")
            route, guarded = Route.LOCAL_FALLBACK, True
        if chosen is not None:
            entry = self.entries.get(chosen)
            if entry is None:
                notes.append(f"the policy chose unknown provider {chosen!r}")
                chosen = None
            elif entry.location is Location.CLOUD and not cloud_ok:
                notes.append(f"privacy {privacy.value}: cloud provider {chosen!r} refused")
                chosen, guarded = None, True
            elif (
                route is not Route.HYBRID
                and route.runs
                and ((entry.location is Location.CLOUD) != (route is Route.CLOUD))
            ):
                notes.append(f"provider {chosen!r} is {entry.location.value}, not {route.value}")
                chosen = None
        provider, fallback, route = self._assign(route, chosen, cloud_ok, notes)
        # Defence in depth: whatever happened above, no cloud name leaves for a private request.
        if not cloud_ok and any(
            n is not None and self.entries[n].location is Location.CLOUD
            for n in (provider, fallback)
        ):  # unreachable unless the code above is broken: kept as a last line of defence
            notes.append("privacy guard: cloud provider removed")
            provider, fallback, route, guarded = None, None, Route.DROP, True
        if route is proposed.route and provider == (proposed.provider or provider) and not notes:
            return dataclasses.replace(
                proposed,
                provider=provider,
                fallback=fallback,
                policy=proposed.policy or policy_name,
                request=request,
            )
        latency, cost = proposed.estimated_latency_ms, proposed.estimated_cost
        if route is not proposed.route:
            info = self.infos.get(provider) if provider is not None else None
            latency = info.est_latency_ms if info is not None else 0.0
            cost = info.cost_per_call if info is not None else 0.0
        reason = proposed.reason + "".join(f"; {n}" for n in notes)
        return dataclasses.replace(
            proposed,
            route=route,
            reason=reason,
            estimated_latency_ms=latency,
            estimated_cost=cost,
            provider=provider,
            fallback=fallback,
            policy=proposed.policy or policy_name,
            request=request,
            guarded=guarded,
        )

    def _assign(
        self, route: Route, chosen: str | None, cloud_ok: bool, notes: list[str]
    ) -> tuple[str | None, str | None, Route]:
        """(provider, fallback, route) for a route, given the policy's choice, if any."""
        local, cloud = Location.LOCAL, Location.CLOUD
        if not route.runs:
            return None, None, route
        if route in (Route.LOCAL, Route.LOCAL_FALLBACK):
            provider = chosen or self._first(local)
            if provider is not None:
                return provider, self._first(local, exclude=provider), route
            other = self._first(cloud) if cloud_ok else None
            if other is not None:
                notes.append("no local provider: sent to cloud")
                return other, None, Route.CLOUD
            notes.append("no local provider may take the request: dropped")
            return None, None, Route.DROP
        if route is Route.CLOUD:
            provider = chosen or self._first(cloud)
            if provider is not None:
                return provider, self._first(local), route
            provider = self._first(local)
            notes.append("no cloud provider: local")
            return (provider, None, Route.LOCAL_FALLBACK) if provider else (None, None, Route.DROP)
        # Hybrid: local first, cloud as the fallback.
        chosen_location = self.entries[chosen].location if chosen is not None else None
        first_local = chosen if chosen_location is local else self._first(local)
        first_cloud = chosen if chosen_location is cloud else self._first(cloud)
        if first_local is not None and first_cloud is not None:
            return first_local, first_cloud, route
        if first_cloud is not None:
            notes.append("no local provider: cloud")
            return first_cloud, None, Route.CLOUD
        if first_local is not None:
            notes.append("no cloud provider: local")
            return first_local, None, Route.LOCAL_FALLBACK
        return None, None, Route.DROP  # no provider at all: a table has at least one
