"""Events in bulk on the wire: the event columns of ``loom.v1.EventBatch``.

``EventBatch`` is Loom for Python's extension message for many events in one message: the
bridge's delivery and publish batches carry it (with a ``topics`` column, one topic per
event), and so do loom-nats's Realtime batches (without one: the NATS subject is every
event's topic). Entry i of each per-event column belongs to event i; event i's metadata is
the next ``metadata_counts[i]`` pairs of ``metadata_keys``/``metadata_values`` and its tags
the next ``tag_counts[i]`` entries of ``tags``.

Columns rather than ``repeated Event``: protobuf reads and writes a whole column of strings
in one call, so a batch costs about half as much per event in Python as the same events
encoded one by one.
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from itertools import islice
from typing import TYPE_CHECKING

from loom._event import Event
from loom.errors import ProtocolError

if TYPE_CHECKING:
    from loom.v1.bridge_pb2 import EventBatch

__all__ = ["EVENT_OVERHEAD", "event_chars", "fill_events", "read_events"]

#: Bytes per event beyond its strings in the estimate of a batch's size (field tags,
#: lengths, varints and the float).
EVENT_OVERHEAD = 32

_MESSAGE = "loom.v1.EventBatch"


def event_chars(event: Event) -> int:
    """An estimate of an event's share of an encoded batch: the characters of its strings
    and bytes plus :data:`EVENT_OVERHEAD`. UTF-8 takes at most 4 bytes per character, so
    keep budgets well under a hard byte limit."""
    size = EVENT_OVERHEAD + len(event.id) + len(event.type) + len(event.source)
    size += len(event.payload)
    for key, value in event.metadata.items():
        size += len(key) + len(value)
    for tag in event.tags:
        size += len(tag)
    return size


def fill_events(batch: EventBatch, events: Sequence[Event], budget: int) -> int:
    """Write into the event columns of an empty ``batch`` the longest prefix of ``events``
    (at least one) whose estimated size (:func:`event_chars`) stays within ``budget``.

    The ``topics`` column is left to the caller.

    Returns:
        How many events the batch holds.

    Raises:
        TypeError: a field holds a value of the wrong type (a metadata value that is not a
            str, say); the batch is then partly written.
        ValueError: a number out of its field's range.
    """
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
    if len(events) > 1:
        # Summed at C speed; event by event only when the batch is over the budget.
        total = EVENT_OVERHEAD * len(events)
        for column in (ids, types, sources, payloads, keys, values, tags):
            total += sum(map(len, column))
        if total > budget:
            size = 0
            for count, event in enumerate(events):
                size += event_chars(event)
                if size > budget:
                    return fill_events(batch, events[: max(1, count)], budget)
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
    return len(events)


def read_events(batch: EventBatch) -> list[Event]:
    """The events a batch's columns hold, in order (its ``topics`` column is not read).

    Raises:
        ProtocolError: the columns disagree in length, the metadata or tag counts do not
            add up, or a priority is outside 0..100 (the whole batch is
            refused).
    """
    ids = batch.ids
    n = len(ids)
    columns: dict[str, Sized] = {
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
            raise ProtocolError(_MESSAGE, f"column {name} holds {len(column)} entries for {n} ids")
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
    events: list[Event] = []
    append = events.append
    for id_, type_, timestamp_ms, source, payload, confidence, priority, count, tcount in zip(
        ids,
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
        append(event)
    return events
