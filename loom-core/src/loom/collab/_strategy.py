"""Fan-in strategies: when a fanout has collected enough."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from loom.collab._checks import positive_int, positive_seconds

__all__ = ["ALL", "ANY", "MAJORITY", "Strategy", "StrategyKind", "first_k", "window"]

StrategyKind = Literal["any", "first_k", "majority", "all", "window"]


@dataclass(frozen=True, slots=True)
class Strategy:
    """When a fanout stops collecting.

    Replies are matched to the target they answer; a second reply from the same sender to
    the same target is a duplicate and does not count.

    - ``any``: the first reply.
    - ``first_k(n)``: the first ``n`` replies.
    - ``majority``: replies from more than half of the targets.
    - ``all``: a reply from every target.
    - ``window(s)``: every reply that arrives within ``s`` seconds (it never ends early,
      and ends short only when nothing arrived).

    Build them with :data:`ANY`, :func:`first_k`, :data:`MAJORITY`, :data:`ALL`,
    :func:`window`, or by name (``"any"``, ``"majority"``, ``"all"``).

    Attributes:
        kind: which strategy.
        k: the reply count of ``first_k``; 1 for ``any``; 0 otherwise.
        window_s: the window of ``window``; 0.0 otherwise.
    """

    kind: StrategyKind
    k: int = 0
    window_s: float = 0.0

    def __str__(self) -> str:
        if self.kind == "first_k":
            return f"first_k({self.k})"
        if self.kind == "window":
            return f"window({self.window_s:g}s)"
        return self.kind

    @classmethod
    def of(cls, value: Strategy | str) -> Strategy:
        """A strategy, or the one a name gives (``any``, ``majority``, ``all``).

        Raises:
            ValueError: an unknown name, or one that needs an argument.
        """
        if isinstance(value, Strategy):
            return value
        named = _NAMED.get(value) if isinstance(value, str) else None
        if named is None:
            raise ValueError(
                f"strategy must be a Strategy or one of 'any', 'majority', 'all' "
                f"(use first_k(n) or window(seconds) for the others), got {value!r}"
            )
        return named

    def satisfied(self, replies: int, answered: int, targets: int) -> bool:
        """Whether ``replies`` replies from ``answered`` of ``targets`` targets are enough."""
        kind = self.kind
        if kind == "any" or kind == "first_k":
            return replies >= self.k
        if kind == "majority":
            return answered * 2 > targets
        if kind == "all":
            return answered >= targets
        return False  # window: collect until the deadline

    def deadline_s(self, timeout_s: float) -> float:
        """Seconds the fanout may collect: the timeout, or the window when shorter."""
        return min(timeout_s, self.window_s) if self.kind == "window" else timeout_s

    def expected(self, targets: int) -> int:
        """How many replies (or answered targets) make the strategy complete; 0 for window."""
        kind = self.kind
        if kind == "any" or kind == "first_k":
            return self.k
        if kind == "majority":
            return targets // 2 + 1
        if kind == "all":
            return targets
        return 0


def first_k(n: int) -> Strategy:
    """The first ``n`` replies.

    Raises:
        ValueError: ``n`` is not an int >= 1 (the message names ``first_k``).
    """
    return Strategy("first_k", k=positive_int("first_k", n))


def window(seconds: float) -> Strategy:
    """Every reply that arrives within ``seconds``.

    Raises:
        ValueError: ``seconds`` is not a finite number > 0 (the message names ``window``).
    """
    return Strategy("window", window_s=positive_seconds("window", seconds))


#: The first reply.
ANY: Final = Strategy("any", k=1)
#: Replies from more than half of the targets.
MAJORITY: Final = Strategy("majority")
#: A reply from every target.
ALL: Final = Strategy("all")

_NAMED: Final = {"any": ANY, "majority": MAJORITY, "all": ALL}
