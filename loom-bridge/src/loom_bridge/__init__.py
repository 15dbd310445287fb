"""The loom.v1 gRPC bridge and the SDK for remote agents."""

from __future__ import annotations

__all__: list[str] = []
