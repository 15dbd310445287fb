"""The reserved collaboration event types, their priorities and tag, and the reports.

Every primitive ends with a ``collab.summary`` and, when it ends short, a ``collab.timeout``
first; both carry the primitive's envelope (thread and correlation) and say what happened in
their metadata, so an observer subscribed to ``thread.*.reply`` and ``thread.*.broadcast``
sees every outcome without knowing who ran it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from loom._envelope import Envelope
from loom._event import Event
from loom.bus import EventBus

__all__ = [
    "COLLAB_AWARD",
    "COLLAB_BARRIER",
    "COLLAB_CFP",
    "COLLAB_PRIORITY",
    "COLLAB_PROPOSAL",
    "COLLAB_REPLY",
    "COLLAB_REQUEST",
    "COLLAB_SUMMARY",
    "COLLAB_TAGS",
    "COLLAB_TIMEOUT",
]

COLLAB_REQUEST: Final = "collab.request"
COLLAB_REPLY: Final = "collab.reply"
COLLAB_CFP: Final = "collab.cfp"
COLLAB_PROPOSAL: Final = "collab.proposal"
COLLAB_AWARD: Final = "collab.award"
COLLAB_BARRIER: Final = "collab.barrier"
COLLAB_TIMEOUT: Final = "collab.timeout"
COLLAB_SUMMARY: Final = "collab.summary"

#: The tags every event a primitive publishes carries (upstream's).
COLLAB_TAGS: Final = ("collab",)

#: Upstream's priorities: 50 for requests and calls for proposals, 60 for awards, 40 for
#: timeouts and summaries; everything else the primitives publish takes the default 50.
COLLAB_PRIORITY: Final[Mapping[str, int]] = {
    COLLAB_REQUEST: 50,
    COLLAB_CFP: 50,
    COLLAB_AWARD: 60,
    COLLAB_TIMEOUT: 40,
    COLLAB_SUMMARY: 40,
}


async def publish_report(
    bus: EventBus,
    topic: str,
    event_type: str,
    envelope: Envelope,
    fields: Mapping[str, str],
) -> Event:
    """Publish a ``collab.summary`` or ``collab.timeout`` carrying ``envelope`` and ``fields``."""
    metadata = dict(fields)
    envelope.attach(metadata)
    report = Event(
        event_type,
        source=envelope.sender,
        metadata=metadata,
        priority=COLLAB_PRIORITY[event_type],
        tags=COLLAB_TAGS,
    )
    await bus.publish(topic, report)
    return report
