"""The one backoff formula: doubling from the base, capped, never overflowing."""

from __future__ import annotations

from tycho import backoff


def test_retries_wait_the_base_then_double() -> None:
    assert [backoff.delay(n, base=10) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]


def test_the_cap_bounds_the_wait() -> None:
    assert [backoff.delay(n, base=2, cap=60) for n in (1, 5, 6, 40)] == [2, 32, 60, 60]


def test_a_huge_retry_count_neither_overflows_nor_goes_below_the_cap() -> None:
    assert backoff.delay(10_000, base=1, cap=30) == 30
    assert backoff.delay(0, base=3) == 3
