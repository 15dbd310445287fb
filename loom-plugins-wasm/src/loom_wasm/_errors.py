"""Errors: a plugin that cannot load, and the kinds a failed call is classified into."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from pathlib import Path

from loom.actions import CapabilityError, ErrorCode
from loom.errors import LoomError

__all__ = ["ErrorKind", "WasmLoadError", "call_error"]


class ErrorKind(enum.StrEnum):
    """Why a WASM call failed; ``details["kind"]`` of the ``CAPABILITY_ERROR`` it answers."""

    #: The call used up its fuel (CPU bound, about one unit per wasm instruction).
    FUEL = "fuel"
    #: The wall-clock deadline passed (epoch interruption).
    TIMEOUT = "timeout"
    #: The guest hit the memory cap (a failed ``memory.grow`` that ended in a trap).
    MEMORY = "memory"
    #: The guest trapped: ``unreachable``, out-of-bounds access, stack overflow, exit.
    TRAP = "trap"
    #: The guest broke the ABI: a pointer outside its memory, a wrong result shape.
    ABI = "abi"
    #: The output is not UTF-8 JSON, or is larger than the output cap.
    OUTPUT = "output"
    #: The guest reported a failure itself (the ABI's error flag).
    GUEST = "guest"


class WasmLoadError(LoomError, ValueError):
    """A WASM plugin cannot be loaded: its manifest, module, imports or exports are wrong.

    Attributes:
        path: the manifest or module file at fault.
        reason: what is wrong, in words.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def call_error(
    kind: ErrorKind,
    message: str,
    *,
    plugin: str,
    capability: str,
    code: str = ErrorCode.CAPABILITY_ERROR,
    details: Mapping[str, str] | None = None,
) -> CapabilityError:
    """A :class:`~loom.actions.CapabilityError` for a failed WASM call.

    Args:
        kind: the classification, stored as ``details["kind"]``.
        message: what happened; prefixed with the plugin and capability.
        plugin: the plugin's name.
        capability: the capability's name.
        code: the error code; ``CAPABILITY_ERROR`` unless the guest chose another.
        details: extra context (limits, trap code, stderr tail).
    """
    merged = {"kind": str(kind), "plugin": plugin, "capability": capability}
    merged.update(details or {})
    return CapabilityError(
        code, f"wasm plugin {plugin!r}, capability {capability!r}: {message}", details=merged
    )
