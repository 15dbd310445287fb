"""Python functions as providers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loom._action import ActionCall, CapabilityDescriptor, ProviderKind
from loom.actions._capability import CapabilityFunction, capability_metadata, first_paragraph
from loom.actions._provider import Provider
from loom.contributions import Capability

__all__ = ["NativeProvider"]


class NativeProvider(Provider):
    """Runs a Python function, sync or async, as a capability.

    A :func:`~loom.actions.capability` function brings its name, version, description and
    schemas; a plain function gets its schemas derived the same way. Keyword arguments
    override what the function brings. An explicit ``input_schema`` is what the descriptor
    advertises; when it differs from the one derived from the signature, the broker
    validates payloads against it before the signature's model converts them.

    Args:
        function: a :class:`~loom.actions.CapabilityFunction` or any callable.
        name: the capability's name (required for a plain callable without ``__name__``).
        version: its version.
        description: one line for tool lists.
        input_schema: the advertised JSON Schema of the input.
        output_schema: the advertised JSON Schema of the output.
        metadata: extra descriptor metadata.
        provider: the provider kind the descriptor shows (NATIVE unless a plugin wraps
            another kind in a Python function).
        max_concurrency: calls it may run at once; None takes the broker's bound.

    Raises:
        TypeError: the function's signature cannot be made a schema.
        ValueError: no name.
    """

    def __init__(
        self,
        function: CapabilityFunction[..., Any] | Callable[..., Any],
        *,
        name: str | None = None,
        version: str | None = None,
        description: str | None = None,
        input_schema: Mapping[str, Any] | None = None,
        output_schema: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
        provider: ProviderKind = ProviderKind.NATIVE,
        max_concurrency: int | None = None,
    ) -> None:
        if not isinstance(function, CapabilityFunction):
            base_name = name or str(getattr(function, "__name__", ""))
            function = CapabilityFunction(
                function,
                name=base_name,
                version=version or "1.0",
                description=first_paragraph(function) if description is None else description,
            )
        self.function = function
        derived_input = function.input_schema
        advertised_input = derived_input if input_schema is None else dict(input_schema)
        self.validates_input = advertised_input == derived_input
        self.max_concurrency = max_concurrency
        self.descriptor = CapabilityDescriptor(
            name or function.name,
            version or function.version,
            provider,
            capability_metadata(
                function.description if description is None else description,
                advertised_input,
                function.output_schema if output_schema is None else output_schema,
                {**function.metadata, **(metadata or {})},
            ),
        )
        self._run = function.run

    def __repr__(self) -> str:
        d = self.descriptor
        return f"<NativeProvider {d.name}:{d.version} {self.function!r}>"

    @classmethod
    def from_contribution(cls, record: Capability) -> NativeProvider:
        """The provider for a ``loom_capabilities`` record (its handler a plain or
        :func:`~loom.actions.capability` function)."""
        return cls(
            record.handler,
            name=record.name,
            version=record.version,
            description=record.description or None,
            input_schema=record.input_schema,
            output_schema=record.output_schema,
            metadata=record.metadata,
            provider=record.provider,
        )

    async def invoke(self, call: ActionCall) -> bytes:
        """Validate the payload, run the function and return its output as bytes."""
        return await self._run(call)
