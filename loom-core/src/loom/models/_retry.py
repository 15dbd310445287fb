"""Backoff between attempts, and the server's own word on it (``Retry-After``)."""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping

__all__ = ["Backoff", "parse_retry_after"]


class Backoff:
    """Exponential backoff with "equal jitter": attempt n waits between half and all of
    ``min(max_s, base_s * 2**n)``, so clients that failed together do not retry together,
    and none retries at once.

    Args:
        base_s: the first (largest possible) wait.
        max_s: the cap on the computed wait.
        rng: the source of jitter (seed it for reproducible tests).

    Example:
        >>> b = Backoff(0.5, 8.0, random.Random(1))
        >>> 0.25 <= b.delay(0) <= 0.5 and 4.0 <= b.delay(10) <= 8.0
        True
    """

    def __init__(self, base_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self._rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0 for the first)."""
        ceiling = min(self.max_s, self.base_s * 2.0 ** min(attempt, 62))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asks to wait, from ``retry-after-ms`` (OpenAI's) or ``Retry-After``
    (seconds, or an HTTP date); None when absent or unreadable. Never negative."""
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(0.0, value)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
