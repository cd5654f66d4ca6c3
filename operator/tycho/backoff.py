"""Exponential backoff, the one formula: the work queue's retries of a failed pass, the Job
informer's reconnects, a local stage's retries all wait ``base, 2·base, 4·base, ...``."""

from __future__ import annotations


def delay(retry: int, *, base: float, cap: float | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (1 for the first), at most ``cap``."""
    seconds = base * 2.0 ** min(max(retry - 1, 0), 62)  # the exponent bounded: never an overflow
    return seconds if cap is None else min(cap, seconds)
