"""Keeps the last finished spans in memory and prints one trace as a tree.

The flagship registers it with the app's telemetry (``Telemetry.add_span_processor``) to
show, at the end, how one trace follows a sensor reading from the source through the
monitor, the alert, the caretaker, the model and the actuators. Real deployments send
spans to a collector instead: set ``otlp_endpoint`` in ``[telemetry]``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

#: The attribute that says most about a span, by span name.
_DETAIL = (
    "messaging.destination.name",
    "loom.capability",
    "gen_ai.provider.name",
)


class TraceLog(SpanProcessor):
    """The last ``limit`` finished spans."""

    def __init__(self, limit: int = 4096) -> None:
        self.spans: deque[ReadableSpan] = deque(maxlen=limit)

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def render(self, trace_id: str) -> list[str]:
        """The spans of one trace (hex id), as indented lines in start order."""
        spans = [
            s
            for s in self.spans
            if s.context is not None and f"{s.context.trace_id:032x}" == trace_id
        ]
        by_id = {s.context.span_id: s for s in spans if s.context is not None}
        children: dict[int | None, list[ReadableSpan]] = {}
        for span in spans:
            parent = span.parent.span_id if span.parent is not None else None
            children.setdefault(parent if parent in by_id else None, []).append(span)
        lines: list[str] = []

        def walk(parent: int | None, depth: int) -> None:
            for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
                attributes = span.attributes or {}
                detail = next((str(attributes[k]) for k in _DETAIL if k in attributes), "")
                agent = attributes.get("loom.agent.id")
                if agent:
                    detail = f"agent {agent}"
                took = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
                lines.append(
                    f"{'  ' * depth}{span.name} {detail} ({took:.1f} ms)".replace("  (", " (")
                )
                assert span.context is not None
                walk(span.context.span_id, depth + 1)

        walk(None, 0)
        return lines
