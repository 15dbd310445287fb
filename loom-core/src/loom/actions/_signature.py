"""A function's signature as a pydantic input model and its return type as an output
adapter: JSON in, arguments out; return value in, JSON out."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic_core import PydanticSerializationError, to_json

from loom._action import ActionCall
from loom.actions._provider import CapabilityError, ErrorCode
from loom.actions._schema import pydantic_invalid_params

__all__ = ["Signature"]

_EMPTY = inspect.Parameter.empty


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004  # an object with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _annotation(hints: dict[str, Any], param: inspect.Parameter) -> Any:
    """The parameter's type: its hint, else the type of its default, else str (upstream)."""
    if param.name in hints:
        return hints[param.name]
    if param.default is _EMPTY:
        return str
    if param.default is None:
        return str | None
    return type(param.default)


class Signature:
    """What a capability function takes and gives, derived once from its type hints.

    Parameters become the fields of a pydantic model (extra inputs are refused unless the
    function takes ``**kwargs``); a parameter annotated :class:`~loom.ActionCall` receives
    the call itself and is left out of the schema. Every field is aliased to its parameter's
    name, so names like ``schema`` or ``_id`` that pydantic reserves still work.

    Args:
        fn: the function (sync or async).
        title: the input schema's title.

    Raises:
        TypeError: the function takes ``*args``, or its hints do not resolve or are not
            types pydantic can validate.
    """

    def __init__(self, fn: Callable[..., Any], title: str) -> None:
        self.fn = fn
        self.is_async = _is_async(fn)
        target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else fn.__call__  # type: ignore[operator]
        try:
            hints = typing.get_type_hints(target, include_extras=True)
            params = inspect.signature(fn).parameters.values()
        except (NameError, TypeError, ValueError) as exc:
            raise TypeError(f"capability {title!r}: cannot read the signature: {exc}") from exc
        fields: dict[str, Any] = {}
        self._positional: list[tuple[str, str]] = []  # (field, parameter), positional-only
        self._keyword: list[tuple[str, str]] = []
        self._call_params: list[str] = []  # parameters that receive the ActionCall
        self._var_keyword = False
        for param in params:
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                raise TypeError(f"capability {title!r}: *{param.name} cannot take JSON input")
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                self._var_keyword = True
                continue
            annotation = _annotation(hints, param)
            if annotation is ActionCall:
                self._call_params.append(param.name)
                continue
            field = f"f{len(fields)}"
            default = ... if param.default is _EMPTY else param.default
            fields[field] = (annotation, Field(default, alias=param.name))
            slot = self._positional if param.kind is param.POSITIONAL_ONLY else self._keyword
            slot.append((field, param.name))
        config = ConfigDict(extra="allow" if self._var_keyword else "forbid", title=title)
        try:
            self.input_model: type[BaseModel] = create_model("Input", __config__=config, **fields)
            self.input_schema: dict[str, Any] = self.input_model.model_json_schema()
        except Exception as exc:  # pydantic raises several kinds; name them all
            raise TypeError(f"capability {title!r}: unusable parameter types: {exc}") from exc
        returns = hints.get("return", _EMPTY)
        self._output: TypeAdapter[Any] | None = None
        self.output_schema: dict[str, Any] | None = None
        if returns is not _EMPTY and returns is not bytes:
            try:
                self._output = TypeAdapter(returns)
                self.output_schema = self._output.json_schema(mode="serialization")
            except Exception as exc:  # as above
                raise TypeError(f"capability {title!r}: unusable return type: {exc}") from exc

    def bind(self, payload: bytes, call: ActionCall | None) -> tuple[list[Any], dict[str, Any]]:
        """The arguments for a call with this JSON payload (empty means ``{}``).

        Raises:
            CapabilityError: INVALID_PARAMS naming the bad field.
        """
        try:
            model = self.input_model.model_validate_json(payload or b"{}")
        except ValidationError as exc:
            raise pydantic_invalid_params(exc) from None
        values = model.__dict__
        args = [values[field] for field, _ in self._positional]
        kwargs = {name: values[field] for field, name in self._keyword}
        if self._var_keyword and model.__pydantic_extra__:
            kwargs.update(model.__pydantic_extra__)
        for name in self._call_params:
            kwargs[name] = call
        return args, kwargs

    def encode(self, value: Any) -> bytes:
        """The function's return value as output bytes: bytes as they are, else JSON.

        Raises:
            CapabilityError: CAPABILITY_ERROR when the value does not match the return type.
        """
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        try:
            if self._output is None:
                return to_json(value)
            return self._output.dump_json(value, warnings="error")
        except (PydanticSerializationError, ValueError, TypeError) as exc:
            raise CapabilityError(
                ErrorCode.CAPABILITY_ERROR, f"the return value does not serialize: {exc}"
            ) from None
