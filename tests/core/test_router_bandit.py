"""The learning policy: a contextual bandit that converges to the better provider."""

from __future__ import annotations

import random

import pytest

from loom.models import (
    CONVERGENCE_REQUESTS,
    BanditPolicy,
    DeterministicModel,
    Location,
    ModelRouter,
    Outcome,
    Privacy,
    ProviderEntry,
    Route,
    RoutingRequest,
)
from loom.tools import ModelTurn, ScriptedModel

# The simulated workload: A succeeds 95 % of the time in 100 ms, B 60 % in 300 ms.
WORKLOAD = {"A": (0.95, 100.0), "B": (0.60, 300.0)}


def _providers(location_a=Location.CLOUD, location_b=Location.CLOUD):
    return [
        ProviderEntry(name="A", model=ScriptedModel([ModelTurn.answer("a")]), location=location_a),
        ProviderEntry(name="B", model=ScriptedModel([ModelTurn.answer("b")]), location=location_b),
    ]


def simulate(router: ModelRouter, requests: int, seed: int, workload=WORKLOAD) -> list[str]:
    """Route ``requests`` requests, draw each outcome from the workload, feed it back."""
    world = random.Random(seed)
    chosen: list[str] = []
    for _ in range(requests):
        decision = router.decide(RoutingRequest(privacy="public", event_type="intent"))
        success_rate, latency = workload[decision.provider]
        success = world.random() < success_rate
        router.record_outcome(decision, latency, 0.0, success)
        chosen.append(decision.provider)
    return chosen


@pytest.mark.parametrize("strategy", ["thompson", "ucb1"])
@pytest.mark.parametrize("seed", range(10))
def test_it_converges_to_the_better_provider(strategy, seed):
    """After CONVERGENCE_REQUESTS[strategy] requests (100 for Thompson sampling, 500 for
    UCB1), at least 90 % of the next 200 go to A."""
    router = ModelRouter(BanditPolicy(strategy=strategy, seed=seed), _providers())
    warmup = CONVERGENCE_REQUESTS[strategy]
    chosen = simulate(router, warmup + 200, seed=10_000 + seed)
    last = chosen[warmup:]
    assert len(last) == 200
    assert last.count("A") >= 180, f"{last.count('A')} of 200 to A"
    assert "B" in chosen[:warmup], "it explored"


def test_it_follows_the_workload_not_the_names():
    swapped = {"A": WORKLOAD["B"], "B": WORKLOAD["A"]}
    router = ModelRouter(BanditPolicy(seed=3), _providers())
    chosen = simulate(router, 300, seed=4, workload=swapped)
    assert chosen[100:].count("B") >= 180


def test_contexts_learn_separately():
    policy = BanditPolicy(seed=5)
    router = ModelRouter(policy, _providers())
    world = random.Random(6)
    for _ in range(400):
        for event_type, best in (("intent", "A"), ("video_frame", "B")):
            d = router.decide(RoutingRequest(privacy="public", event_type=event_type))
            ok = world.random() < (0.95 if d.provider == best else 0.3)
            router.record_outcome(d, 100.0, 0.0, ok)
    intent = policy.arms("intent|public|<500ms")
    video = policy.arms("video_frame|public|<500ms")
    assert intent["A"].mean > intent["B"].mean + 0.3
    assert video["B"].mean > video["A"].mean + 0.3


def test_the_reward_weighs_success_latency_and_cost():
    policy = BanditPolicy()
    request = RoutingRequest(latency_budget_ms=200, cost_cap=0.01)
    assert policy.reward(request, Outcome(50, 0.0, False)) == 0.0
    assert policy.reward(request, Outcome(0, 0.0, True)) == 1.0
    assert policy.reward(request, Outcome(100, 0.0, True)) == pytest.approx(0.85)
    assert policy.reward(request, Outcome(10_000, 0.0, True)) == pytest.approx(0.7)
    assert policy.reward(request, Outcome(0, 0.005, True)) == pytest.approx(0.9)
    assert policy.reward(request, Outcome(10_000, 1.0, True)) == pytest.approx(0.5)


