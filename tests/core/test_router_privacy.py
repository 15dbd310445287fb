"""The privacy guarantee: a private or local-only request never reaches a cloud provider,
whatever the policy decides. Checked over random requests, provider sets and policies that
try their worst."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loom.models import (
    BanditPolicy,
    DeterministicModel,
    FixedConfidenceEstimator,
    Location,
    ModelRouter,
    Privacy,
    ProviderEntry,
    Route,
    RoutingDecision,
    RoutingError,
    RoutingRequest,
    RulePolicy,
)
from loom.tools import ModelTurn, ScriptedModel

requests = st.builds(
    RoutingRequest,
    privacy=st.sampled_from(list(Privacy)),
    latency_budget_ms=st.floats(0, 10_000, allow_nan=False),
    cost_cap=st.floats(0, 1, allow_nan=False),
    quality_threshold=st.floats(0, 1, allow_nan=False),
    event_type=st.sampled_from(["", "intent", "video_frame", "audio_chunk", "chat"]),
)

# Provider sets: names with their locations; at least one provider.
provider_sets = st.lists(
    st.tuples(st.sampled_from(["l1", "l2", "c1", "c2", "c3"]), st.sampled_from(list(Location))),
    min_size=1,
    max_size=5,
    unique_by=lambda p: p[0],
)


class Adversary:
    """A policy that decides whatever hypothesis draws: any route, any provider name (a
    cloud one on purpose, an unknown one, none), any numbers, garbage, or an exception.
    It ignores the admissible providers it is given."""

    name = "adversary"

    def __init__(self, draw_decision):
        self._draw = draw_decision

    def decide(self, request, providers):
        outcome = self._draw()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


decisions = st.one_of(
    st.builds(
        RoutingDecision,
        route=st.sampled_from(list(Route)),
        reason=st.text(min_size=1, max_size=20),
        confidence=st.floats(0, 1),
        estimated_latency_ms=st.floats(0, 1e6),
        estimated_cost=st.floats(0, 10),
        provider=st.one_of(st.none(), st.sampled_from(["l1", "l2", "c1", "c2", "c3", "ghost"])),
        fallback=st.one_of(st.none(), st.sampled_from(["c1", "c2", "l1"])),
    ),
    st.builds(RuntimeError, st.text(max_size=10)),
    st.just("not a decision"),
    st.builds(
        RoutingDecision,
        route=st.sampled_from(list(Route)),
        reason=st.just("bad numbers"),
        confidence=st.sampled_from([-1.0, 2.0, math.nan]),
        estimated_latency_ms=st.just(1.0),
        estimated_cost=st.just(0.0),
        provider=st.sampled_from(["c1", "c2"]),
    ),
)


def _router(policy, provider_set):
    entries = [
        ProviderEntry(
            name=name,
            model=DeterministicModel(name)
            if location is Location.LOCAL
            else ScriptedModel([ModelTurn.answer("cloud")], repeat_last=True),
            location=location,
        )
        for name, location in provider_set
    ]
    return ModelRouter(policy, entries)


def _assert_kept(router, request, decision):
    if request.privacy.allows_cloud:
        return
    for name in (decision.provider, decision.fallback):
        if name is not None:
            assert router.providers[name].location is Location.LOCAL, (request, decision)
    assert not decision.route.uses_cloud
    if decision.route.runs:
        assert decision.provider is not None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests, provider_set=provider_sets, data=st.data())
def test_no_policy_can_send_a_private_request_to_the_cloud(request, provider_set, data):
    router = _router(Adversary(lambda: data.draw(decisions)), provider_set)
    decision = router.decide(request)
    _assert_kept(router, request, decision)
    assert decision.reason
    assert 0.0 <= decision.confidence <= 1.0


@settings(max_examples=200, deadline=None)
@given(
    request=requests,
    provider_set=provider_sets,
    value=st.floats(0, 1),
    strategy=st.sampled_from(["thompson", "ucb1"]),
    seed=st.integers(0, 2**16),
)
def test_the_built_in_policies_keep_it_too(request, provider_set, value, strategy, seed):
    for policy in (
        RulePolicy(FixedConfidenceEstimator(value)),
        BanditPolicy(strategy=strategy, seed=seed),
    ):
        router = _router(policy, provider_set)
        _assert_kept(router, request, router.decide(request))


@settings(max_examples=60, deadline=None)
@given(privacy=st.sampled_from([Privacy.PRIVATE, Privacy.LOCAL_ONLY]), data=st.data())
async def test_a_cloud_model_is_never_called_for_a_private_request(privacy, data):
    # Run the requests, not just the decisions: the cloud models record every call.
    clouds = [ScriptedModel([ModelTurn.answer("leak")], repeat_last=True) for _ in range(2)]
    entries = [
        ProviderEntry(name="c1", model=clouds[0], location=Location.CLOUD),
        ProviderEntry(name="l1", model=DeterministicModel("l1"), location=Location.LOCAL),
        ProviderEntry(name="c2", model=clouds[1], location=Location.CLOUD),
    ]
    router = ModelRouter(Adversary(lambda: data.draw(decisions)), entries)
    for _ in range(5):
        try:
            result = await router.run(
                RoutingRequest(privacy=privacy), [{"role": "user", "content": "x"}]
            )
        except RoutingError as e:  # Defer or Drop: nothing ran anywhere
            assert not e.decision.route.runs
            continue
        assert result.provider == "l1"
    assert clouds[0].requests == [] and clouds[1].requests == []
