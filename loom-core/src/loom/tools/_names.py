"""Capability names as OpenAI tool names, and back.

OpenAI-compatible APIs take tool names matching ``[a-zA-Z0-9_-]{1,64}``; capability names
may hold dots, MCP's ``server:tool`` colons, any character, and any length. The map keeps
a valid name as it is, replaces the other characters with ``_``, and where that collides
or runs past 64 characters appends a short hash, so that every capability of one offer
gets a distinct tool name and the model's choice maps back to exactly one capability.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping

__all__ = ["MAX_TOOL_NAME", "TOOL_NAME_PATTERN", "ToolNameMap", "is_tool_name"]

#: What OpenAI-compatible APIs accept as a function name.
TOOL_NAME_PATTERN = re.compile(r"[a-zA-Z0-9_-]{1,64}")
#: The longest tool name.
MAX_TOOL_NAME = 64

_INVALID = re.compile(r"[^a-zA-Z0-9_-]")
_HASH_START = 8


def is_tool_name(name: str) -> bool:
    """Whether ``name`` is a valid OpenAI tool name."""
    return TOOL_NAME_PATTERN.fullmatch(name) is not None


def _sanitized(name: str) -> str:
    return _INVALID.sub("_", name)


def _hashed(name: str, taken: set[str]) -> str:
    """``{sanitized prefix}_{hash}``, the hash as long as needed to be free."""
    base = _sanitized(name)
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    for size in range(_HASH_START, len(digest) + 1, 4):
        candidate = f"{base[: MAX_TOOL_NAME - size - 1]}_{digest[:size]}"
        if candidate not in taken:
            return candidate
    # 64 hex digits all taken: the names came from an adversary; number the rest.
    count = 0
    while f"{base[:40]}_{digest[:16]}_{count}" in taken:
        count += 1
    return f"{base[:40]}_{digest[:16]}_{count}"


class ToolNameMap(Mapping[str, str]):
    """A reversible map from capability names to tool names, for one set of names.

    The result depends only on the set, not its order. As a mapping it maps capability
    names to tool names.

    Args:
        names: the capability names offered together.

    Example:
        >>> names = ToolNameMap(["fs:read_file", "web.search", "web_search"])
        >>> names["web_search"], names["fs:read_file"]
        ('web_search', 'fs_read_file')
        >>> names.capability(names["web.search"])
        'web.search'
    """

    def __init__(self, names: Iterable[str]) -> None:
        unique = sorted(set(names))
        forward = {n: n for n in unique if is_tool_name(n)}
        taken = set(forward)
        by_base: dict[str, list[str]] = {}
        for name in unique:
            if name not in forward:
                by_base.setdefault(_sanitized(name), []).append(name)
        crowded: list[str] = []
        for base, group in sorted(by_base.items()):
            if len(group) == 1 and base not in taken and is_tool_name(base):
                forward[group[0]] = base
                taken.add(base)
            else:
                crowded.extend(group)
        for name in sorted(crowded):
            tool = _hashed(name, taken)
            forward[name] = tool
            taken.add(tool)
        self._forward = forward
        self._backward = {tool: name for name, tool in forward.items()}

    def __getitem__(self, capability: str) -> str:
        return self._forward[capability]

    def __iter__(self) -> Iterator[str]:
        return iter(self._forward)

    def __len__(self) -> int:
        return len(self._forward)

    def capability(self, tool_name: str) -> str | None:
        """The capability behind a tool name the model used, or None for an unknown one."""
        return self._backward.get(tool_name)