def test_decisions_carry_route_estimates_and_context():
    policy = BanditPolicy(seed=1)
    router = ModelRouter(policy, _providers(location_a=Location.LOCAL))
    d = router.decide(RoutingRequest(privacy="public", latency_budget_ms=50))
    assert d.route is (Route.LOCAL if d.provider == "A" else Route.CLOUD)
    assert d.context == "*|public|<100ms" and d.policy == "bandit"
    assert d.estimated_latency_ms == (50.0 if d.provider == "A" else 500.0)
    assert "bandit (thompson) chose" in d.reason
    router.record_outcome(d, 80.0, 0.0, True)
    arm = policy.arms(d.context)[d.provider]
    assert arm.pulls == 1 and arm.latency_ms != d.estimated_latency_ms


def test_a_private_request_only_learns_among_local_providers():
    policy = BanditPolicy(seed=2)
    router = ModelRouter(policy, _providers(location_a=Location.LOCAL))
    for _ in range(50):
        d = router.decide(RoutingRequest(privacy=Privacy.PRIVATE))
        assert d.provider == "A" and d.route is Route.LOCAL
        router.record_outcome(d, 10.0, 0.0, False)  # even when A keeps failing


def test_no_admissible_provider_is_a_drop():
    router = ModelRouter(BanditPolicy(), _providers())
    d = router.decide(RoutingRequest(privacy="local-only"))
    assert d.route is Route.DROP and "no provider may take" in d.reason


def test_discount_forgets_so_it_follows_a_change():
    policy = BanditPolicy(seed=7, discount=0.95)
    router = ModelRouter(policy, _providers())
    simulate(router, 300, seed=8)
    chosen = simulate(router, 400, seed=9, workload={"A": WORKLOAD["B"], "B": WORKLOAD["A"]})
    assert chosen[-200:].count("B") >= 170


def test_contexts_are_bounded():
    policy = BanditPolicy(max_contexts=3, seed=0)
    router = ModelRouter(policy, _providers())
    for n in range(10):
        d = router.decide(RoutingRequest(event_type=f"type{n}", privacy="public"))
        router.record_outcome(d, 10.0, 0.0, True)
    assert len(policy._contexts) == 3
    assert policy.arms("type0|public|<500ms") == {}
    assert policy.arms("type9|public|<500ms") != {}


async def test_run_feeds_outcomes_back_by_itself():
    policy = BanditPolicy(seed=11)
    router = ModelRouter(
        policy,
        [
            ProviderEntry(name="det", model=DeterministicModel(), location=Location.LOCAL),
            ProviderEntry(
                name="cloud", model=ScriptedModel([ModelTurn.answer("c")], repeat_last=True)
            ),
        ],
    )
    request = RoutingRequest(privacy="public")
    for _ in range(10):
        await router.run(request, [{"role": "user", "content": "hi"}])
    arms = policy.arms(policy.context_of(request))
    assert sum(a.pulls for a in arms.values()) == 10


def test_a_policy_that_fails_to_learn_is_counted_not_raised():
    class Forgetful(BanditPolicy):
        def record_outcome(self, decision, outcome):
            raise KeyError("lost my notes")

    router = ModelRouter(Forgetful(seed=0), _providers())
    d = router.decide(RoutingRequest(privacy="public"))
    router.record_outcome(d, 1.0, 0.0, True)
    assert router.stats.policy_errors == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strategy": "epsilon"}, "strategy must be"),
        ({"discount": 0}, "discount must be within"),
        ({"max_contexts": 0}, "max_contexts must be"),
        ({"prior": (0, 1)}, "Beta prior is positive"),
        ({"latency_weight": 2}, "latency_weight must be within"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        BanditPolicy(**options)
