"""Routing data: privacy levels, routes, requests, decisions, and what a policy is."""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from loom._event import new_event_id
from loom.models._chat import Location

if TYPE_CHECKING:
    from loom._event import Event

__all__ = [
    "DEFAULT_COST_CAP",
    "DEFAULT_LATENCY_BUDGET_MS",
    "DEFAULT_PRIVACY",
    "DEFAULT_QUALITY_THRESHOLD",
    "Outcome",
    "Privacy",
    "ProviderInfo",
    "Route",
    "RouterPolicy",
    "RoutingDecision",
    "RoutingParams",
    "RoutingRequest",
]

log = logging.getLogger("loom.router")


class Privacy(enum.StrEnum):
    """How far a request's data may travel, from least to most strict.

    ``public`` and ``sensitive`` may go to any provider. ``private`` and ``local-only``
    never go to a cloud provider, whatever a policy decides: the router enforces it after
    the policy. They differ in how they are decided: ``local-only`` is settled before any
    estimate (rule 1 of the rule policy: Local, confidence 1), while ``private`` goes
    through the policy like any request and a Cloud or Hybrid decision is rewritten to
    LocalFallback.
    """

    PUBLIC = "public"
    SENSITIVE = "sensitive"
    PRIVATE = "private"
    LOCAL_ONLY = "local-only"

    @property
    def rank(self) -> int:
        """0 for public up to 3 for local-only."""
        return _RANK[self]

    @property
    def allows_cloud(self) -> bool:
        """Whether a cloud provider may see the request."""
        return self.rank < _RANK[Privacy.PRIVATE]

    def stricter(self, other: Privacy) -> Privacy:
        """The stricter of two levels."""
        return self if self.rank >= other.rank else other

    @classmethod
    def parse(cls, value: object, *, missing: Privacy | None = None) -> Privacy:
        """Read a level; ``local_only`` and any case are accepted.

        Args:
            value: the text (or a :class:`Privacy`).
            missing: what an absent (None or empty) value means; sensitive by default,
                as upstream.

        Returns:
            The level. An unreadable one counts as ``local-only``: fail closed.
        """
        if isinstance(value, Privacy):
            return value
        if value is None or value == "":
            return missing or DEFAULT_PRIVACY
        text = str(value).strip().lower().replace("_", "-")
        try:
            return cls(text)
        except ValueError:
            log.warning("unknown privacy level %r: treated as local-only", value)
            return cls.LOCAL_ONLY


_RANK: Final = {
    Privacy.PUBLIC: 0,
    Privacy.SENSITIVE: 1,
    Privacy.PRIVATE: 2,
    Privacy.LOCAL_ONLY: 3,
}

#: Upstream's defaults (UPSTREAM.md §7).
DEFAULT_PRIVACY: Final = Privacy.SENSITIVE
DEFAULT_LATENCY_BUDGET_MS: Final = 200.0
DEFAULT_COST_CAP: Final = 0.01
DEFAULT_QUALITY_THRESHOLD: Final = 0.85


class Route(enum.StrEnum):
    """Where a request runs. The values are upstream's names."""

    LOCAL = "Local"
    CLOUD = "Cloud"
    #: Local first; the cloud provider takes over if the local one fails.
    HYBRID = "Hybrid"
    #: Local because cloud is not allowed or not worth it (cost, privacy, no provider).
    LOCAL_FALLBACK = "LocalFallback"
    #: Not now: try again later.
    DEFER = "Defer"
    #: Not at all.
    DROP = "Drop"

    @property
    def uses_cloud(self) -> bool:
        """Whether the route sends the request to a cloud provider."""
        return self in (Route.CLOUD, Route.HYBRID)

    @property
    def runs(self) -> bool:
        """Whether a provider runs the request (not Defer or Drop)."""
        return self not in (Route.DEFER, Route.DROP)


def _number(name: str, value: object, *, low: float = 0.0, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if math.isnan(number):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not low <= number <= high:
        raise ValueError(f"{name} must be within [{low:g}, {high:g}], got {value!r}")
    return number


@dataclass(frozen=True, kw_only=True)
class RoutingParams:
    """An agent's routing parameters (``routing.*`` in its parameters), upstream defaults.

    Attributes:
        privacy: the agent's privacy level; an event's own level can only make it
            stricter.
        latency_budget_ms: how long an answer may take.
        cost_cap: the most one request may cost.
        quality_threshold: the local confidence that is good enough (0..1).
    """

    privacy: Privacy = DEFAULT_PRIVACY
    latency_budget_ms: float = DEFAULT_LATENCY_BUDGET_MS
    cost_cap: float = DEFAULT_COST_CAP
    quality_threshold: float = DEFAULT_QUALITY_THRESHOLD

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, object]) -> RoutingParams:
        """Read ``routing.privacy``, ``routing.latency_budget_ms``, ``routing.cost_cap`` and
        ``routing.quality_threshold``; a bad value is logged and its default kept, as
        upstream does (an unknown privacy level counts as local-only: fail closed)."""
        values: dict[str, object] = {}
        if (privacy := parameters.get("routing.privacy")) is not None:
            values["privacy"] = Privacy.parse(privacy)
        for name, high in (
            ("latency_budget_ms", math.inf),
            ("cost_cap", math.inf),
            ("quality_threshold", 1.0),
        ):
            raw = parameters.get(f"routing.{name}")
            if raw is None:
                continue
            try:
                values[name] = _number(name, float(raw) if isinstance(raw, str) else raw, high=high)
            except ValueError as e:
                log.warning("routing.%s: %s; the default is used", name, e)
        return cls(**values)  # type: ignore[arg-type]  # keys and types checked above


