"""A learning routing policy: a contextual bandit over providers."""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from loom.models._chat import Location
from loom.models._routing import (
    Outcome,
    ProviderInfo,
    Route,
    RoutingDecision,
    RoutingRequest,
)

__all__ = ["CONVERGENCE_REQUESTS", "ArmStats", "BanditPolicy"]

#: Requests within which the bandit converges in the simulated workload of the tests and
#: docs (provider A answers 95 % of requests in 100 ms, B 60 % in 300 ms; budget 200 ms):
#: after this many, at least 90 % of the next 200 requests go to A. Measured over seeds
#: 0..199: Thompson sampling sends at least 96 % of requests 101..300 to A, UCB1 (which
#: explores longer) at least 91.5 % of requests 501..700.
CONVERGENCE_REQUESTS: Final[Mapping[str, int]] = MappingProxyType({"thompson": 100, "ucb1": 500})

_EMA: Final = 0.2  # weight of a new observation in the latency and cost averages


@dataclass
class ArmStats:
    """What the bandit knows of one provider in one context.

    Attributes:
        alpha: Beta posterior: prior plus the sum of rewards.
        beta: Beta posterior: prior plus the sum of (1 - reward).
        pulls: outcomes recorded (discounted, if the policy discounts).
        reward_sum: the rewards' sum (discounted alike).
        latency_ms: moving average of observed latency (the provider's estimate before).
        cost: moving average of observed cost (the provider's estimate before).
    """

    alpha: float
    beta: float
    pulls: float
    reward_sum: float
    latency_ms: float
    cost: float

    @property
    def mean(self) -> float:
        """The posterior mean reward."""
        return self.alpha / (self.alpha + self.beta)


