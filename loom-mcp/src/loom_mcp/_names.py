"""Capability names as MCP tool names, and back.

MCP recommends tool names matching ``^[A-Za-z0-9_.-]{1,128}$``; Loom capability names may
hold other characters, notably the ``:`` of ``server:tool``. The mapping:

- ``:`` becomes ``__`` (``everything:echo`` -> ``everything__echo``);
- any other character outside the allowed set becomes ``_``;
- a name longer than 128 characters keeps its first 119 and gains ``-`` and 8 hex digits
  of its SHA-256;
- when two capabilities map to the same tool name, the later one (in sorted order) gains
  ``-2``, ``-3``, ...
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

__all__ = ["MAX_TOOL_NAME", "mcp_tool_name", "tool_name_table"]

MAX_TOOL_NAME = 128
_INVALID = re.compile(r"[^A-Za-z0-9_.-]")


def mcp_tool_name(capability: str) -> str:
    """The MCP tool name of a capability, before collisions are resolved."""
    name = _INVALID.sub("_", capability.replace(":", "__")) or "_"
    if len(name) > MAX_TOOL_NAME:
        digest = hashlib.sha256(capability.encode()).hexdigest()[:8]
        name = f"{name[: MAX_TOOL_NAME - 9]}-{digest}"
    return name


def tool_name_table(capabilities: Iterable[str]) -> dict[str, str]:
    """Tool name -> capability name for a set of capabilities, every tool name unique."""
    table: dict[str, str] = {}
    for capability in sorted(set(capabilities)):
        base = mcp_tool_name(capability)
        name, n = base, 1
        while name in table:
            n += 1
            suffix = f"-{n}"
            name = base[: MAX_TOOL_NAME - len(suffix)] + suffix
        table[name] = capability
    return table
