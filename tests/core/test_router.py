"""The model router and upstream's rule policy (UPSTREAM.md §7)."""

from __future__ import annotations

import json
import logging

import pytest

from loom import Event, QoS
from loom.bus import MemoryBus
from loom.models import (
    DECISION_EVENT_TYPE,
    DEFAULT_ROUTING_TOPIC,
    DeterministicModel,
    FixedConfidenceEstimator,
    LLMStatusError,
    Location,
    ModelRouter,
    OpenAIChatModel,
    Privacy,
    ProviderEntry,
    Route,
    RoutingDecision,
    RoutingError,
    RoutingParams,
    RoutingRequest,
    RulePolicy,
)
from loom.models.testing import ChatCompletionsServer, Reply
from loom.tools import ModelTurn, ScriptedModel

USER = [{"role": "user", "content": "hello"}]


def cloud(text: str = "from the cloud") -> ScriptedModel:
    return ScriptedModel([ModelTurn.answer(text)], repeat_last=True)


def providers(*, local: bool = True, remote: bool = True) -> list[ProviderEntry]:
    out = []
    if local:
        out.append(
            ProviderEntry(name="local", model=DeterministicModel("local"), location=Location.LOCAL)
        )
    if remote:
        out.append(ProviderEntry(name="cloud", model=cloud(), location=Location.CLOUD))
    return out


def rules(value: float = 0.87, types=("video_frame", "audio_chunk", "face_event")) -> RulePolicy:
    return RulePolicy(FixedConfidenceEstimator(value, types))


# -- upstream's rules -------------------------------------------------------------------


def test_upstream_defaults():
    request = RoutingRequest()
    assert request.privacy is Privacy.SENSITIVE
    assert (request.latency_budget_ms, request.cost_cap, request.quality_threshold) == (
        200.0,
        0.01,
        0.85,
    )


def test_rule_1_local_only_stays_local():
    d = rules().decide(RoutingRequest(privacy="local-only", event_type="intent"))
    assert d.route is Route.LOCAL and d.confidence == 1.0
    assert "local-only" in d.reason
    assert (d.estimated_latency_ms, d.estimated_cost) == (50.0, 0.0)


def test_rule_2_confident_enough_is_local():
    d = rules(0.87).decide(RoutingRequest(event_type="video_frame"))
    assert d.route is Route.LOCAL and d.confidence == 0.87 and d.estimated_latency_ms == 50.0


def test_rule_3_a_tight_budget_is_local():
    d = rules(0.2).decide(RoutingRequest(event_type="video_frame", latency_budget_ms=99))
    assert d.route is Route.LOCAL and "latency budget 99 ms" in d.reason


def test_rule_4_over_the_cost_cap_is_local_fallback():
    d = rules(0.2).decide(RoutingRequest(event_type="video_frame", cost_cap=0.004))
    assert d.route is Route.LOCAL_FALLBACK and d.estimated_cost == 0.0
    assert "cloud cost 0.0050 > cost cap 0.0040" in d.reason


def test_rule_5_middling_confidence_is_hybrid():
    d = rules(0.7).decide(RoutingRequest(event_type="audio_chunk"))
    assert d.route is Route.HYBRID and d.confidence == 0.7
    assert (d.estimated_latency_ms, d.estimated_cost) == (300.0, 0.002)


def test_rule_6_otherwise_cloud():
    d = rules(0.3).decide(RoutingRequest(event_type="face_event"))
    assert d.route is Route.CLOUD and d.confidence == 0.0
    assert (d.estimated_latency_ms, d.estimated_cost) == (500.0, 0.001)


def test_unsupported_types_have_confidence_zero():
    d = rules(0.99).decide(RoutingRequest(event_type="chat"))
    assert d.route is Route.CLOUD and "cannot estimate 'chat'" in d.reason


@pytest.mark.parametrize(
    ("event_type", "cost"),
    [("video_frame", 0.005), ("audio_chunk", 0.002), ("intent", 0.01), ("other", 0.001)],
)
def test_upstream_cost_table(event_type, cost):
    assert RulePolicy().cloud_cost(event_type) == cost
    d = RulePolicy(FixedConfidenceEstimator(0.0, ())).decide(
        RoutingRequest(event_type=event_type, cost_cap=1.0)
    )
    assert d.estimated_cost == cost


def test_ac_7_1_every_decision_is_well_formed():
    for value in (0.0, 0.3, 0.7, 0.86, 1.0):
        for privacy in Privacy:
            d = rules(value).decide(RoutingRequest(privacy=privacy, event_type="video_frame"))
            assert d.reason and d.estimated_latency_ms > 0 and d.estimated_cost >= 0


