"""Batches of ``(topic, event)`` pairs: ``ServerEvent.delivery_batch`` and
``ClientEvent.publish_batch``, Loom for Python's extensions of the upstream wire (field 5 of
each oneof, an ``EventBatch`` of columns).

Only a stream whose agent registered with metadata ``loom.delivery_batch``
(:data:`~loom_bridge._registration.DELIVERY_BATCH_KEY`) gets delivery batches, and a client
sends publish batches only to a server whose registration response offers
``loom.publish_batch``; everyone else speaks upstream's one message per event.
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from itertools import islice

from loom import Event
from loom.bus import Item
from loom.errors import ProtocolError
from loom.v1 import bridge_pb2

__all__ = ["decode_batch", "encode_batch", "fill_batch", "item_chars"]

# Fixed overhead per delivery (tags, lengths, varints, the float), in the estimate of a
# batch's size; strings are counted in characters.
_PER_ITEM = 32

_MESSAGE = "loom.v1.EventBatch"


def item_chars(item: Item) -> int:
    """An estimate of a delivery's encoded size: the characters of its strings and bytes,
    plus a fixed overhead. UTF-8 takes at most 4 bytes per character."""
    topic, event = item
    size = _PER_ITEM + len(topic) + len(event.id) + len(event.type) + len(event.source)
    size += len(event.payload)
    for key, value in event.metadata.items():
        size += len(key) + len(value)
    for tag in event.tags:
        size += len(tag)
    return size


def encode_batch(items: Sequence[Item], budget: int) -> tuple[bridge_pb2.ServerEvent, int]:
    """``ServerEvent{delivery_batch}`` of the longest prefix of ``items`` (at least one)
    whose estimated size (:func:`item_chars`) stays within ``budget``; the message and how
    many items it holds."""
    message = bridge_pb2.ServerEvent()
    return message, fill_batch(message.delivery_batch, items, budget)


def fill_batch(batch: bridge_pb2.EventBatch, items: Sequence[Item], budget: int) -> int:
    """Write into an empty ``batch`` the longest prefix of ``items`` (at least one) whose
    estimated size (:func:`item_chars`) stays within ``budget``; how many items it holds."""
    topics = [topic for topic, _ in items]
    events = [event for _, event in items]
    ids = [event.id for event in events]
    types = [event.type for event in events]
    sources = [event.source for event in events]
    payloads = [event.payload for event in events]
    metadata_counts: list[int] = []
    keys: list[str] = []
    values: list[str] = []
    tag_counts: list[int] = []
    tags: list[str] = []
    for event in events:
        metadata = event.metadata
        metadata_counts.append(len(metadata))
        if metadata:
            keys.extend(metadata)
            values.extend(metadata.values())
        event_tags = event.tags
        tag_counts.append(len(event_tags))
        if event_tags:
            tags.extend(event_tags)
    if len(items) > 1:
        # Summed at C speed; item by item only when the batch is over the budget.
        total = _PER_ITEM * len(items)
        for column in (topics, ids, types, sources, payloads, keys, values, tags):
            total += sum(map(len, column))
        if total > budget:
            size = 0
            for count, item in enumerate(items):
                size += item_chars(item)
                if size > budget:
                    return fill_batch(batch, items[: max(1, count)], budget)
    batch.topics.extend(topics)
    batch.ids.extend(ids)
    batch.types.extend(types)
    batch.timestamps_ms.extend([event.timestamp_ms for event in events])
    batch.sources.extend(sources)
    batch.payloads.extend(payloads)
    batch.confidences.extend([event.confidence for event in events])
    batch.priorities.extend([event.priority for event in events])
    batch.metadata_counts.extend(metadata_counts)
    batch.metadata_keys.extend(keys)
    batch.metadata_values.extend(values)
    batch.tag_counts.extend(tag_counts)
    batch.tags.extend(tags)
    return len(items)


def decode_batch(batch: bridge_pb2.EventBatch) -> list[Item]:
    """The ``(topic, event)`` pairs a batch holds, in order.

    Raises:
        ProtocolError: the columns disagree in length, the metadata or tag counts do not
            add up, or a priority is outside 0..100 (the whole batch is refused).
    """
    topics = batch.topics
    n = len(topics)
    columns: dict[str, Sized] = {
        "ids": batch.ids,
        "types": batch.types,
        "timestamps_ms": batch.timestamps_ms,
        "sources": batch.sources,
        "payloads": batch.payloads,
        "confidences": batch.confidences,
        "priorities": batch.priorities,
        "metadata_counts": batch.metadata_counts,
        "tag_counts": batch.tag_counts,
    }
    for name, column in columns.items():
        if len(column) != n:
            raise ProtocolError(
                _MESSAGE, f"column {name} holds {len(column)} entries for {n} topics"
            )
    metadata_counts = list(batch.metadata_counts)
    keys, values = batch.metadata_keys, batch.metadata_values
    if sum(metadata_counts) != len(keys) or len(keys) != len(values):
        raise ProtocolError(
            _MESSAGE,
            f"metadata_counts add up to {sum(metadata_counts)}, with {len(keys)} "
            f"metadata_keys and {len(values)} metadata_values",
        )
    tag_counts = list(batch.tag_counts)
    tags = batch.tags
    if sum(tag_counts) != len(tags):
        raise ProtocolError(
            _MESSAGE, f"tag_counts add up to {sum(tag_counts)}, with {len(tags)} tags"
        )
    priorities = list(batch.priorities)
    if n and not (min(priorities) >= 0 and max(priorities) <= 100):
        bad = next(p for p in priorities if not 0 <= p <= 100)
        raise ProtocolError(_MESSAGE, f"a priority of {bad} is outside 0..100")
    pairs = zip(keys, values)  # noqa: B905  # lengths checked above
    tag_iter = iter(tags)
    new = Event.__new__
    items: list[Item] = []
    append = items.append
    for (
        topic,
        id_,
        type_,
        timestamp_ms,
        source,
        payload,
        confidence,
        priority,
        count,
        tcount,
    ) in zip(
        topics,
        batch.ids,
        batch.types,
        batch.timestamps_ms,
        batch.sources,
        batch.payloads,
        batch.confidences,
        priorities,
        metadata_counts,
        tag_counts,
        strict=True,
    ):
        event = new(Event)
        event.id = id_
        event.type = type_
        event.timestamp_ms = timestamp_ms
        event.source = source
        event.metadata = dict(islice(pairs, count)) if count else {}
        event.payload = payload
        event.confidence = confidence
        event.tags = tuple(islice(tag_iter, tcount)) if tcount else ()
        event.priority = priority
        append((topic, event))
    return items
