"""The circuit breaker the broker keeps for each provider."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BreakerState", "CircuitBreaker", "CircuitBreakerPolicy"]


class BreakerState(enum.Enum):
    """Where a provider's circuit stands."""

    #: Calls go through; failures are counted.
    CLOSED = "closed"
    #: Calls are answered ``PROVIDER_UNAVAILABLE`` without reaching the provider.
    OPEN = "open"
    #: One probe call goes through; its outcome closes or reopens the circuit.
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class CircuitBreakerPolicy:
    """When a provider's circuit opens and when it is probed again.

    Attributes:
        failure_threshold: consecutive failures that open the circuit; 0 disables the
            breaker.
        reset_timeout_s: how long the circuit stays open before one probe call is let
            through (half-open).
    """

    failure_threshold: int = 5
    reset_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 0:
            raise ValueError(f"failure_threshold must be >= 0, got {self.failure_threshold}")
        if self.reset_timeout_s < 0:
            raise ValueError(f"reset_timeout_s must be >= 0, got {self.reset_timeout_s}")


class CircuitBreaker:
    """The state of one provider's circuit (one event loop; no locking).

    The broker calls :meth:`admit` before a call, then exactly one of :meth:`succeeded`,
    :meth:`failed` or :meth:`released` for every admitted call.
    """

    __slots__ = ("_clock", "_failures", "_opened_at", "_probing", "policy", "state")

    def __init__(self, policy: CircuitBreakerPolicy, clock: Callable[[], float]) -> None:
        self.policy = policy
        self.state = BreakerState.CLOSED
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._failures

    def retry_after_s(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when it would now)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.policy.reset_timeout_s - self._clock())

    def admit(self) -> bool:
        """Whether a call may go to the provider now; a True in half-open makes it the probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            if self._clock() - self._opened_at < self.policy.reset_timeout_s:
                return False
            self.state = BreakerState.HALF_OPEN
        if self._probing:
            return False
        self._probing = True
        return True

    def succeeded(self) -> None:
        """An admitted call succeeded: the circuit closes."""
        self._failures = 0
        self._probing = False
        self.state = BreakerState.CLOSED

    def failed(self) -> None:
        """An admitted call failed: count it, and open the circuit at the threshold."""
        self._failures += 1
        threshold = self.policy.failure_threshold
        if self.state is BreakerState.HALF_OPEN or (threshold and self._failures >= threshold):
            self._probing = False
            self.state = BreakerState.OPEN
            self._opened_at = self._clock()

    def released(self) -> None:
        """An admitted call ended in a way that says nothing of the provider's health
        (cancelled, or failed the input schema): a probe slot is freed, nothing counted."""
        self._probing = False
