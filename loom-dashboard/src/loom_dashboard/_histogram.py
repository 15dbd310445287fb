"""A rolling latency histogram: fixed buckets, one slot per second over the last minute."""

from __future__ import annotations

import bisect
from typing import Any, Final

__all__ = ["BUCKETS_MS", "LatencyHistogram"]

#: Upper bounds of the buckets, in ms; a last bucket takes everything slower.
BUCKETS_MS: Final = (0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0)


class LatencyHistogram:
    """Delivery latencies over a rolling window, plus totals since the start.

    Each second has its own row of bucket counts; a row older than the window is reused, so
    memory stays ``window_s * len(BUCKETS_MS)`` counters whatever the rate.

    Args:
        window_s: seconds the rolling figures cover.
    """

    __slots__ = ("_maxes", "_rows", "_stamps", "count", "max_ms", "total", "window_s")

    def __init__(self, window_s: int = 60) -> None:
        if window_s < 1:
            raise ValueError(f"window_s must be >= 1, got {window_s}")
        self.window_s = window_s
        width = len(BUCKETS_MS) + 1
        self._rows = [[0] * width for _ in range(window_s)]
        self._stamps = [-1] * window_s
        self._maxes = [0.0] * window_s
        self.total = [0] * width
        self.count = 0
        self.max_ms = 0.0

    def record(self, latency_ms: float, now_s: float) -> None:
        """Count one latency observed at ``now_s`` (seconds, any monotonic-enough clock)."""
        second = int(now_s)
        slot = second % self.window_s
        row = self._rows[slot]
        if self._stamps[slot] != second:
            row[:] = [0] * len(row)
            self._stamps[slot] = second
            self._maxes[slot] = 0.0
        index = bisect.bisect_left(BUCKETS_MS, latency_ms)
        row[index] += 1
        self.total[index] += 1
        self.count += 1
        if latency_ms > self._maxes[slot]:
            self._maxes[slot] = latency_ms
        if latency_ms > self.max_ms:
            self.max_ms = latency_ms

    def snapshot(self, now_s: float) -> dict[str, Any]:
        """The window's buckets, count, percentiles (bucket upper bounds) and max, as JSON."""
        second = int(now_s)
        width = len(BUCKETS_MS) + 1
        counts = [0] * width
        window_max = 0.0
        for slot, stamp in enumerate(self._stamps):
            if stamp >= 0 and second - stamp < self.window_s:
                row = self._rows[slot]
                for i in range(width):
                    counts[i] += row[i]
                window_max = max(window_max, self._maxes[slot])
        n = sum(counts)
        return {
            "window_s": self.window_s,
            "buckets": [
                {"le_ms": BUCKETS_MS[i] if i < len(BUCKETS_MS) else None, "count": counts[i]}
                for i in range(width)
            ],
            "count": n,
            "p50_ms": _quantile(counts, n, 0.50, window_max),
            "p90_ms": _quantile(counts, n, 0.90, window_max),
            "p99_ms": _quantile(counts, n, 0.99, window_max),
            "max_ms": round(window_max, 3),
            "total_count": self.count,
            "total_max_ms": round(self.max_ms, 3),
        }


def _quantile(counts: list[int], n: int, q: float, top: float) -> float | None:
    """The upper bound of the bucket holding the q-quantile, capped by the largest value seen."""
    if n == 0:
        return None
    rank = q * n
    seen = 0
    for i, c in enumerate(counts):
        seen += c
        if seen >= rank and c:
            return round(min(BUCKETS_MS[i], top), 3) if i < len(BUCKETS_MS) else round(top, 3)
    return round(top, 3)
