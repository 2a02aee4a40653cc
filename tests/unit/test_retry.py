"""Delivery retry: exponential backoff with jitter, bounded attempts. Time limits are not
suspended by outages (1560/2003 Art. 18), so the sender keeps trying and logs every attempt."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.retry import RetryPolicy


def test_delay_doubles_and_is_capped() -> None:
    p = RetryPolicy(initial_delay=1, max_delay=10, multiplier=2, max_attempts=5)
    assert [p.delay(n, 0.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 5.0]
    assert p.delay(30, 0.999) < 10


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0, max_value=0.999))
def test_delay_stays_between_half_and_full_base(n: int, jitter: float) -> None:
    p = RetryPolicy(initial_delay=0.5, max_delay=60)
    d = p.delay(n, jitter)
    base = min(60, 0.5 * 2 ** (n - 1))
    assert base / 2 <= d <= base


def test_exhausted_after_max_attempts() -> None:
    p = RetryPolicy(max_attempts=3)
    assert not p.exhausted(2)
    assert p.exhausted(3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_delay": 0},
        {"initial_delay": 5, "max_delay": 1},
        {"multiplier": 0.5},
        {"max_attempts": 0},
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_a_thousandth_attempt_waits_the_cap_and_does_not_overflow() -> None:
    """The webhook adapter retries without a bound on attempts (dead letters aside)."""
    policy = RetryPolicy(initial_delay=1.0, max_delay=300.0, max_attempts=10_000)
    assert policy.delay(5000, 0.0) == 150.0
    assert policy.delay(5000, 0.999) <= 300.0
