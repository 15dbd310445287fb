"""Batches of ``(topic, event)`` pairs: ``ServerEvent.delivery_batch`` and
``ClientEvent.publish_batch``, Loom for Python's extensions of the upstream wire (field 5 of
each oneof, an ``EventBatch`` of columns).

Only a stream whose agent registered with metadata ``loom.delivery_batch``
(:data:`~loom_bridge._registration.DELIVERY_BATCH_KEY`) gets delivery batches, and a client
sends publish batches only to a server whose registration response offers
``loom.publish_batch``; everyone else speaks upstream's one message per event.
"""

from __future__ import annotations

from collections.abc import Sequence

from loom.bus import Item
from loom.errors import ProtocolError
from loom.v1 import bridge_pb2
from loom.wire import fill_events, read_events

__all__ = ["decode_batch", "encode_batch", "fill_batch"]

_MESSAGE = "loom.v1.EventBatch"


def encode_batch(items: Sequence[Item], budget: int) -> tuple[bridge_pb2.ServerEvent, int]:
    """``ServerEvent{delivery_batch}`` of the longest prefix of ``items`` (at least one)
    whose estimated size (its topics plus :func:`loom.wire.event_chars` of its events) stays
    within ``budget``; the message and how many items it holds."""
    message = bridge_pb2.ServerEvent()
    return message, fill_batch(message.delivery_batch, items, budget)


def fill_batch(batch: bridge_pb2.EventBatch, items: Sequence[Item], budget: int) -> int:
    """Write into an empty ``batch`` the longest prefix of ``items`` (at least one) whose
    estimated size stays within ``budget`` (the topics of all ``items`` are counted, which
    errs on the safe side); how many items it holds."""
    topics = [topic for topic, _ in items]
    used = fill_events(batch, [event for _, event in items], budget - sum(map(len, topics)))
    batch.topics.extend(topics if used == len(topics) else topics[:used])
    return used


def decode_batch(batch: bridge_pb2.EventBatch) -> list[Item]:
    """The ``(topic, event)`` pairs a batch holds, in order.

    Raises:
        ProtocolError: the columns disagree in length, the metadata or tag counts do not
            add up, or a priority is outside 0..100 (the whole batch is refused).
    """
    topics = batch.topics
    if len(batch.ids) != len(topics):
        raise ProtocolError(
            _MESSAGE, f"column ids holds {len(batch.ids)} entries for {len(topics)} topics"
        )
    return list(zip(topics, read_events(batch), strict=True))
