"""The model router: a policy decides, the router keeps the privacy guarantee, logs, publishes,
runs the request on the chosen provider and feeds the outcome back."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from loom._event import Event, new_event_id
from loom.models._chat import ChatModel, MessageLike, ToolLike
from loom.models._errors import RoutingError
from loom.models._guard import DEFAULT_LOCAL_LATENCY_MS, ProviderEntry, ProviderTable
from loom.models._routing import (
    Outcome,
    ProviderInfo,
    Route,
    RouterPolicy,
    RoutingDecision,
    RoutingRequest,
)
from loom.telemetry import _switch
from loom.tools import ModelTurn
from loom.topics import validate_topic

if TYPE_CHECKING:
    from loom.bus import EventBus

__all__ = [
    "DECISION_EVENT_TYPE",
    "DEFAULT_ROUTING_TOPIC",
    "ModelRouter",
    "RoutedChatModel",
    "RoutedTurn",
    "RouterStats",
]

log = logging.getLogger("loom.router")

#: The type of the event each decision is published as.
DECISION_EVENT_TYPE: Final = "routing.decision"
#: The topic decisions are published on unless the router is given another.
DEFAULT_ROUTING_TOPIC: Final = "runtime.routing"


@dataclass
class RouterStats:
    """What the router has done.

    Attributes:
        decisions: decisions by route.
        policy_errors: decisions the policy failed (raised or returned garbage), and
            outcomes it failed to learn from.
        guarded: decisions the router changed to keep the privacy guarantee.
        publish_errors: decision events the bus refused.
        provider_failures: failed calls by provider.
        fallbacks: requests a decision's fallback provider served.
    """

    decisions: Counter[str] = field(default_factory=Counter)
    policy_errors: int = 0
    guarded: int = 0
    publish_errors: int = 0
    provider_failures: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0


@dataclass(frozen=True)
class RoutedTurn:
    """A routed request's answer.

    Attributes:
        decision: the router's decision.
        turn: the model's answer.
        provider: the provider that answered (the decision's, or its fallback).
        latency_ms: how long that provider took.
        cost: what it cost.
    """

    decision: RoutingDecision
    turn: ModelTurn
    provider: str
    latency_ms: float
    cost: float


class ModelRouter:
    """Decides per request where it runs (Local, Cloud, Hybrid, LocalFallback, Defer, Drop)
    and runs it there.

    The policy decides; the router then enforces what no policy may change: a
    ``private`` or ``local-only`` request never reaches a cloud provider (a Cloud or
    Hybrid decision becomes LocalFallback; a cloud provider named by the policy is
    replaced; with no local provider the request is dropped). It fills in the provider
    for a route (the first local or cloud provider given), and a fallback: Hybrid runs
    local first and falls back to cloud, Cloud falls back to local. A policy that
    raises or returns an invalid decision is logged and counted, and the request routes
    Local ("router error fallback to local"), as upstream.

    Every decision is logged on ``loom.router`` (with the decision's fields under the
    record's ``routing`` attribute) and, given a bus, published as a
    ``routing.decision`` event on ``topic``.

    Args:
        policy: the :class:`~loom.models.RouterPolicy`.
        providers: name to chat model (local when the model's ``location`` says so), or
            :class:`ProviderEntry` records; the first local and the first cloud one are
            the defaults for their routes.
        bus: where decisions are published, if anywhere.
        topic: the topic they are published on.
        source: the events' source when a request names no agent (else ``agent.{id}``).

    Raises:
        ValueError: no providers, or two with one name.
    """

    def __init__(
        self,
        policy: RouterPolicy,
        providers: Mapping[str, ChatModel] | Iterable[ProviderEntry],
        *,
        bus: EventBus | None = None,
        topic: str = DEFAULT_ROUTING_TOPIC,
        source: str = "router",
    ) -> None:
        entries = (
            [ProviderEntry.of(name, model) for name, model in providers.items()]
            if isinstance(providers, Mapping)
            else list(providers)
        )
        self._table = ProviderTable(entries)
        self.policy = policy
        self.bus = bus
        self.topic = validate_topic(topic)
        self.source = source
        self.stats = RouterStats()

    @property
    def providers(self) -> Mapping[str, ProviderEntry]:
        """The providers, by name."""
        return dict(self._table.entries)

    def admissible(self, request: RoutingRequest) -> list[ProviderInfo]:
        """The providers ``request``'s privacy level allows, as a policy sees them."""
        return self._table.admissible(request)

    # -- deciding ----------------------------------------------------------------------

    def decide(self, request: RoutingRequest) -> RoutingDecision:
        """Decide for ``request``, enforce the privacy guarantee, count and log it.

        Never raises for a policy's failure: that routes Local, as upstream.
        """
        policy_name = str(getattr(self.policy, "name", type(self.policy).__name__))
        try:
            proposed = ProviderTable.validate(
                self.policy.decide(request, self._table.admissible(request))
            )
        except Exception as e:  # any policy failure routes Local, counted
            self.stats.policy_errors += 1
            log.error(
                "routing policy %r failed: %s: %s; router error fallback to local",
                policy_name,
                type(e).__name__,
                e,
                exc_info=e,
            )
            proposed = RoutingDecision(
                route=Route.LOCAL,
                reason=(
                    f"router error fallback to local: policy {policy_name!r} failed with "
                    f"{type(e).__name__}: {e}"
                ),
                confidence=0.0,
                estimated_latency_ms=DEFAULT_LOCAL_LATENCY_MS,
                estimated_cost=0.0,
                policy="router",
            )
        decision = self._table.settle(request, proposed, policy_name)
        self.stats.decisions[decision.route.value] += 1
        if decision.guarded:
            self.stats.guarded += 1
        self._log(decision)
        return decision

    async def route(self, request: RoutingRequest) -> RoutingDecision:
        """:meth:`decide`, then publish the decision on the bus (if the router has one).

        A bus that refuses the event is logged and counted; the decision stands.
        """
        decision = self.decide(request)
        if self.bus is not None:
            await self._publish(decision)
        return decision

    def _log(self, decision: RoutingDecision) -> None:
        fields = decision.metadata()
        log.info(
            "route=%s provider=%s confidence=%s est_latency_ms=%s est_cost=%s policy=%s "
            "privacy=%s latency_budget_ms=%s cost_cap=%s quality_threshold=%s reason=%s",
            fields["route"],
            fields["provider"] or "-",
            fields["confidence"],
            fields["est_latency_ms"],
            fields["est_cost"],
            fields["policy"],
            fields.get("privacy", "-"),
            fields.get("latency_budget_ms", "-"),
            fields.get("cost_cap", "-"),
            fields.get("quality_threshold", "-"),
            fields["reason"],
            extra={"routing": fields},
        )

    async def _publish(self, decision: RoutingDecision) -> None:
        assert self.bus is not None
        request = decision.request
        source = f"agent.{request.agent_id}" if request is not None and request.agent_id else ""
        metadata = decision.metadata()
        event = Event(
            DECISION_EVENT_TYPE,
            json.dumps(metadata).encode(),
            source=source or self.source,
            metadata=metadata,
            confidence=decision.confidence,
            tags=("router",),
            priority=50,
        )
        try:
            await self.bus.publish(self.topic, event)
        except Exception as e:  # noqa: BLE001  # the decision stands; the event is best effort
            self.stats.publish_errors += 1
            log.warning(
                "routing decision not published on %s: %s: %s", self.topic, type(e).__name__, e
            )

    # -- learning ----------------------------------------------------------------------

    def record_outcome(
        self,
        decision: RoutingDecision,
        latency_ms: float,
        cost: float,
        success: bool,
        *,
        provider: str | None = None,
    ) -> None:
        """Tell the policy what happened to a decision (a learning policy updates from it).

        Args:
            decision: the decision that ran.
            latency_ms: how long the provider took.
            cost: what it cost.
            success: whether it answered.
            provider: the provider that ran, if not the decision's (its fallback).
        """
        if not success and provider is not None:
            self.stats.provider_failures[provider] += 1
        record = getattr(self.policy, "record_outcome", None)
        if record is None:
            return
        try:
            record(decision, Outcome(latency_ms, cost, success, provider or decision.provider))
        except Exception as e:  # noqa: BLE001  # a policy that cannot learn still routes
            self.stats.policy_errors += 1
            log.error("routing policy failed to record an outcome: %s: %s", type(e).__name__, e)

    # -- running -----------------------------------------------------------------------

    async def run(
        self,
        request: RoutingRequest,
        messages: Sequence[MessageLike],
        tools: Sequence[ToolLike] = (),
    ) -> RoutedTurn:
        """Route ``request``, ask the chosen provider (then its fallback, if it fails),
        record the outcome, and return the answer with the decision.

        Raises:
            RoutingError: the decision is Defer or Drop.
            Exception: what the last provider tried raised (an
                :class:`~loom.models.LLMError` for the OpenAI-compatible client).
        """
        run = self._run(request, messages, tools)
        hook = _switch.llm
        if hook is None:
            return await run
        routed: RoutedTurn = await hook.route(self, request, run)
        return routed

    async def _run(
        self,
        request: RoutingRequest,
        messages: Sequence[MessageLike],
        tools: Sequence[ToolLike],
    ) -> RoutedTurn:
        decision = await self.route(request)
        if not decision.route.runs or decision.provider is None:
            raise RoutingError(
                f"request {request.request_id} not run: {decision.route.value}: {decision.reason}",
                decision,
            )
        names = [decision.provider] + ([decision.fallback] if decision.fallback else [])
        failures: list[Exception] = []
        for name in names:
            entry = self._table.entries[name]
            started = time.perf_counter()
            try:
                turn = await entry.model.complete(
                    [dict(m) for m in messages], [dict(t) for t in tools]
                )
            except Exception as e:  # noqa: BLE001  # try the fallback; re-raised when none is left
                latency = (time.perf_counter() - started) * 1000
                self.record_outcome(decision, latency, 0.0, False, provider=name)
                log.warning(
                    "provider %r failed for request %s: %s: %s",
                    name,
                    request.request_id,
                    type(e).__name__,
                    e,
                )
                failures.append(e)
                continue
            latency = (time.perf_counter() - started) * 1000
            cost_of = getattr(entry.model, "cost_of", None)
            cost = (
                float(cost_of(turn))
                if cost_of is not None
                else self._table.infos[name].cost_per_call
            )
            self.record_outcome(decision, latency, cost, True, provider=name)
            if name != decision.provider:
                self.stats.fallbacks += 1
            return RoutedTurn(decision, turn, name, latency, cost)
        if len(failures) > 1:
            raise failures[-1] from failures[0]
        raise failures[0]

    def chat_model(self, request: RoutingRequest | None = None) -> RoutedChatModel:
        """A :class:`~loom.tools.ChatModel` that routes every call as ``request`` (with a
        fresh request id), for the tool orchestrator."""
        return RoutedChatModel(self, request or RoutingRequest())

    async def aclose(self) -> None:
        """Close every provider that can be closed."""
        for entry in self._table.entries.values():
            close = getattr(entry.model, "aclose", None)
            if close is not None:
                await close()


class RoutedChatModel:
    """A chat model that asks the router where each call runs.

    Attributes:
        last: the last call's :class:`RoutedTurn`, if any.
    """

    def __init__(self, router: ModelRouter, request: RoutingRequest) -> None:
        self.router = router
        self.request = request
        self.last: RoutedTurn | None = None

    async def complete(
        self, messages: Sequence[MessageLike], tools: Sequence[ToolLike] = (), **_: Any
    ) -> ModelTurn:
        """Route and run one call."""
        request = dataclasses.replace(self.request, request_id=new_event_id())
        self.last = await self.router.run(request, messages, tools)
        return self.last.turn
