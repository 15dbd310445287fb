"""The bridge's lean ActionCall/ActionResult conversions agree with loom's own."""

from __future__ import annotations

import pytest

from loom import ActionCall, ActionError, ActionResult, ActionStatus, QoS
from loom.v1 import action_pb2
from loom_bridge._calls import call_from_proto, call_to_proto, result_from_proto, result_to_proto

CALLS = [
    ActionCall("cap"),
    ActionCall(
        "cap.x",
        b'{"a": 1}',
        version="2.1",
        id="c-1",
        headers={"thread_id": "t", "x-agent-id": "a"},
        timeout_ms=1500,
        correlation_id="corr",
        qos=QoS.REALTIME,
    ),
    ActionCall("cap", qos=QoS.BACKGROUND),
]
RESULTS = [
    ActionResult("r-1"),
    ActionResult("r-2", ActionStatus.OK, b"out"),
    ActionResult("r-3", ActionStatus.ERROR, error=ActionError("NOT_FOUND", "no such", {"k": "v"})),
    ActionResult("r-4", ActionStatus.RETRYABLE, error=ActionError("PROVIDER_UNAVAILABLE")),
    ActionResult("r-5", ActionStatus.TIMEOUT),
]


@pytest.mark.parametrize("call", CALLS)
def test_calls_convert_as_loom_does(call):
    assert call_to_proto(call) == call.to_proto()
    assert call_from_proto(call.to_proto()) == ActionCall.from_proto(call.to_proto()) == call


@pytest.mark.parametrize("result", RESULTS)
def test_results_convert_as_loom_does(result):
    assert result_to_proto(result) == result.to_proto()
    assert result_from_proto(result.to_proto()) == result


def test_an_unknown_qos_is_refused():
    with pytest.raises(ValueError, match="7 is not a valid QoS"):
        call_from_proto(action_pb2.ActionCall(capability="c", qos=7))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "code", "words"),
    [
        (None, "CAPABILITY_ERROR", "unknown action status 9"),
        (action_pb2.ActionError(code="X", message="m", details={"a": "b"}), "X", "m"),
    ],
)
def test_an_unknown_status_reads_as_error(error, code, words):
    message = action_pb2.ActionResult(id="r", status=9, output=b"o")  # type: ignore[arg-type]
    if error is not None:
        message.error.CopyFrom(error)
    result = result_from_proto(message)
    assert (result.id, result.status, result.output) == ("r", ActionStatus.ERROR, b"o")
    assert result.error.code == code and words in result.error.message
