"""``loom.v1.EventBus`` and ``loom.v1.ActionBroker`` over the bridge's bus and broker.

Any gRPC client of the upstream protos can publish, subscribe, read statistics, list
capabilities and invoke them, without registering as an agent. The handlers are plain
grpc method handlers with the ``loom.v1`` message (de)serialisers: the wire is the one a
generated servicer would speak (only the Bridge service's stubs are generated here).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
import grpc.aio

from loom import ActionCall, QoS
from loom.actions import ActionBroker
from loom.bus import EventBus, Subscription
from loom.errors import InvalidEventError, InvalidTopicError, ProtocolError
from loom.v1 import action_pb2, event_pb2
from loom_bridge._decode import unary_handler
from loom_bridge._wire import event_from_proto, fill_event

__all__ = ["SUBSCRIPTION_ID_HEADER", "service_handlers"]

log = logging.getLogger("loom.bridge")

#: Initial metadata of a Subscribe stream: the id to pass to Unsubscribe.
SUBSCRIPTION_ID_HEADER = "x-subscription-id"

Context = grpc.aio.ServicerContext[Any, Any]


class EventBusService:
    """``loom.v1.EventBus``: Publish, Subscribe (a stream of events), Unsubscribe, GetStats.

    A Subscribe stream sends its subscription id in the initial metadata
    (``x-subscription-id``) and lasts until the client cancels it or Unsubscribe ends it.
    Each subscription has the bounded queue of its QoS: a client that reads slowly makes a
    Batched publisher wait and loses Realtime events (counted in the topic's statistics).

    Args:
        bus: the bus to serve.
    """

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._subscriptions: dict[str, Subscription] = {}
        self._sequence = 0
        self._started = time.monotonic()

    async def Publish(  # the RPC's name
        self, request: event_pb2.PublishRequest, context: Context
    ) -> event_pb2.PublishResponse:
        """Publish; a refusal is ``success=false`` with the reason."""
        if not request.HasField("event"):
            return event_pb2.PublishResponse(
                success=False, error_message="the request has no event"
            )
        try:
            await self._bus.publish(request.topic, event_from_proto(request.event))
        except InvalidTopicError as exc:
            return event_pb2.PublishResponse(success=False, error_message=str(exc))
        except (ProtocolError, InvalidEventError) as exc:
            return event_pb2.PublishResponse(success=False, error_message=str(exc))
        self._sequence += 1
        return event_pb2.PublishResponse(success=True, sequence_number=self._sequence)

    async def Subscribe(self, request: event_pb2.SubscribeRequest, context: Context) -> None:
        """Stream every event published to ``topic`` (a pattern) that passes the event
        types and the metadata ``filters`` (each key must hold the given value)."""
        try:
            qos = QoS(request.qos)
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown qos {request.qos}")
        try:
            subscription = await self._bus.subscribe(
                request.topic, event_types=tuple(request.event_types), qos=qos
            )
        except InvalidTopicError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        filters = dict(request.filters)
        self._subscriptions[subscription.id] = subscription
        try:
            await context.send_initial_metadata(((SUBSCRIPTION_ID_HEADER, subscription.id),))
            async for _, event in subscription:
                if filters and any(event.metadata.get(k) != v for k, v in filters.items()):
                    continue
                message = event_pb2.Event()
                fill_event(message, event)
                await context.write(message)
        finally:
            self._subscriptions.pop(subscription.id, None)
            await self._bus.unsubscribe(subscription.id)

    async def Unsubscribe(
        self, request: event_pb2.UnsubscribeRequest, context: Context
    ) -> event_pb2.UnsubscribeResponse:
        """End a Subscribe stream of this service by its id (its stream completes OK)."""
        subscription = self._subscriptions.pop(request.subscription_id, None)
        if subscription is None:
            return event_pb2.UnsubscribeResponse(success=False)
        await self._bus.unsubscribe(subscription.id)
        return event_pb2.UnsubscribeResponse(success=True)

    async def GetStats(
        self, request: event_pb2.StatsRequest, context: Context
    ) -> event_pb2.StatsResponse:
        """The topic's counters; ``throughput_per_sec`` averages its publishes over the
        time this service has run. An unknown topic answers zeros."""
        stats = self._bus.stats(request.topic)
        if stats is None:
            return event_pb2.StatsResponse()
        elapsed = max(time.monotonic() - self._started, 1e-9)
        return event_pb2.StatsResponse(
            total_events=stats.published,
            active_subscriptions=stats.active_subscriptions,
            throughput_per_sec=stats.published / elapsed,
            backlog_size=stats.backlog,
        )


class ActionBrokerService:
    """``loom.v1.ActionBroker``: ListCapabilities and Invoke, on the bridge's broker.

    Args:
        broker: the broker to serve.
    """

    def __init__(self, broker: ActionBroker) -> None:
        self._broker = broker

    async def ListCapabilities(
        self, request: action_pb2.ListCapabilitiesRequest, context: Context
    ) -> action_pb2.ListCapabilitiesResponse:
        """Every capability the broker knows, remote agents' included."""
        return action_pb2.ListCapabilitiesResponse(
            capabilities=[d.to_proto() for d in self._broker.list_capabilities()]
        )

    async def Invoke(
        self, request: action_pb2.ActionCall, context: Context
    ) -> action_pb2.ActionResult:
        """Run a call; the broker's result as it is (``NOT_FOUND`` for an unknown name)."""
        try:
            call = ActionCall.from_proto(request)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed ActionCall: {exc}")
        return (await self._broker.invoke(call)).to_proto()


def service_handlers(
    bus: EventBus, broker: ActionBroker | None
) -> list[grpc.GenericRpcHandler[Any, Any]]:
    """The generic handlers of ``loom.v1.EventBus`` (and ``loom.v1.ActionBroker`` when
    there is a broker), for ``server.add_generic_rpc_handlers``."""
    events = EventBusService(bus)
    handlers = [
        grpc.method_handlers_generic_handler(
            "loom.v1.EventBus",
            {
                "Publish": unary_handler(
                    events.Publish, event_pb2.PublishRequest, event_pb2.PublishResponse
                ),
                "Subscribe": grpc.unary_stream_rpc_method_handler(
                    events.Subscribe,
                    request_deserializer=event_pb2.SubscribeRequest.FromString,
                    response_serializer=event_pb2.Event.SerializeToString,
                ),
                "Unsubscribe": unary_handler(
                    events.Unsubscribe, event_pb2.UnsubscribeRequest, event_pb2.UnsubscribeResponse
                ),
                "GetStats": unary_handler(
                    events.GetStats, event_pb2.StatsRequest, event_pb2.StatsResponse
                ),
            },
        )
    ]
    if broker is not None:
        actions = ActionBrokerService(broker)
        handlers.append(
            grpc.method_handlers_generic_handler(
                "loom.v1.ActionBroker",
                {
                    "ListCapabilities": unary_handler(
                        actions.ListCapabilities,
                        action_pb2.ListCapabilitiesRequest,
                        action_pb2.ListCapabilitiesResponse,
                    ),
                    "Invoke": unary_handler(
                        actions.Invoke, action_pb2.ActionCall, action_pb2.ActionResult
                    ),
                },
            )
        )
    return handlers