def test_an_estimator_that_returns_garbage_is_an_error():
    class Broken:
        name = "broken"

        def supports_event_type(self, event_type):
            return True

        def estimate(self, request):
            return float("nan")

    with pytest.raises(ValueError, match="estimator 'broken' returned nan"):
        RulePolicy(Broken()).decide(RoutingRequest())


# -- requests from events and parameters ---------------------------------------------


def test_privacy_is_the_stricter_of_agent_and_event():
    public_agent = RoutingParams(privacy=Privacy.PUBLIC)
    event = Event("intent", metadata={"privacy": "private"})
    assert RoutingRequest.for_event(event, public_agent).privacy is Privacy.PRIVATE
    strict_agent = RoutingParams(privacy=Privacy.LOCAL_ONLY)
    assert (
        RoutingRequest.for_event(Event("x", metadata={"privacy": "public"}), strict_agent).privacy
        is Privacy.LOCAL_ONLY
    )
    assert (
        RoutingRequest.for_event(Event("x")).privacy is Privacy.SENSITIVE
    )  # missing counts as sensitive


def test_an_unknown_privacy_label_fails_closed(caplog):
    with caplog.at_level(logging.WARNING, logger="loom.router"):
        request = RoutingRequest.for_event(Event("x", metadata={"privacy": "secret-ish"}))
    assert request.privacy is Privacy.LOCAL_ONLY
    assert "unknown privacy level 'secret-ish'" in caplog.text


def test_params_from_agent_parameters_with_bad_values_falling_back(caplog):
    with caplog.at_level(logging.WARNING, logger="loom.router"):
        params = RoutingParams.from_parameters(
            {
                "routing.privacy": "PUBLIC",
                "routing.latency_budget_ms": "80",
                "routing.cost_cap": -1,
                "routing.quality_threshold": 1.5,
            }
        )
    assert params.privacy is Privacy.PUBLIC and params.latency_budget_ms == 80.0
    assert params.cost_cap == 0.01 and params.quality_threshold == 0.85
    assert "routing.cost_cap" in caplog.text and "routing.quality_threshold" in caplog.text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("latency_budget_ms", -5, "latency_budget_ms must be within"),
        ("cost_cap", float("nan"), "cost_cap must be a number"),
        ("quality_threshold", 2, "quality_threshold must be within"),
        ("cost_cap", "cheap", "cost_cap must be a number"),
    ],
)
def test_bad_requests_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        RoutingRequest(**{field: value})


# -- the router ---------------------------------------------------------------------------


def test_router_resolves_providers_per_route():
    router = ModelRouter(rules(), providers())
    local = router.decide(RoutingRequest(event_type="video_frame"))
    assert (local.route, local.provider, local.fallback) == (Route.LOCAL, "local", None)
    hybrid = ModelRouter(rules(0.7), providers()).decide(RoutingRequest(event_type="video_frame"))
    assert (hybrid.route, hybrid.provider, hybrid.fallback) == (Route.HYBRID, "local", "cloud")
    remote = ModelRouter(rules(0.1), providers()).decide(RoutingRequest(event_type="video_frame"))
    assert (remote.route, remote.provider, remote.fallback) == (Route.CLOUD, "cloud", "local")
    assert remote.policy == "rules" and remote.request is not None


def test_private_requests_are_kept_off_the_cloud_whatever_the_rules_say():
    router = ModelRouter(rules(0.1), providers())
    d = router.decide(RoutingRequest(privacy="private", event_type="video_frame"))
    assert d.route is Route.LOCAL_FALLBACK and d.provider == "local" and d.fallback is None
    assert d.guarded and "privacy private: Cloud refused" in d.reason
    assert router.stats.guarded == 1


def test_local_only_without_a_local_provider_is_dropped():
    router = ModelRouter(rules(), providers(local=False))
    d = router.decide(RoutingRequest(privacy="local-only"))
    assert d.route is Route.DROP and d.provider is None
    assert "no local provider may take the request" in d.reason


def test_public_requests_use_what_exists():
    only_cloud = ModelRouter(rules(0.99), providers(local=False))
    d = only_cloud.decide(RoutingRequest(privacy="public", event_type="video_frame"))
    assert (d.route, d.provider) == (Route.CLOUD, "cloud") and "no local provider" in d.reason
    only_local = ModelRouter(rules(0.1), providers(remote=False))
    d = only_local.decide(RoutingRequest(privacy="public", event_type="video_frame"))
    assert (d.route, d.provider) == (
        Route.LOCAL_FALLBACK,
        "local",
    ) and "no cloud provider" in d.reason


