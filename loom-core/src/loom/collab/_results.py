"""What the primitives return (or carry in :class:`CollabTimeout` when they end short)."""

from __future__ import annotations

from dataclasses import dataclass

from loom._event import Event
from loom.collab._strategy import Strategy

__all__ = ["BarrierResult", "CollabStats", "ContractNetResult", "FanoutResult", "Proposal"]


@dataclass
class CollabStats:
    """Counters of one party's primitives (an agent's: ``ctx.collab.stats``).

    Attributes:
        started: primitive calls started.
        completed: calls that got what they waited for.
        timeouts: calls that ended short (and raised :class:`CollabTimeout`).
        late: replies that arrived after the call they answer had ended; dropped.
        duplicates: second replies from the same sender to the same request; dropped.
        malformed: replies the primitive could not use (a proposal whose score is not a
            number, a barrier check-in without a sender); dropped.
        overflow: replies dropped because the call's bounded inbox was full.
    """

    started: int = 0
    completed: int = 0
    timeouts: int = 0
    late: int = 0
    duplicates: int = 0
    malformed: int = 0
    overflow: int = 0


@dataclass(frozen=True, slots=True)
class FanoutResult:
    """The replies a fanout collected.

    Attributes:
        replies: the replies that counted, in arrival order.
        strategy: the strategy it ran under.
        complete: whether the strategy was satisfied (False only inside a
            :class:`CollabTimeout`).
        targets: the topics the request went to, in order.
        answered: the targets that replied, in the order of their first reply.
        thread_id: the fanout's thread.
        correlation_id: the fanout's id; the request to ``targets[i]`` carried
            ``{correlation_id}:{i}``.
        elapsed_s: seconds from start to end.
    """

    replies: tuple[Event, ...]
    strategy: Strategy
    complete: bool
    targets: tuple[str, ...]
    answered: tuple[str, ...]
    thread_id: str
    correlation_id: str
    elapsed_s: float

    @property
    def payloads(self) -> list[bytes]:
        """The replies' payloads, in arrival order."""
        return [r.payload for r in self.replies]

    @property
    def missing(self) -> tuple[str, ...]:
        """The targets that did not reply."""
        answered = set(self.answered)
        return tuple(t for t in self.targets if t not in answered)


@dataclass(frozen=True, slots=True)
class BarrierResult:
    """Who arrived at a barrier.

    Attributes:
        thread_id: the barrier's thread.
        n: the number of participants it waited for.
        arrived: the senders that checked in, in the order they became known.
        complete: whether ``n`` arrived (False only inside a :class:`CollabTimeout`).
        elapsed_s: seconds from start to end.
    """

    thread_id: str
    n: int
    arrived: tuple[str, ...]
    complete: bool
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class Proposal:
    """One bid in a contract net.

    Attributes:
        sender: who bid (``agent.{id}`` for agents).
        score: its ``score`` metadata as a float (0.0 when it had none).
        event: the ``collab.proposal`` event itself.
    """

    sender: str
    score: float
    event: Event

    @property
    def payload(self) -> bytes:
        """The proposal's payload."""
        return self.event.payload


@dataclass(frozen=True, slots=True)
class ContractNetResult:
    """One round of a contract net.

    Attributes:
        thread_id: the round's thread (the call for proposals went to its broadcast topic).
        correlation_id: the round's id, carried by its proposals, awards and results.
        proposals: the valid proposals, best score first (ties in arrival order).
        awards: the proposals that won, best first.
        results: the winners' results, in arrival order (empty when results were not
            asked for).
        complete: whether every phase got what it waited for (False only inside a
            :class:`CollabTimeout`).
        phase: where the round ended: ``proposals`` (nobody bid), ``results`` (a winner did
            not deliver in time) or ``done``.
        elapsed_s: seconds from start to end.
    """

    thread_id: str
    correlation_id: str
    proposals: tuple[Proposal, ...]
    awards: tuple[Proposal, ...]
    results: tuple[Event, ...]
    complete: bool
    phase: str
    elapsed_s: float

    @property
    def winners(self) -> tuple[str, ...]:
        """The senders of the winning proposals, best first."""
        return tuple(p.sender for p in self.awards)

    def result_of(self, sender: str) -> Event | None:
        """The result ``sender`` delivered, or None."""
        return next((r for r in self.results if r.sender == sender), None)