class BanditPolicy:
    """A contextual bandit: learns per context which provider serves best.

    Each context (event type, privacy level and latency-budget bucket) keeps a Beta
    posterior per provider over a reward in [0, 1]: 0 for a failure, otherwise
    ``1 - latency_weight * min(1, latency / budget) - cost_weight * min(1, cost / cap)``.
    ``thompson`` samples each posterior and picks the highest sample; ``ucb1`` picks the
    highest mean plus ``sqrt(2 ln n / n_i)``, trying each provider once first. Outcomes
    arrive through :meth:`~loom.models.ModelRouter.record_outcome`.

    In the simulated workload of the tests (A: 95 % success in 100 ms; B: 60 % in 300 ms;
    budget 200 ms; seeded), at least 90 % of the 200 requests after the first
    :data:`CONVERGENCE_REQUESTS` go to A: after 100 requests with Thompson sampling, after
    500 with UCB1.

    Args:
        strategy: ``thompson`` (default) or ``ucb1``.
        seed: seeds the sampling, for reproducible runs.
        rng: the random source (instead of ``seed``).
        latency_weight: how much slowness costs in the reward.
        cost_weight: how much spending costs in the reward.
        discount: each outcome first multiplies a provider's evidence by this (1.0: keep
            all; 0.99: forget slowly, to follow providers that change).
        max_contexts: contexts remembered; the least recently used is forgotten first.
        prior: the Beta prior ``(alpha, beta)`` of a new provider in a context.
        latency_buckets_ms: the budget bucket bounds that split contexts.
    """

    name = "bandit"

    def __init__(
        self,
        *,
        strategy: Literal["thompson", "ucb1"] = "thompson",
        seed: int | None = None,
        rng: random.Random | None = None,
        latency_weight: float = 0.3,
        cost_weight: float = 0.2,
        discount: float = 1.0,
        max_contexts: int = 1024,
        prior: tuple[float, float] = (1.0, 1.0),
        latency_buckets_ms: Sequence[float] = (100.0, 500.0, 2000.0),
    ) -> None:
        if strategy not in ("thompson", "ucb1"):
            raise ValueError(f"strategy must be 'thompson' or 'ucb1', got {strategy!r}")
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be within (0, 1], got {discount!r}")
        if max_contexts < 1:
            raise ValueError(f"max_contexts must be >= 1, got {max_contexts!r}")
        if prior[0] <= 0 or prior[1] <= 0:
            raise ValueError(f"a Beta prior is positive, got {prior!r}")
        for label, weight in (("latency_weight", latency_weight), ("cost_weight", cost_weight)):
            if not 0.0 <= weight <= 1.0:
                raise ValueError(f"{label} must be within [0, 1], got {weight!r}")
        self.strategy = strategy
        self._rng = rng or random.Random(seed)
        self.latency_weight = latency_weight
        self.cost_weight = cost_weight
        self.discount = discount
        self.max_contexts = max_contexts
        self.prior = prior
        self.latency_buckets_ms = tuple(sorted(latency_buckets_ms))
        self._contexts: OrderedDict[str, dict[str, ArmStats]] = OrderedDict()

    # -- contexts ----------------------------------------------------------------------

    def context_of(self, request: RoutingRequest) -> str:
        """The context a request falls in: ``event_type|privacy|budget bucket``."""
        budget = request.latency_budget_ms
        bucket = next((f"<{b:g}ms" for b in self.latency_buckets_ms if budget < b), "slow")
        return f"{request.event_type or '*'}|{request.privacy.value}|{bucket}"

    def arms(self, context: str) -> dict[str, ArmStats]:
        """What is known in ``context``, by provider (a copy)."""
        return {
            name: ArmStats(**vars(arm)) for name, arm in self._contexts.get(context, {}).items()
        }

    def _arms(self, context: str) -> dict[str, ArmStats]:
        arms = self._contexts.get(context)
        if arms is None:
            arms = self._contexts[context] = {}
            while len(self._contexts) > self.max_contexts:
                self._contexts.popitem(last=False)
        else:
            self._contexts.move_to_end(context)
        return arms

    def _arm(self, arms: dict[str, ArmStats], provider: ProviderInfo) -> ArmStats:
        arm = arms.get(provider.name)
        if arm is None:
            arm = arms[provider.name] = ArmStats(
                alpha=self.prior[0],
                beta=self.prior[1],
                pulls=0.0,
                reward_sum=0.0,
                latency_ms=provider.est_latency_ms,
                cost=provider.cost_per_call,
            )
        return arm

    # -- deciding ----------------------------------------------------------------------

    def decide(self, request: RoutingRequest, providers: Sequence[ProviderInfo]) -> RoutingDecision:
        """Choose a provider among ``providers`` for ``request``'s context."""
        context = self.context_of(request)
        if not providers:
            return RoutingDecision(
                route=Route.DROP,
                reason="bandit: no provider may take this request",
                confidence=0.0,
                estimated_latency_ms=0.0,
                estimated_cost=0.0,
                policy=self.name,
                context=context,
                request=request,
            )
        arms = self._arms(context)
        candidates = [(p, self._arm(arms, p)) for p in providers]
        if self.strategy == "thompson":
            scores = [self._rng.betavariate(arm.alpha, arm.beta) for _, arm in candidates]
        else:
            scores = self._ucb1([arm for _, arm in candidates])
        best = max(range(len(candidates)), key=scores.__getitem__)
        provider, arm = candidates[best]
        confidence = arm.mean if self.strategy == "thompson" else self._mean(arm)
        return RoutingDecision(
            route=Route.LOCAL if provider.location is Location.LOCAL else Route.CLOUD,
            reason=(
                f"bandit ({self.strategy}) chose {provider.name} in context {context}: "
                f"expected reward {self._mean(arm):.3f} over {arm.pulls:g} outcomes, "
                f"score {scores[best]:.3f}"
            ),
            confidence=confidence,
            estimated_latency_ms=arm.latency_ms,
            estimated_cost=arm.cost,
            provider=provider.name,
            policy=self.name,
            context=context,
            request=request,
        )

    @staticmethod
    def _mean(arm: ArmStats) -> float:
        return arm.reward_sum / arm.pulls if arm.pulls > 0 else 0.5

    def _ucb1(self, arms: list[ArmStats]) -> list[float]:
        total = sum(a.pulls for a in arms)
        scores: list[float] = []
        for arm in arms:
            if arm.pulls <= 0:
                scores.append(math.inf)  # try each provider once
            else:
                bonus = math.sqrt(2.0 * math.log(max(total, 1.0)) / arm.pulls)
                scores.append(arm.reward_sum / arm.pulls + bonus)
        return scores

    # -- learning ----------------------------------------------------------------------

    def reward(self, request: RoutingRequest | None, outcome: Outcome) -> float:
        """The reward of an outcome, in [0, 1]."""
        if not outcome.success:
            return 0.0
        budget = request.latency_budget_ms if request is not None else 1000.0
        cap = request.cost_cap if request is not None else 0.01
        slow = min(1.0, max(0.0, outcome.latency_ms) / budget) if budget > 0 else 1.0
        if cap > 0:
            spend = min(1.0, max(0.0, outcome.cost) / cap)
        else:
            spend = 1.0 if outcome.cost > 0 else 0.0
        return min(1.0, max(0.0, 1.0 - self.latency_weight * slow - self.cost_weight * spend))

    def record_outcome(self, decision: RoutingDecision, outcome: Outcome) -> None:
        """Learn from what happened to a decision this policy made."""
        provider = outcome.provider or decision.provider
        if provider is None:
            return
        context = decision.context or (
            self.context_of(decision.request) if decision.request is not None else ""
        )
        arms = self._arms(context)
        arm = arms.get(provider)
        if arm is None:
            arm = arms[provider] = ArmStats(
                alpha=self.prior[0],
                beta=self.prior[1],
                pulls=0.0,
                reward_sum=0.0,
                latency_ms=outcome.latency_ms,
                cost=outcome.cost,
            )
        reward = self.reward(decision.request, outcome)
        if self.discount < 1.0:
            a0, b0 = self.prior
            arm.alpha = a0 + (arm.alpha - a0) * self.discount
            arm.beta = b0 + (arm.beta - b0) * self.discount
            arm.pulls *= self.discount
            arm.reward_sum *= self.discount
        arm.alpha += reward
        arm.beta += 1.0 - reward
        arm.pulls += 1.0
        arm.reward_sum += reward
        arm.latency_ms += _EMA * (outcome.latency_ms - arm.latency_ms)
        arm.cost += _EMA * (outcome.cost - arm.cost)
