"""Actions: capabilities, the providers that run them, and the broker that invokes them.

- :class:`ActionBroker`: the registry of capabilities and the one way to run them
  (``await broker.invoke(ActionCall(...))``), with timeouts, input validation,
  idempotency by call id, a concurrency bound and a circuit breaker per provider.
- :func:`capability`: a typed Python function as a capability, its JSON schemas derived
  from its type hints; :class:`NativeProvider` registers one with a broker.
- :class:`Provider`: what every provider kind implements (native, WASM, gRPC, MCP);
  :class:`CapabilityError` fails a call with a specific :class:`ErrorCode`.

See ``docs/actions.md``.
"""

from __future__ import annotations

from loom.actions._breaker import BreakerState, CircuitBreakerPolicy
from loom.actions._broker import ActionBroker, BrokerStats
from loom.actions._capability import CapabilityFunction, capability, capability_metadata
from loom.actions._native import NativeProvider
from loom.actions._provider import CapabilityError, ErrorCode, Provider

__all__ = [
    "ActionBroker",
    "BreakerState",
    "BrokerStats",
    "CapabilityError",
    "CapabilityFunction",
    "CircuitBreakerPolicy",
    "ErrorCode",
    "NativeProvider",
    "Provider",
    "capability",
    "capability_metadata",
]
