"""The ``mcp`` plugin: what loom-mcp contributes to the Loom host through its hooks.

Loaded through the entry point ``mcp`` in group ``loom``. It imports nothing heavy:
dependencies load inside the factories it contributes.
"""

from __future__ import annotations

__all__: list[str] = []
