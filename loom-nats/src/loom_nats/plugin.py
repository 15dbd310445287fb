"""The ``nats`` plugin: what loom-nats contributes to the Loom host through its hooks.

Loaded through the entry point ``nats`` in group ``loom``. It imports nothing heavy:
dependencies load inside the factories it contributes.
"""

from __future__ import annotations

__all__: list[str] = []
