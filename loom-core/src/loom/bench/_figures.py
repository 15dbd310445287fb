"""The record a bench scenario returns."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Figure"]


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure of one run of a scenario.

    Attributes:
        metric: ``throughput``, ``p50_us``, ``p99_us``, or a descriptive name
            (``dropped``, ``rss_mb``, ``cpu_us_per_event``).
        value: the measured value.
        unit: ``events/s``, ``us``, ``MB``, ``count``, ...
    """

    metric: str
    value: float
    unit: str
