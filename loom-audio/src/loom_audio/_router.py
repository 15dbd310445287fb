"""The voice agent's decisions through loom's model router (``loom.models``).

The router always has one local provider, the deterministic :class:`LocalResponder`
wrapped as a chat model; with ``OPENAI_BASE_URL`` set it also has that endpoint, and the
routing policy picks per query. Without a model configured the local responder answers,
and the log says so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loom_audio._responder import LocalResponder

if TYPE_CHECKING:
    from loom.bus import EventBus
    from loom.models import ModelRouter, RoutingDecision
    from loom_audio._responder import Responder

__all__ = ["LocalResponderModel", "RouterResponder", "router_responder"]

log = logging.getLogger("loom_audio")

#: The system prompt sent to a language model for voice replies.
VOICE_SYSTEM_PROMPT = (
    "You are a voice assistant. Answer in one or two short spoken sentences, "
    "without lists, markup or emoji."
)


class LocalResponderModel:
    """A :class:`LocalResponder` as a loom chat model, local, so the router can pick it."""

    def __init__(self, responder: LocalResponder, name: str = "voice-local") -> None:
        from loom.models import Location

        self.responder = responder
        self.name = name
        self.model = "local-responder"
        self.location = Location.LOCAL

    def cost_of(self, turn: Any) -> float:
        """Always 0."""
        return 0.0

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
        **_: Any,
    ) -> Any:
        """Answer the last user message with the local responder."""
        from loom.models import ModelTurn

        text = ""
        for message in reversed(messages):
            if message.get("role") == "user" and isinstance(message.get("content"), str):
                text = message["content"]
                break
        return ModelTurn(
            text=self.responder.answer(text),
            finish_reason="stop",
            model=self.model,
            provider=self.name,
        )


class RouterResponder:
    """A :class:`~loom_audio.Responder` that asks the model router for each answer.

    Attributes:
        router: the router.
        last_decision: the last routing decision, if any.
        last_provider: the provider that answered last.
    """

    def __init__(
        self, router: ModelRouter, *, latency_budget_ms: float = 1500.0, agent_id: str = "voice"
    ) -> None:
        self.router = router
        self.latency_budget_ms = latency_budget_ms
        self.agent_id = agent_id
        self.last_decision: RoutingDecision | None = None
        self.last_provider = ""
        self.name = "router"

    async def respond(self, text: str) -> str:
        from loom.models import RoutingRequest

        request = RoutingRequest(
            latency_budget_ms=self.latency_budget_ms,
            event_type="user.query",
            agent_id=self.agent_id,
        )
        routed = await self.router.run(
            request,
            [{"role": "system", "content": VOICE_SYSTEM_PROMPT}, {"role": "user", "content": text}],
        )
        self.last_decision = routed.decision
        self.last_provider = routed.provider
        self.name = f"router:{routed.provider}"
        return routed.turn.text or ""


def router_responder(
    *,
    required: bool = False,
    capabilities: Callable[[], Sequence[str]] | None = None,
    bus: EventBus | None = None,
    environ: Mapping[str, str] | None = None,
) -> Responder | None:
    """A router-backed responder, or None when loom's model router is not available.

    Args:
        required: raise instead of returning None.
        capabilities: capability names for the local responder to list.
        bus: where routing decisions are published.
        environ: the environment to read ``OPENAI_BASE_URL`` from.

    Raises:
        ImportError: ``required`` and the router is not available.
    """
    try:
        from loom.models import ModelRouter, OpenAIChatModel, OpenAIConfig, RulePolicy
    except ImportError:
        if required:
            raise
        log.warning(
            "voice agent: loom's model router is not available; the local responder answers"
        )
        return None
    env = os.environ if environ is None else environ
    providers: dict[str, Any] = {
        "voice-local": LocalResponderModel(LocalResponder(capabilities or (lambda: [])))
    }
    if env.get("OPENAI_BASE_URL"):
        config = OpenAIConfig.from_env(environ=env)
        providers[config.provider] = OpenAIChatModel(config)
        log.info(
            "voice agent: the router chooses between the local responder and %s", config.base_url
        )
    else:
        log.info(
            "voice agent: no model configured (OPENAI_BASE_URL unset): the deterministic local "
            "responder answers (time, echo, capabilities), through the router"
        )
    return RouterResponder(ModelRouter(RulePolicy(), providers, bus=bus))
