"""The rule policy of upstream Loom: six rules, first match wins (UPSTREAM.md §7)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Protocol, runtime_checkable

from loom.models._routing import (
    Privacy,
    ProviderInfo,
    Route,
    RoutingDecision,
    RoutingRequest,
)

__all__ = [
    "DEFAULT_CLOUD_COSTS",
    "DEFAULT_OTHER_COST",
    "ConfidenceEstimator",
    "FixedConfidenceEstimator",
    "RulePolicy",
]

#: Upstream's cloud cost per event type.
DEFAULT_CLOUD_COSTS: Final[Mapping[str, float]] = {
    "video_frame": 0.005,
    "audio_chunk": 0.002,
    "intent": 0.01,
}
#: Upstream's cloud cost of any other event type.
DEFAULT_OTHER_COST: Final = 0.001


@runtime_checkable
class ConfidenceEstimator(Protocol):
    """Estimates how well the local model would do on a request (0..1).

    Meant to be cheap (upstream's budget: under 10 ms); it runs inside the policy.
    """

    @property
    def name(self) -> str:
        """The estimator's name, quoted in decision reasons."""
        ...

    def supports_event_type(self, event_type: str) -> bool:
        """Whether it can estimate requests of this event type."""
        ...

    def estimate(self, request: RoutingRequest) -> float:
        """The local model's expected quality on ``request``, 0..1."""
        ...


class FixedConfidenceEstimator:
    """Upstream's dummy estimator: a fixed confidence for a few event types.

    Args:
        value: the confidence it always gives (upstream: 0.87).
        event_types: the types it supports (upstream: video_frame, audio_chunk,
            face_event).
        name: its name in reasons.
    """

    def __init__(
        self,
        value: float = 0.87,
        event_types: Iterable[str] = ("video_frame", "audio_chunk", "face_event"),
        *,
        name: str = "dummy",
    ) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"a confidence is within [0, 1], got {value!r}")
        self._value = value
        self._types = frozenset(event_types)
        self._name = name

    @property
    def name(self) -> str:
        """The estimator's name."""
        return self._name

    def supports_event_type(self, event_type: str) -> bool:
        """Whether ``event_type`` is one of its types."""
        return event_type in self._types

    def estimate(self, request: RoutingRequest) -> float:
        """The fixed value."""
        return self._value


class RulePolicy:
    """Upstream's rules, first match wins:

    1. privacy ``local-only`` → Local (confidence 1.0, 50 ms, cost 0);
    2. the estimator supports the event type and its confidence ≥ the quality threshold →
       Local (50 ms); an unsupported type has confidence 0;
    3. latency budget < 100 ms → Local (50 ms);
    4. cloud cost > cost cap → LocalFallback (50 ms, cost 0);
    5. supported and confidence > 0.5 → Hybrid (300 ms, the cloud cost);
    6. otherwise Cloud (confidence 0, 500 ms, the cloud cost).

    The cloud cost is per event type: ``video_frame`` 0.005, ``audio_chunk`` 0.002,
    ``intent`` 0.01, anything else 0.001. The policy names routes, not providers: the
    router picks the provider for the route (and rewrites Cloud and Hybrid for
    ``private`` requests).

    Args:
        estimator: the :class:`ConfidenceEstimator` (upstream's dummy by default).
        cloud_costs: cloud cost per event type.
        other_cost: cloud cost of any other type.
        fast_budget_ms: below this latency budget only local is fast enough (rule 3).
        local_latency_ms: estimated latency of Local and LocalFallback.
        hybrid_latency_ms: estimated latency of Hybrid.
        cloud_latency_ms: estimated latency of Cloud.
    """

    name = "rules"

    def __init__(
        self,
        estimator: ConfidenceEstimator | None = None,
        *,
        cloud_costs: Mapping[str, float] | None = None,
        other_cost: float = DEFAULT_OTHER_COST,
        fast_budget_ms: float = 100.0,
        local_latency_ms: float = 50.0,
        hybrid_latency_ms: float = 300.0,
        cloud_latency_ms: float = 500.0,
    ) -> None:
        self.estimator: ConfidenceEstimator = estimator or FixedConfidenceEstimator()
        self.cloud_costs = dict(DEFAULT_CLOUD_COSTS if cloud_costs is None else cloud_costs)
        self.other_cost = other_cost
        self.fast_budget_ms = fast_budget_ms
        self.local_latency_ms = local_latency_ms
        self.hybrid_latency_ms = hybrid_latency_ms
        self.cloud_latency_ms = cloud_latency_ms

    def cloud_cost(self, event_type: str) -> float:
        """What sending a request of this type to the cloud costs."""
        return self.cloud_costs.get(event_type, self.other_cost)

    def decide(
        self, request: RoutingRequest, providers: Sequence[ProviderInfo] = ()
    ) -> RoutingDecision:
        """Apply the six rules.

        Raises:
            ValueError: the estimator returned something that is no confidence.
            Exception: whatever the estimator raises (the router falls back to Local).
        """
        if request.privacy is Privacy.LOCAL_ONLY:
            return self._decision(
                Route.LOCAL,
                "privacy local-only: the request stays local",
                1.0,
                self.local_latency_ms,
                0.0,
                request,
            )
        estimator = self.estimator
        supported = estimator.supports_event_type(request.event_type)
        confidence = estimator.estimate(request) if supported else 0.0
        if (
            isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
            or math.isnan(confidence)
        ):
            raise ValueError(f"estimator {estimator.name!r} returned {confidence!r}")
        confidence = min(1.0, max(0.0, float(confidence)))
        threshold = request.quality_threshold
        if supported and confidence >= threshold:
            return self._decision(
                Route.LOCAL,
                f"{estimator.name} confidence {confidence:.3f} >= quality threshold "
                f"{threshold:.3f}: local is good enough",
                confidence,
                self.local_latency_ms,
                0.0,
                request,
            )
        if request.latency_budget_ms < self.fast_budget_ms:
            return self._decision(
                Route.LOCAL,
                f"latency budget {request.latency_budget_ms:g} ms < "
                f"{self.fast_budget_ms:g} ms: only local is fast enough",
                confidence,
                self.local_latency_ms,
                0.0,
                request,
            )
        cost = self.cloud_cost(request.event_type)
        if cost > request.cost_cap:
            return self._decision(
                Route.LOCAL_FALLBACK,
                f"cloud cost {cost:.4f} > cost cap {request.cost_cap:.4f}: local fallback",
                confidence,
                self.local_latency_ms,
                0.0,
                request,
            )
        if supported and confidence > 0.5:
            return self._decision(
                Route.HYBRID,
                f"{estimator.name} confidence {confidence:.3f} is above 0.5 but below the "
                f"quality threshold {threshold:.3f}: hybrid",
                confidence,
                self.hybrid_latency_ms,
                cost,
                request,
            )
        why = (
            f"{estimator.name} confidence {confidence:.3f} is too low for local"
            if supported
            else f"{estimator.name} cannot estimate {request.event_type or 'untyped'!r} requests"
        )
        return self._decision(
            Route.CLOUD, f"{why}: cloud", 0.0, self.cloud_latency_ms, cost, request
        )

    def _decision(
        self,
        route: Route,
        reason: str,
        confidence: float,
        latency_ms: float,
        cost: float,
        request: RoutingRequest,
    ) -> RoutingDecision:
        return RoutingDecision(
            route=route,
            reason=reason,
            confidence=confidence,
            estimated_latency_ms=latency_ms,
            estimated_cost=cost,
            policy=self.name,
            request=request,
        )
