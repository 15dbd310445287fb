"""Factories behind core's ``loom_model_providers`` and ``loom_routing_policies`` records."""

from __future__ import annotations

from typing import Any

from loom.models._bandit import BanditPolicy
from loom.models._deterministic import DeterministicModel
from loom.models._openai import OpenAIChatModel
from loom.models._rules import FixedConfidenceEstimator, RulePolicy

__all__ = ["bandit_policy", "deterministic_provider", "openai_provider", "rules_policy"]


def openai_provider(**options: Any) -> OpenAIChatModel:
    """The ``openai`` provider: an OpenAI-compatible endpoint configured from options and
    the environment (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_MODEL``, or the
    variables named by ``api_key_env``, ``base_url_env``, ``model_env``).

    Raises:
        LLMConfigError: an option is unknown or out of range.
    """
    return OpenAIChatModel(**options)


def deterministic_provider(**options: Any) -> DeterministicModel:
    """The ``deterministic`` provider: no model, reproducible answers (see
    :class:`~loom.models.DeterministicModel`). Its one option is ``name``."""
    return DeterministicModel(**options)


def rules_policy(
    *,
    estimator_value: float | None = None,
    estimator_event_types: list[str] | None = None,
    **options: Any,
) -> RulePolicy:
    """The ``rules`` policy (upstream's six rules). ``estimator_value`` and
    ``estimator_event_types`` configure the fixed estimator; other options go to
    :class:`~loom.models.RulePolicy`."""
    estimator = options.pop("estimator", None)
    if estimator is None and (estimator_value is not None or estimator_event_types is not None):
        estimator = FixedConfidenceEstimator(
            0.87 if estimator_value is None else estimator_value,
            ("video_frame", "audio_chunk", "face_event")
            if estimator_event_types is None
            else estimator_event_types,
        )
    return RulePolicy(estimator, **options)


def bandit_policy(**options: Any) -> BanditPolicy:
    """The ``bandit`` policy (see :class:`~loom.models.BanditPolicy` for the options)."""
    return BanditPolicy(**options)
