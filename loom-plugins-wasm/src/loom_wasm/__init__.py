"""Sandboxed WebAssembly capabilities for Loom."""

from __future__ import annotations

__all__: list[str] = []
