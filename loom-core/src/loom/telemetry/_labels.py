"""Bounded metric labels and monotonic totals over sources that come and go."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable

__all__ = ["OTHER", "BoundedLabels", "Totals"]

#: The label value that stands for every value past a label's limit.
OTHER = "other"


class BoundedLabels:
    """The values one metric label may take: the first ``limit`` admitted, the rest OTHER.

    Admission is sticky: a value that got its own label keeps it for the life of the
    telemetry, so a counter never moves between series (which would look like a reset).
    A value literally named ``other`` is always reported as OTHER.
    """

    __slots__ = ("_admitted", "_lock", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._admitted: set[str] = set()
        self._lock = threading.Lock()

    def admit(self, candidates: Iterable[str]) -> None:
        """Give free places to ``candidates``, in the order given (busiest first)."""
        admitted = self._admitted
        if len(admitted) >= self.limit:
            return
        with self._lock:
            for value in candidates:
                if len(admitted) >= self.limit:
                    return
                if value != OTHER:
                    admitted.add(value)

    def label(self, value: str) -> str:
        """``value`` if it was admitted, else OTHER."""
        return value if value in self._admitted else OTHER

    def __len__(self) -> int:
        return len(self._admitted)


class Totals:
    """Cumulative totals per label, fed with the current counts of sources.

    A source is one live counter (a topic of one bus, an agent of one runtime). Each
    update adds what every source counted since the last one; a source whose count went
    down was reset (an agent deleted and made again) and adds its whole count. Totals only
    grow, whatever the sources do, so the exported counters stay monotonic. Sources not
    seen in an update are forgotten; their counts stay in the totals.

    A bus that forgets a topic adds its counts to a "retired" source (see
    ``MemoryBus.retired_stats``). ``retired_of`` maps a source to that retired source; what
    a forgotten (or reset) source had already counted is then taken off the retired
    source's growth, so nothing is counted twice.
    """

    __slots__ = ("_last", "_lock", "totals")

    def __init__(self) -> None:
        self._last: dict[Hashable, int] = {}
        self._lock = threading.Lock()
        self.totals: dict[tuple[str, ...], int] = {}

    def update(
        self,
        counts: Iterable[tuple[Hashable, tuple[str, ...], int]],
        retired_of: Callable[[Hashable], Hashable | None] | None = None,
    ) -> dict[tuple[str, ...], int]:
        """Fold ``(source, labels, count)`` readings in; returns a copy of the totals."""
        readings = list(counts)
        with self._lock:
            last, totals = self._last, self.totals
            seen = {source: count for source, _, count in readings}
            credit: dict[Hashable, int] = {}
            if retired_of is not None:
                for source, before in last.items():
                    now = seen.get(source)
                    if now is None or now < before:  # forgotten, or forgotten and made again
                        retired = retired_of(source)
                        if retired is not None:
                            credit[retired] = credit.get(retired, 0) + before
            for source, labels, count in readings:
                before = last.get(source, 0)
                delta = count - before if count >= before else count
                delta = max(0, delta - credit.get(source, 0))
                if delta or labels not in totals:
                    totals[labels] = totals.get(labels, 0) + delta
            self._last = seen
            return dict(totals)
