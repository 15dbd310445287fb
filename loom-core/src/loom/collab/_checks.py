"""Argument checks shared by the primitives: each error names the parameter."""

from __future__ import annotations

import math

__all__ = ["positive_int", "positive_seconds"]


def positive_seconds(name: str, value: object) -> float:
    """``value`` as a float number of seconds > 0.

    Raises:
        ValueError: ``value`` is not a finite number > 0 (bool is no number here).
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def positive_int(name: str, value: object) -> int:
    """``value`` as an int >= 1.

    Raises:
        ValueError: ``value`` is not an int >= 1.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value
