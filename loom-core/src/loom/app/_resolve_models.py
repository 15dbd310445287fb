"""Resolving ``[router]`` and ``[[models]]``: the policy and the providers, with the
defaults when no model is configured."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from loom.app._resolve_base import ResolverBase
from loom.contributions import ModelProvider
from loom.models import Location, ProviderEntry

__all__ = ["OPENAI_BASE_URL_ENV", "ModelResolver", "describe_models"]

#: The environment variable that, with no ``[[models]]``, adds the ``openai`` provider.
OPENAI_BASE_URL_ENV = "OPENAI_BASE_URL"


class ModelResolver(ResolverBase):
    """The routing policy and the model providers."""

    def _policy(self) -> Any:
        section = self.config.router
        record = self._named(
            "router.policy", "routing policy", section.policy, self.host.routing_policies()
        )
        if record is None:
            return None
        factory = record.factory
        return self._build(
            "router.options", f"routing policy {section.policy!r}", factory, **section.options
        )

    def _models(self) -> tuple[list[ProviderEntry], str]:
        records = self.host.model_providers()
        entries: list[ProviderEntry] = []
        if not self.config.models:
            return self._default_models(records)
        for index, model in enumerate(self.config.models):
            key = f"models[{index}]"
            record = self._named(f"{key}.provider", "model provider", model.provider, records)
            if record is None:
                continue
            factory = record.factory
            built = self._build(
                f"{key}.options", f"model provider {model.provider!r}", factory, **model.options
            )
            if built is None:
                continue
            location: object = model.location or getattr(built, "location", Location.CLOUD)
            try:
                where = Location(str(location))
            except ValueError:
                self.issue(f"{key}.location", f"the provider says {location!r}: give local/cloud")
                continue
            entries.append(
                ProviderEntry(
                    name=model.name,
                    model=built,
                    location=where,
                    est_latency_ms=model.est_latency_ms,
                    cost_per_call=model.cost_per_call,
                )
            )
        parts = [_describe_model(e) for e in entries]
        return entries, "reasoning: " + "; ".join(parts)

    def _default_models(self, records: Sequence[ModelProvider]) -> tuple[list[ProviderEntry], str]:
        by_name = {r.name: r for r in records}
        entries: list[ProviderEntry] = []
        deterministic = by_name.get("deterministic")
        if deterministic is None:
            self.issue(
                "models",
                "no [[models]] configured and no 'deterministic' model provider is installed",
            )
            return entries, ""
        model = self._build(
            "models",
            "model provider 'deterministic'",
            deterministic.factory,
        )
        if model is not None:
            entries.append(ProviderEntry.of("deterministic", model))
        base_url = os.environ.get(OPENAI_BASE_URL_ENV, "")
        openai = by_name.get("openai")
        if base_url and openai is not None:
            endpoint = self._build(
                "models",
                f"model provider 'openai' (from {OPENAI_BASE_URL_ENV})",
                openai.factory,
            )
            if endpoint is not None:
                entries.insert(0, ProviderEntry.of("openai", endpoint))
                return entries, (
                    f"reasoning: no [[models]] configured; {OPENAI_BASE_URL_ENV} is set, so "
                    f"the router can use {_describe_model(entries[0])}, with the deterministic "
                    "local provider as fallback"
                )
        return entries, (
            "reasoning: no model configured ([[models]] empty, "
            f"{OPENAI_BASE_URL_ENV} unset): the deterministic local provider answers; "
            "it is no LLM and labels every answer so"
        )


def _describe_model(entry: ProviderEntry) -> str:
    endpoint = getattr(entry.model, "endpoint", None)
    where = f" at {endpoint}" if isinstance(endpoint, str) and endpoint else ""
    return f"{entry.name!r} ({entry.location.value}{where})"


def describe_models(entries: Sequence[ProviderEntry]) -> Mapping[str, str]:
    """Each provider's name with a short description, for the console."""
    return {e.name: _describe_model(e) for e in entries}
