"""MCP tools as Loom capabilities, and Loom as an MCP server."""

from __future__ import annotations

__all__: list[str] = []
