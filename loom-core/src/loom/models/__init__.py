"""Models: the OpenAI-compatible LLM client, a deterministic stand-in, and the model router.

- :class:`OpenAIChatModel`: chat completions against OpenAI, vLLM, llama.cpp's server or
  any compatible endpoint, with streaming, tool calls, retries with backoff, timeouts and
  cancellation. Configured by :class:`OpenAIConfig` (from the environment by default).
- :class:`DeterministicModel`: no model at all; reproducible, clearly labelled answers,
  and tool calls when the prompt names a tool, so apps and tests run without an LLM.
- :class:`ModelRouter`: decides per request (:class:`RoutingRequest`) whether it runs
  Local, Cloud, Hybrid, LocalFallback, or is deferred or dropped, through a
  :class:`RouterPolicy` (:class:`RulePolicy`, upstream's rules; :class:`BanditPolicy`, a
  contextual bandit), keeps ``private`` and ``local-only`` requests off cloud providers,
  logs and publishes each decision, and runs the request.

Every model is a :class:`loom.tools.ChatModel`, so :class:`~loom.tools.ToolOrchestrator`
drives any of them (or a router's :meth:`ModelRouter.chat_model`). See ``docs/models.md``.
"""

from __future__ import annotations

from loom.models._assemble import TurnAssembler
from loom.models._bandit import CONVERGENCE_REQUESTS, ArmStats, BanditPolicy
from loom.models._chat import (
    ChatModel,
    Location,
    MessageLike,
    ModelTurn,
    StreamDelta,
    StreamingChatModel,
    ToolLike,
    Usage,
)
from loom.models._config import DEFAULT_BASE_URL, OpenAIConfig, Secret
from loom.models._deterministic import DETERMINISTIC_LABEL, DeterministicModel
from loom.models._errors import (
    RETRYABLE_STATUS,
    LLMAuthError,
    LLMConfigError,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
    LLMResponseError,
    LLMStatusError,
    LLMTimeoutError,
    RoutingError,
)
from loom.models._guard import ProviderEntry
from loom.models._openai import OpenAIChatModel
from loom.models._retry import Backoff, parse_retry_after
from loom.models._router import (
    DECISION_EVENT_TYPE,
    DEFAULT_ROUTING_TOPIC,
    ModelRouter,
    RoutedChatModel,
    RoutedTurn,
    RouterStats,
)
from loom.models._routing import (
    DEFAULT_COST_CAP,
    DEFAULT_LATENCY_BUDGET_MS,
    DEFAULT_PRIVACY,
    DEFAULT_QUALITY_THRESHOLD,
    Outcome,
    Privacy,
    ProviderInfo,
    Route,
    RouterPolicy,
    RoutingDecision,
    RoutingParams,
    RoutingRequest,
)
from loom.models._rules import (
    DEFAULT_CLOUD_COSTS,
    DEFAULT_OTHER_COST,
    ConfidenceEstimator,
    FixedConfidenceEstimator,
    RulePolicy,
)

__all__ = [
    "CONVERGENCE_REQUESTS",
    "DECISION_EVENT_TYPE",
    "DEFAULT_BASE_URL",
    "DEFAULT_CLOUD_COSTS",
    "DEFAULT_COST_CAP",
    "DEFAULT_LATENCY_BUDGET_MS",
    "DEFAULT_OTHER_COST",
    "DEFAULT_PRIVACY",
    "DEFAULT_QUALITY_THRESHOLD",
    "DEFAULT_ROUTING_TOPIC",
    "DETERMINISTIC_LABEL",
    "RETRYABLE_STATUS",
    "ArmStats",
    "Backoff",
    "BanditPolicy",
    "ChatModel",
    "ConfidenceEstimator",
    "DeterministicModel",
    "FixedConfidenceEstimator",
    "LLMAuthError",
    "LLMConfigError",
    "LLMConnectionError",
    "LLMError",
    "LLMRateLimitError",
    "LLMResponseError",
    "LLMStatusError",
    "LLMTimeoutError",
    "Location",
    "MessageLike",
    "ModelRouter",
    "ModelTurn",
    "OpenAIChatModel",
    "OpenAIConfig",
    "Outcome",
    "Privacy",
    "ProviderEntry",
    "ProviderInfo",
    "Route",
    "RoutedChatModel",
    "RoutedTurn",
    "RouterPolicy",
    "RouterStats",
    "RoutingDecision",
    "RoutingError",
    "RoutingParams",
    "RoutingRequest",
    "RulePolicy",
    "Secret",
    "StreamDelta",
    "StreamingChatModel",
    "ToolLike",
    "TurnAssembler",
    "Usage",
    "parse_retry_after",
]