def test_a_policy_that_raises_falls_back_to_local(caplog):
    class Raises:
        name = "flaky"

        def decide(self, request, providers):
            raise RuntimeError("model of the world not loaded")

    router = ModelRouter(Raises(), providers())
    with caplog.at_level(logging.ERROR, logger="loom.router"):
        d = router.decide(RoutingRequest(privacy="public"))
    assert (d.route, d.provider) == (Route.LOCAL, "local")
    assert d.reason.startswith("router error fallback to local")
    assert "RuntimeError: model of the world not loaded" in d.reason
    assert d.policy == "router"
    assert router.stats.policy_errors == 1
    assert "routing policy 'flaky' failed" in caplog.text


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "Cloud",
        RoutingDecision(
            route="Cloud", reason="x", confidence=0.5, estimated_latency_ms=1, estimated_cost=0
        ),
        RoutingDecision(
            route=Route.CLOUD, reason="", confidence=0.5, estimated_latency_ms=1, estimated_cost=0
        ),
        RoutingDecision(
            route=Route.CLOUD, reason="x", confidence=1.5, estimated_latency_ms=1, estimated_cost=0
        ),
        RoutingDecision(
            route=Route.CLOUD,
            reason="x",
            confidence=0.5,
            estimated_latency_ms=float("inf"),
            estimated_cost=0,
        ),
        RoutingDecision(
            route=Route.CLOUD, reason="x", confidence=0.5, estimated_latency_ms=1, estimated_cost=-1
        ),
    ],
)
def test_a_policy_that_returns_garbage_falls_back_to_local(bad):
    class Garbage:
        name = "garbage"

        def decide(self, request, providers):
            return bad

    router = ModelRouter(Garbage(), providers())
    d = router.decide(RoutingRequest(privacy="public"))
    assert d.route is Route.LOCAL and d.reason.startswith("router error fallback to local")
    assert router.stats.policy_errors == 1


def test_an_unknown_provider_from_the_policy_is_replaced():
    class Names:
        name = "names"

        def decide(self, request, providers):
            return RoutingDecision(
                route=Route.CLOUD,
                reason="I like this one",
                confidence=0.5,
                estimated_latency_ms=10,
                estimated_cost=0,
                provider="gpt-9",
            )

    d = ModelRouter(Names(), providers()).decide(RoutingRequest(privacy="public"))
    assert d.provider == "cloud" and "unknown provider 'gpt-9'" in d.reason


def test_every_decision_is_logged_with_its_fields(caplog):
    router = ModelRouter(rules(0.7), providers())
    with caplog.at_level(logging.INFO, logger="loom.router"):
        router.decide(RoutingRequest(event_type="audio_chunk", cost_cap=0.5))
    [record] = [r for r in caplog.records if r.name == "loom.router"]
    fields = record.routing
    assert (
        fields["route"] == "Hybrid"
        and fields["provider"] == "local"
        and fields["fallback"] == "cloud"
    )
    assert fields["confidence"] == "0.700" and fields["est_latency_ms"] == "300"
    assert fields["est_cost"] == "0.0020" and fields["privacy"] == "sensitive"
    assert fields["cost_cap"] == "0.5" and fields["quality_threshold"] == "0.85"
    assert "route=Hybrid" in record.getMessage() and "reason=" in record.getMessage()


async def test_ac_7_2_decisions_are_published_on_the_bus():
    async with MemoryBus() as bus:
        sub = await bus.subscribe(DEFAULT_ROUTING_TOPIC, qos=QoS.BATCHED)
        router = ModelRouter(rules(), providers(), bus=bus)
        event = Event("video_frame", metadata={"privacy": "local-only"})
        params = RoutingParams(privacy=Privacy.LOCAL_ONLY)
        decision = await router.route(RoutingRequest.for_event(event, params, agent_id="cam"))
        topic, published = await sub.get()
    assert topic == "runtime.routing" and published.type == DECISION_EVENT_TYPE
    assert published.source == "agent.cam" and published.tags == ("router",)
    assert published.priority == 50 and published.confidence == decision.confidence == 1.0
    meta = published.metadata
    assert (
        meta["route"] == "Local"
        and "local-only" in meta["reason"]
        and meta["confidence"] == "1.000"
    )
    assert meta["est_latency_ms"] == "50" and meta["est_cost"] == "0.0000"
    assert meta["privacy"] == "local-only" and meta["event_type"] == "video_frame"
    assert json.loads(published.payload) == meta


async def test_a_bus_that_fails_does_not_fail_the_decision(caplog):
    class DownBus(MemoryBus):
        async def publish(self, topic, event):
            raise ConnectionError("bus is down")

    async with DownBus() as bus:
        router = ModelRouter(rules(), providers(), bus=bus)
        with caplog.at_level(logging.WARNING, logger="loom.router"):
            d = await router.route(RoutingRequest())
    assert d.route is Route.CLOUD
    assert router.stats.publish_errors == 1 and "bus is down" in caplog.text


