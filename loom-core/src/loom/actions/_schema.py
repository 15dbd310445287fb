"""Input validation: JSON Schema for providers that do not validate themselves, and error
messages that name the bad field for both JSON Schema and pydantic."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loom.actions._provider import CapabilityError, ErrorCode

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "INPUT_SCHEMA_KEYS",
    "PayloadValidator",
    "compile_input_validator",
    "invalid_params",
    "pydantic_invalid_params",
    "schema_from_metadata",
]

log = logging.getLogger("loom.actions")

#: Descriptor metadata keys that may hold the input schema, in order of preference
#: (``schema`` is what upstream's core reads).
INPUT_SCHEMA_KEYS = ("input_schema", "schema")

#: Checks a payload; raises :class:`CapabilityError` INVALID_PARAMS.
PayloadValidator = Callable[[bytes], None]


def invalid_params(field: str, message: str) -> CapabilityError:
    """INVALID_PARAMS naming ``field``, a JSON path ("$" is the input as a whole)."""
    return CapabilityError(
        ErrorCode.INVALID_PARAMS, f"{field}: {message}", details={"field": field}
    )


def _json_path(path: Sequence[Any]) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def pydantic_invalid_params(error: ValidationError) -> CapabilityError:
    """INVALID_PARAMS from a pydantic ``ValidationError``: every problem, each with its field.

    ``details["field"]`` names the first bad field.
    """
    problems = error.errors(include_url=False, include_input=False)
    if not problems:  # pragma: no cover - pydantic always reports at least one
        return invalid_params("$", str(error))
    fields = [_json_path(p["loc"]) for p in problems]
    message = "; ".join(f"{f}: {p['msg']}" for f, p in zip(fields, problems, strict=True))
    return CapabilityError(ErrorCode.INVALID_PARAMS, message, details={"field": fields[0]})


def schema_from_metadata(metadata: Mapping[str, str]) -> dict[str, Any] | None:
    """The input schema a descriptor's metadata carries, parsed, or None.

    Raises:
        ValueError: the schema is not JSON or not a JSON object.
    """
    for key in INPUT_SCHEMA_KEYS:
        text = metadata.get(key)
        if text:
            try:
                schema = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"metadata {key!r} is not JSON: {exc}") from None
            if not isinstance(schema, dict):
                raise ValueError(f"metadata {key!r} is not a JSON object")
            return schema
    return None


def compile_input_validator(name: str, metadata: Mapping[str, str]) -> PayloadValidator | None:
    """A validator for the input schema in ``metadata``, or None when there is none.

    A schema that cannot be used (not JSON, not a valid JSON Schema) is logged with the
    capability's name and left out: the capability still runs, unvalidated, as upstream
    offers such a capability with a permissive schema.
    """
    try:
        schema = schema_from_metadata(metadata)
    except ValueError as exc:
        log.warning("capability %r: input schema ignored: %s", name, exc)
        return None
    if schema is None:
        return None
    # On first use: only non-native providers with a schema need it. No stubs are required
    # (types-jsonschema is optional in the dev environment).
    import jsonschema  # type: ignore[import-untyped,unused-ignore]

    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        log.warning("capability %r: input schema ignored: %s", name, exc.message)
        return None
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    best_match = jsonschema.exceptions.best_match
    accepts = _compiled_acceptor(name, schema)

    def validate(payload: bytes) -> None:
        try:
            instance = json.loads(payload) if payload else {}
        except ValueError as exc:
            raise invalid_params("$", f"payload is not JSON ({exc})") from None
        if accepts is not None and accepts(instance):
            return
        error = best_match(validator.iter_errors(instance))
        if error is None:
            return
        path = list(error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            # The error sits on the object; name the missing property itself.
            missing = [k for k in error.validator_value if k not in error.instance]
            path.append(missing[0] if missing else "")
        raise invalid_params(_json_path(path), error.message)

    return validate


def _compiled_acceptor(name: str, schema: dict[str, Any]) -> Callable[[Any], bool] | None:
    """A fast check that accepts what ``jsonschema`` accepts, or None where it cannot.

    jsonschema's validator costs about 10 µs per call; fastjsonschema compiles the schema to
    Python and answers a valid payload in well under 1 µs. It only says yes: a payload it
    refuses goes to jsonschema, whose verdict and error message stand. Schemas using
    ``format`` keep jsonschema alone, since the two libraries check formats differently.
    """
    if '"format"' in json.dumps(schema):
        return None
    import fastjsonschema

    try:
        compiled = fastjsonschema.compile(schema)
    except (fastjsonschema.JsonSchemaDefinitionException, ValueError, TypeError) as exc:
        log.debug("capability %r: no compiled validator (%s)", name, exc)
        return None

    def accepts(instance: Any) -> bool:
        try:
            compiled(instance)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return accepts
