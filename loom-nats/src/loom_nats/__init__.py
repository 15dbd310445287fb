"""The Loom event bus across machines, on NATS JetStream."""

from __future__ import annotations

__all__: list[str] = []
