"""``ActionCall`` and ``ActionResult`` to and from the wire, as :mod:`loom`'s ``to_proto`` and
``from_proto`` do, without their per-call overhead (keyword construction, enum calls, a
``CopyFrom`` for the error): the ForwardAction hot path."""

from __future__ import annotations

from loom import ActionCall, ActionError, ActionResult, ActionStatus, QoS
from loom.actions import ErrorCode
from loom.v1 import action_pb2

__all__ = ["call_from_proto", "call_to_proto", "result_from_proto", "result_to_proto"]

_QOS = tuple(QoS)
_STATUS = tuple(ActionStatus)


def call_to_proto(call: ActionCall) -> action_pb2.ActionCall:
    """``call`` as a ``loom.v1.ActionCall`` (default values left unset, as proto3 sends them).

    Raises:
        TypeError: a field holds a value of the wrong type.
    """
    message = action_pb2.ActionCall()
    message.id = call.id
    message.capability = call.capability
    if call.version:
        message.version = call.version
    if call.payload:
        message.payload = call.payload
    if call.headers:
        headers = message.headers
        for key, value in call.headers.items():
            headers[key] = value
    if call.timeout_ms:
        message.timeout_ms = call.timeout_ms
    if call.correlation_id:
        message.correlation_id = call.correlation_id
    if call.qos:
        message.qos = call.qos  # type: ignore[assignment]  # an IntEnum is the int protobuf wants
    return message


def call_from_proto(message: action_pb2.ActionCall) -> ActionCall:
    """The :class:`~loom.ActionCall` a message carries.

    Raises:
        ValueError: its qos is not a known ``QoSLevel``.
    """
    qos = message.qos
    if not 0 <= qos < len(_QOS):
        raise ValueError(f"{qos} is not a valid QoS")
    call = ActionCall.__new__(ActionCall)
    call.capability = message.capability
    call.payload = message.payload
    call.version = message.version
    call.id = message.id
    headers = message.headers
    call.headers = {key: headers[key] for key in headers}
    call.timeout_ms = message.timeout_ms
    call.correlation_id = message.correlation_id
    call.qos = _QOS[qos]
    return call


def result_to_proto(result: ActionResult) -> action_pb2.ActionResult:
    """``result`` as a ``loom.v1.ActionResult``."""
    message = action_pb2.ActionResult()
    message.id = result.id
    if result.status:
        message.status = result.status  # type: ignore[assignment]  # an IntEnum is an int
    if result.output:
        message.output = result.output
    error = result.error
    if error is not None:
        inner = message.error
        inner.code = error.code
        inner.message = error.message
        if error.details:
            details = inner.details
            for key, value in error.details.items():
                details[key] = value
    return message


def result_from_proto(message: action_pb2.ActionResult) -> ActionResult:
    """The :class:`~loom.ActionResult` a message carries; an unknown status number reads as
    ERROR (with the error's code, or ``CAPABILITY_ERROR``)."""
    status = message.status
    error = None
    if message.HasField("error"):
        inner = message.error
        details = inner.details
        error = ActionError(inner.code, inner.message, {key: details[key] for key in details})
    if not 0 <= status < len(_STATUS):
        return ActionResult(
            message.id,
            ActionStatus.ERROR,
            message.output,
            ActionError(
                error.code if error is not None and error.code else ErrorCode.CAPABILITY_ERROR,
                (error.message if error is not None else "") or f"unknown action status {status}",
                dict(error.details) if error is not None else {},
            ),
        )
    result = ActionResult.__new__(ActionResult)
    result.id = message.id
    result.status = _STATUS[status]
    result.output = message.output
    result.error = error
    return result
