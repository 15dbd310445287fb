"""Errors of the collaboration primitives."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loom.errors import LoomError

if TYPE_CHECKING:
    from loom.collab._results import BarrierResult, ContractNetResult, FanoutResult

__all__ = ["CollabError", "CollabTimeout"]


class CollabError(LoomError):
    """A collaboration primitive could not go on (its reply channel closed under it)."""


class CollabTimeout(CollabError, TimeoutError):
    """A primitive ended short: its deadline passed before it had what it waited for.

    Every primitive has this one shape for ending short: it publishes ``collab.timeout``
    and ``collab.summary``, then raises this error, which carries what did arrive. It is a
    ``TimeoutError`` (so ``asyncio.TimeoutError`` handlers catch it too).

    Attributes:
        primitive: ``request``, ``fanout``, ``barrier`` or ``contract_net``.
        reason: the ``reason`` of the ``collab.timeout`` event, e.g.
            ``request_reply_timeout``.
        thread_id: the primitive's thread.
        correlation_id: the correlation id its replies had to carry.
        timeout_s: the deadline it was given, in seconds.
        result: the partial result (a :class:`FanoutResult`, :class:`BarrierResult` or
            :class:`ContractNetResult` with ``complete=False``); None for ``request``.
    """

    def __init__(
        self,
        primitive: str,
        reason: str,
        message: str,
        *,
        thread_id: str,
        correlation_id: str,
        timeout_s: float,
        result: FanoutResult | BarrierResult | ContractNetResult | None = None,
    ) -> None:
        super().__init__(message)
        self.primitive = primitive
        self.reason = reason
        self.thread_id = thread_id
        self.correlation_id = correlation_id
        self.timeout_s = timeout_s
        self.result = result
