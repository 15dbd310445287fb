"""The event bus: publish/subscribe with QoS, bounded queues and backpressure policies.

:class:`EventBus` is the interface every backend implements; :class:`MemoryBus` is the
in-process one (loom-nats adds one on NATS). Topics take NATS wildcards (``*``, ``>``).

Example:
    .. code-block:: python

        from loom import Event, QoS
        from loom.bus import Backpressure, MemoryBus, Policy

        async with MemoryBus() as bus:
            readings = await bus.subscribe("sensor.*.temp", qos=QoS.BATCHED)
            latest = await bus.subscribe(
                "sensor.>",
                backpressure=Backpressure(Policy.AGGREGATE, aggregate_key="room"),
            )
            await bus.publish("sensor.kitchen.temp", Event("reading", b"21.5"))
            topic, event = await readings.get()
"""

from __future__ import annotations

from loom._action import QoS
from loom.bus._base import EventBus, Handler
from loom.bus._checks import check_handler, refuse_event
from loom.bus._errors import BusClosedError, SubscriptionClosed
from loom.bus._handler import run_handler
from loom.bus._memory import DEFAULT_INFLIGHT_THRESHOLD, DEFAULT_MAX_TOPICS, MemoryBus
from loom.bus._policy import DEFAULT_QUEUE_SIZES, Backpressure, DropReason, Policy
from loom.bus._queue import DeliveryQueue, Item
from loom.bus._stats import TopicStats
from loom.bus._subscription import DropCallback, Subscription

__all__ = [
    "DEFAULT_INFLIGHT_THRESHOLD",
    "DEFAULT_MAX_TOPICS",
    "DEFAULT_QUEUE_SIZES",
    "Backpressure",
    "BusClosedError",
    "DeliveryQueue",
    "DropCallback",
    "DropReason",
    "EventBus",
    "Handler",
    "Item",
    "MemoryBus",
    "Policy",
    "QoS",
    "Subscription",
    "SubscriptionClosed",
    "TopicStats",
    "check_handler",
    "refuse_event",
    "run_handler",
]
