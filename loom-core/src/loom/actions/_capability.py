"""``@capability``: a typed Python function as a capability, its schemas from its hints."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from loom._action import ActionCall, CapabilityDescriptor, ProviderKind
from loom.contributions import Capability

if TYPE_CHECKING:
    from loom.actions._signature import Signature

__all__ = ["CapabilityFunction", "capability", "capability_metadata", "first_paragraph"]

P = ParamSpec("P")
R = TypeVar("R")


def _compact(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def capability_metadata(
    description: str,
    input_schema: Mapping[str, Any] | None,
    output_schema: Mapping[str, Any] | None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Descriptor metadata, under the keys both upstream readers use.

    ``desc`` and ``description`` hold the description; ``input_schema`` and ``schema`` the
    input schema, and ``output_schema`` the output schema, as compact JSON. ``extra`` is
    merged last, so a caller may override any of them.
    """
    metadata: dict[str, str] = {}
    if description:
        metadata["desc"] = metadata["description"] = description
    if input_schema is not None:
        metadata["input_schema"] = metadata["schema"] = _compact(input_schema)
    if output_schema is not None:
        metadata["output_schema"] = _compact(output_schema)
    metadata.update(extra or {})
    return metadata


def first_paragraph(fn: Callable[..., Any]) -> str:
    """The first paragraph of a function's docstring, on one line ("" without one)."""
    doc = inspect.getdoc(fn) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


class CapabilityFunction(Generic[P, R]):
    """A function made a capability by :func:`capability`.

    Calling it calls the function unchanged. The broker runs it through :meth:`run`: the
    JSON payload is validated by the input model derived from the signature (a failure is
    ``INVALID_PARAMS`` naming the field), a sync function runs in a worker thread, and the
    return value becomes JSON (bytes are passed through).

    Attributes:
        name: the capability's name.
        version: its version.
        description: one line for tool lists.
        metadata: extra descriptor metadata.
        signature: the derived input model and output adapter.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str,
        version: str = "1.0",
        description: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        if not name:
            raise ValueError("a capability needs a name")
        functools.update_wrapper(self, fn)
        self._fn = fn
        self.name = name
        self.version = version
        self.description = description
        self.metadata = dict(metadata or {})
        # pydantic loads here, at the first decoration, not with `import loom.actions`.
        from loom.actions._signature import Signature

        self.signature: Signature = Signature(fn, title=name)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<capability {self.name}:{self.version} {self._fn!r}>"

    @property
    def input_schema(self) -> dict[str, Any]:
        """JSON Schema of the input, from the parameters."""
        return self.signature.input_schema

    @property
    def output_schema(self) -> dict[str, Any] | None:
        """JSON Schema of the output, from the return annotation (None without one)."""
        return self.signature.output_schema

    @property
    def descriptor(self) -> CapabilityDescriptor:
        """A new NATIVE descriptor with the schemas and description in its metadata."""
        return CapabilityDescriptor(
            self.name,
            self.version,
            ProviderKind.NATIVE,
            capability_metadata(
                self.description, self.input_schema, self.output_schema, self.metadata
            ),
        )

    @property
    def contribution(self) -> Capability:
        """The record a plugin returns from its ``loom_capabilities`` hook."""
        return Capability(
            name=self.name,
            description=self.description,
            handler=self,
            version=self.version,
            input_schema=self.input_schema,
            output_schema=self.output_schema,
            metadata=self.metadata,
        )

    async def run(self, call: ActionCall) -> bytes:
        """Run the function for ``call`` and return its output bytes.

        Raises:
            CapabilityError: INVALID_PARAMS for a payload the input model refuses, or
                CAPABILITY_ERROR for a return value that does not serialize.
            Exception: whatever the function raises.
        """
        signature = self.signature
        args, kwargs = signature.bind(call.payload, call)
        if signature.is_async:
            value: Any = await self._fn(*args, **kwargs)  # type: ignore[misc]
        else:
            import anyio.to_thread

            # Abandoned on cancel: a timed-out sync function cannot be stopped, but the
            # caller gets its answer at the deadline and the thread ends when it returns.
            value = await anyio.to_thread.run_sync(
                functools.partial(self._fn, *args, **kwargs), abandon_on_cancel=True
            )
            if inspect.isawaitable(value):
                value = await value
        return signature.encode(value)


@overload
def capability(name: Callable[P, R], /) -> CapabilityFunction[P, R]: ...


@overload
def capability(
    name: str | None = None,
    /,
    *,
    version: str = "1.0",
    description: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Callable[[Callable[P, R]], CapabilityFunction[P, R]]: ...


def capability(
    name: str | Callable[P, R] | None = None,
    /,
    *,
    version: str = "1.0",
    description: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> CapabilityFunction[P, R] | Callable[[Callable[P, R]], CapabilityFunction[P, R]]:
    """Make a function a capability, its input and output JSON schemas from its type hints.

    The input model is built once, here: each parameter is a field (an unannotated one
    takes the type of its default, else ``str``; a parameter annotated
    :class:`~loom.ActionCall` receives the call and is not part of the input). The return
    annotation gives the output schema (bytes are returned as they are). Sync functions run
    off the event loop; exceptions become ``CAPABILITY_ERROR`` with their message.

    Args:
        name: the capability's name; the function's name when left out.
        version: its version.
        description: one line for tool lists; the docstring's first paragraph by default.
        metadata: extra descriptor metadata (str to str).

    Returns:
        A :class:`CapabilityFunction`, still callable as the function. Register it with
        ``broker.register(NativeProvider(fn))``, or return ``fn.contribution`` from a
        plugin's ``loom_capabilities`` hook.

    Raises:
        TypeError: the function takes ``*args``, or a hint is not a type pydantic knows.

    Example:
        >>> @capability("text.upper", description="Upper-case a text")
        ... def upper(text: str, times: int = 1) -> str:
        ...     return text.upper() * times
        >>> upper("ab")
        'AB'
        >>> sorted(upper.input_schema["properties"])
        ['text', 'times']
    """
    if callable(name):
        fn = name
        return CapabilityFunction(fn, name=fn.__name__, description=first_paragraph(fn))

    def decorate(fn: Callable[P, R]) -> CapabilityFunction[P, R]:
        return CapabilityFunction(
            fn,
            name=name or fn.__name__,
            version=version,
            description=first_paragraph(fn) if description is None else description,
            metadata=metadata,
        )

    return decorate
