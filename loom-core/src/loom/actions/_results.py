"""Building and copying the broker's results."""

from __future__ import annotations

from collections.abc import Mapping

from loom._action import ActionError, ActionResult, ActionStatus
from loom.actions._provider import CapabilityError, ErrorCode

__all__ = ["TIMED_OUT", "copy_result", "failure", "from_capability_error", "is_cacheable"]

#: The message of a call whose timeout expired (upstream's text).
TIMED_OUT = "Action timed out"


def failure(
    call_id: str,
    code: str,
    message: str,
    details: Mapping[str, str] | None = None,
    status: ActionStatus = ActionStatus.ERROR,
) -> ActionResult:
    """A failed result."""
    error = ActionError(str(code), message, dict(details or {}))
    return ActionResult(call_id, status, b"", error)


def from_capability_error(call_id: str, exc: CapabilityError) -> ActionResult:
    """The result a provider's :class:`CapabilityError` stands for.

    ``retryable`` gives status RETRYABLE; the code TIMEOUT gives status TIMEOUT; any other
    code gives ERROR.
    """
    if exc.retryable:
        status = ActionStatus.RETRYABLE
    elif exc.code == ErrorCode.TIMEOUT:
        status = ActionStatus.TIMEOUT
    else:
        status = ActionStatus.ERROR
    return ActionResult(call_id, status, b"", ActionError(exc.code, exc.message, dict(exc.details)))


def is_cacheable(result: ActionResult) -> bool:
    """Whether a repeated call id gets this result back instead of running again.

    Successes, errors and timeouts are kept, as upstream does (the provider ran, and may
    have acted). Not kept: RETRYABLE results and PROVIDER_UNAVAILABLE, where trying the
    same call again is the point.
    """
    if result.status is ActionStatus.RETRYABLE:
        return False
    error = result.error
    return error is None or error.code != ErrorCode.PROVIDER_UNAVAILABLE


def copy_result(result: ActionResult) -> ActionResult:
    """A copy a caller may change without changing the broker's cached result."""
    error = result.error
    if error is not None:
        error = ActionError(error.code, error.message, dict(error.details))
    return ActionResult(result.id, result.status, result.output, error)