def test_router_needs_unique_providers():
    with pytest.raises(ValueError, match="at least one provider"):
        ModelRouter(rules(), [])
    with pytest.raises(ValueError, match="two providers are named 'local'"):
        ModelRouter(rules(), providers() + providers(remote=False))


def test_providers_from_a_mapping_are_cloud_unless_they_say_local():
    router = ModelRouter(rules(), {"det": DeterministicModel(), "other": cloud()})
    assert router.providers["det"].location is Location.LOCAL
    assert router.providers["other"].location is Location.CLOUD


# -- running requests ------------------------------------------------------------------


async def test_run_answers_from_the_chosen_provider():
    router = ModelRouter(rules(0.1), providers())
    result = await router.run(RoutingRequest(privacy="public", event_type="video_frame"), USER)
    assert result.provider == "cloud" and result.turn.text == "from the cloud"
    assert result.decision.route is Route.CLOUD


async def test_a_cloud_endpoint_that_is_down_falls_back_to_local():
    async with ChatCompletionsServer() as server:
        server.script(*[Reply.status(503, "down")] * 2)
        endpoint = OpenAIChatModel(base_url=server.base_url, max_retries=1, backoff_base_s=0.01)
        router = ModelRouter(
            rules(0.1),
            [
                ProviderEntry(name="local", model=DeterministicModel(), location=Location.LOCAL),
                ProviderEntry(name="openai", model=endpoint, location=Location.CLOUD),
            ],
        )
        result = await router.run(RoutingRequest(privacy="public", event_type="video_frame"), USER)
        await router.aclose()
    assert result.decision.route is Route.CLOUD and result.provider == "local"
    assert result.turn.text.startswith("[deterministic model")
    assert router.stats.fallbacks == 1 and router.stats.provider_failures["openai"] == 1


async def test_when_every_provider_fails_the_last_error_is_raised():
    async with ChatCompletionsServer() as server:
        server.script(Reply.status(500, "one"), Reply.status(500, "two"))
        a = OpenAIChatModel(base_url=server.base_url, provider="a", max_retries=0, location="local")
        b = OpenAIChatModel(base_url=server.base_url, provider="b", max_retries=0)
        router = ModelRouter(rules(0.7), {"a": a, "b": b})
        with pytest.raises(LLMStatusError, match="two") as info:
            await router.run(RoutingRequest(event_type="video_frame"), USER)
        await router.aclose()
    assert isinstance(info.value.__cause__, LLMStatusError)


async def test_a_dropped_request_is_a_routing_error():
    router = ModelRouter(rules(), providers(local=False))
    with pytest.raises(RoutingError, match="Drop") as info:
        await router.run(RoutingRequest(privacy="local-only"), USER)
    assert info.value.decision.route is Route.DROP


async def test_defer_is_a_routing_error_too():
    class Later:
        name = "later"

        def decide(self, request, providers):
            return RoutingDecision(
                route=Route.DEFER,
                reason="busy hour",
                confidence=0.0,
                estimated_latency_ms=0,
                estimated_cost=0,
            )

    router = ModelRouter(Later(), providers())
    with pytest.raises(RoutingError, match="Defer: busy hour"):
        await router.run(RoutingRequest(), USER)


async def test_chat_model_routes_each_call():
    router = ModelRouter(rules(0.1), providers())
    model = router.chat_model(RoutingRequest(privacy="private", event_type="video_frame"))
    first = await model.complete(USER, [])
    assert first.text.startswith("[deterministic model")
    assert model.last is not None and model.last.decision.route is Route.LOCAL_FALLBACK
    first_id = model.last.decision.request.request_id
    await model.complete(USER, [])
    assert model.last.decision.request.request_id != first_id
    assert router.stats.decisions["LocalFallback"] == 2


# -- contributed through the hooks ---------------------------------------------------


async def test_providers_and_policies_are_contributed_through_the_hooks(loom_host):
    made = {p.name: p.factory for p in loom_host.model_providers()}
    policies = {p.name: p.factory for p in loom_host.routing_policies()}
    assert {"openai", "deterministic"} <= set(made) and {"rules", "bandit"} <= set(policies)
    openai = made["openai"](base_url="http://127.0.0.1:9/v1", model="m", location="local")
    assert isinstance(openai, OpenAIChatModel) and openai.location is Location.LOCAL
    router = ModelRouter(
        policies["rules"](estimator_value=0.95),
        {"deterministic": made["deterministic"](), "openai": openai},
    )
    d = router.decide(RoutingRequest(event_type="video_frame"))
    assert d.provider == "deterministic"
    assert policies["bandit"](seed=1, strategy="ucb1").strategy == "ucb1"
    await router.aclose()