@dataclass(frozen=True, kw_only=True)
class RoutingRequest:
    """What the router decides on.

    Attributes:
        privacy: how far the data may travel (a str is parsed).
        latency_budget_ms: how long an answer may take.
        cost_cap: the most the request may cost.
        quality_threshold: the local confidence that is good enough (0..1).
        event_type: the kind of input (``video_frame``, ``intent``, ...), for estimates
            and per-context learning.
        agent_id: the agent asking, if any (the decision event names it).
        event: the input event, for confidence estimators that look at it.
        request_id: unique per request (generated).

    Raises:
        ValueError: a number is negative, not finite, or the threshold is outside 0..1.
    """

    privacy: Privacy = DEFAULT_PRIVACY
    latency_budget_ms: float = DEFAULT_LATENCY_BUDGET_MS
    cost_cap: float = DEFAULT_COST_CAP
    quality_threshold: float = DEFAULT_QUALITY_THRESHOLD
    event_type: str = ""
    agent_id: str = ""
    event: Event | None = field(default=None, compare=False, repr=False)
    request_id: str = field(default_factory=new_event_id)

    def __post_init__(self) -> None:
        object.__setattr__(self, "privacy", Privacy.parse(self.privacy))
        object.__setattr__(
            self, "latency_budget_ms", _number("latency_budget_ms", self.latency_budget_ms)
        )
        object.__setattr__(self, "cost_cap", _number("cost_cap", self.cost_cap))
        object.__setattr__(
            self,
            "quality_threshold",
            _number("quality_threshold", self.quality_threshold, high=1.0),
        )

    @classmethod
    def for_event(
        cls, event: Event, params: RoutingParams | None = None, *, agent_id: str = ""
    ) -> RoutingRequest:
        """The request for an event, under an agent's parameters.

        The privacy is the stricter of the agent's and the event's ``privacy`` metadata
        (missing counts as sensitive): upstream read only the event's; ours cannot be
        loosened by either side.
        """
        params = params or RoutingParams()
        privacy = Privacy.parse(event.metadata.get("privacy")).stricter(params.privacy)
        return cls(
            privacy=privacy,
            latency_budget_ms=params.latency_budget_ms,
            cost_cap=params.cost_cap,
            quality_threshold=params.quality_threshold,
            event_type=event.type,
            agent_id=agent_id,
            event=event,
        )


@dataclass(frozen=True, kw_only=True)
class ProviderInfo:
    """What a policy knows of a provider it may choose.

    Attributes:
        name: the provider's name.
        location: local or cloud.
        est_latency_ms: its expected latency, before anything is observed.
        cost_per_call: its expected cost per request.
    """

    name: str
    location: Location
    est_latency_ms: float
    cost_per_call: float


@dataclass(frozen=True, kw_only=True)
class RoutingDecision:
    """Where a request runs, and why.

    Attributes:
        route: the route.
        reason: why, in words (never empty).
        confidence: how sure the policy is (0..1).
        estimated_latency_ms: the expected latency.
        estimated_cost: the expected cost.
        provider: the provider that runs it (None for Defer and Drop, or when the policy
            leaves the choice to the router).
        fallback: the provider that takes over if ``provider`` fails, if any.
        policy: the policy that decided (``router`` when the router overrode it).
        context: the policy's name for the request's context (the bandit's bucket).
        request: the request decided on.
        guarded: the router changed the policy's decision to keep a privacy guarantee.
        decision_id: unique per decision.
    """

    route: Route
    reason: str
    confidence: float
    estimated_latency_ms: float
    estimated_cost: float
    provider: str | None = None
    fallback: str | None = None
    policy: str = ""
    context: str = ""
    request: RoutingRequest | None = field(default=None, compare=False)
    guarded: bool = False
    decision_id: str = field(default_factory=new_event_id)

    def metadata(self) -> dict[str, str]:
        """The decision as event metadata (upstream's keys, plus provider and policy, and
        the request's four routing fields, which upstream only logged)."""
        out = {
            "route": self.route.value,
            "reason": self.reason,
            "confidence": f"{self.confidence:.3f}",
            "est_latency_ms": f"{self.estimated_latency_ms:.0f}",
            "est_cost": f"{self.estimated_cost:.4f}",
            "provider": self.provider or "",
            "fallback": self.fallback or "",
            "policy": self.policy,
            "decision_id": self.decision_id,
        }
        if self.guarded:
            out["guarded"] = "true"
        if self.request is not None:
            r = self.request
            out.update(
                privacy=r.privacy.value,
                latency_budget_ms=f"{r.latency_budget_ms:g}",
                cost_cap=f"{r.cost_cap:g}",
                quality_threshold=f"{r.quality_threshold:g}",
                request_id=r.request_id,
            )
            if r.event_type:
                out["event_type"] = r.event_type
        return out


@dataclass(frozen=True)
class Outcome:
    """What happened when a decision ran.

    Attributes:
        latency_ms: how long the provider took.
        cost: what it cost.
        success: whether it answered.
        provider: the provider that ran (the decision's, unless its fallback ran).
    """

    latency_ms: float
    cost: float
    success: bool
    provider: str | None = None


@runtime_checkable
class RouterPolicy(Protocol):
    """Decides where requests run. Contribute one through ``loom_routing_policies``.

    :meth:`decide` must be quick and must not block (it runs on the event loop). Whatever
    it returns, the router enforces the privacy guarantee afterwards; if it raises or
    returns something invalid, the router logs it, counts it and routes Local.

    A policy that learns also implements ``record_outcome(decision, outcome)``, which the
    router calls from :meth:`~loom.models.ModelRouter.record_outcome`.
    """

    name: str

    def decide(self, request: RoutingRequest, providers: Sequence[ProviderInfo]) -> RoutingDecision:
        """Decide for ``request``; ``providers`` are those its privacy level allows."""
        ...
