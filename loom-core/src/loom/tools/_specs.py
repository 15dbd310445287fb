"""Capability descriptors as OpenAI tool specs."""

from __future__ import annotations

import json
from typing import Any

from loom._action import CapabilityDescriptor
from loom.tools._model import ToolSpec

__all__ = ["PERMISSIVE_PARAMETERS", "tool_parameters", "tool_spec"]

#: The parameters offered for a capability without a usable input schema (as upstream).
PERMISSIVE_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}

_SCHEMA_KEYS = ("input_schema", "schema")
_DESCRIPTION_KEYS = ("desc", "description")


def tool_parameters(descriptor: CapabilityDescriptor) -> dict[str, Any]:
    """The input schema from the descriptor's metadata, or a permissive object schema when
    it is missing, not JSON, or not an object schema."""
    for key in _SCHEMA_KEYS:
        text = descriptor.metadata.get(key)
        if not text:
            continue
        try:
            schema = json.loads(text)
        except ValueError:
            break
        if isinstance(schema, dict) and schema.get("type", "object") == "object":
            return schema
        break
    return dict(PERMISSIVE_PARAMETERS)


def tool_spec(descriptor: CapabilityDescriptor, tool_name: str) -> ToolSpec:
    """``{"type": "function", "function": {name, description, parameters}}``.

    The description is the ``desc`` (or ``description``) metadata, else the capability's
    name, so that a model sees the original name even where the tool name had to change.
    """
    description = next(
        (descriptor.metadata[k] for k in _DESCRIPTION_KEYS if descriptor.metadata.get(k)),
        descriptor.name,
    )
    return {
        "type": "function",
        "function": {
            "name": tool_name,
            "description": description,
            "parameters": tool_parameters(descriptor),
        },
    }
