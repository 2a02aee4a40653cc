"""Per-peer admission limits (issue 14, item 6): the pure accounting of core/throttle.py."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import ConfigError, parse_config
from gateway.core.throttle import Limit, PeerLimits, PeerQuotas, Throttled, retry_after_seconds

LIMITS = PeerLimits(
    requests_per_second=2.0, burst=5, max_concurrent_requests=3, max_bytes_in_flight=1000
)


def test_a_burst_is_admitted_then_the_rate_applies_with_retry_after() -> None:
    q = PeerQuotas(LIMITS)
    for _ in range(5):
        assert q.admit("BE-DU", 0, now=0.0) is None
        q.release("BE-DU", 0)
    refused = q.admit("BE-DU", 0, now=0.0)
    assert refused == Throttled(Limit.RATE, 1)
    # Half a second later one token (2 per second) is back.
    assert q.admit("BE-DU", 0, now=0.5) is None


def test_retry_after_is_the_wait_for_the_next_token_in_whole_seconds() -> None:
    q = PeerQuotas(PeerLimits(0.25, 1, 10, 1000))
    assert q.admit("BE-DU", 0, now=0.0) is None
    q.release("BE-DU", 0)
    assert q.admit("BE-DU", 0, now=1.0) == Throttled(Limit.RATE, 3)


def test_each_peer_has_its_own_quota() -> None:
    q = PeerQuotas(PeerLimits(1.0, 1, 1, 1000))
    assert q.admit("BE-DU", 10, now=0.0) is None
    assert q.admit("NL-DU", 10, now=0.0) is None
    assert q.admit("BE-DU", 10, now=0.0) == Throttled(Limit.CONCURRENT, 1)


def test_concurrent_requests_are_limited_until_one_is_released() -> None:
    q = PeerQuotas(PeerLimits(100.0, 100, 2, 10_000))
    assert q.admit("BE-DU", 1, now=0.0) is None
    assert q.admit("BE-DU", 1, now=0.0) is None
    assert q.admit("BE-DU", 1, now=0.0) == Throttled(Limit.CONCURRENT, 1)
    q.release("BE-DU", 1)
    assert q.admit("BE-DU", 1, now=0.0) is None
    assert q.in_flight("BE-DU") == (2, 2)


def test_a_body_beyond_the_bytes_in_flight_is_refused_while_others_are_in_flight() -> None:
    q = PeerQuotas(LIMITS)
    assert q.admit("BE-DU", 600, now=0.0) is None
    assert q.admit("BE-DU", 500, now=0.0) == Throttled(Limit.BYTES, 1)
    assert q.admit("BE-DU", 400, now=0.0) is None  # 1000 in flight: at the limit, not past
    q.release("BE-DU", 600)
    q.release("BE-DU", 400)
    assert q.admit("BE-DU", 500, now=0.0) is None


def test_a_lone_body_is_never_refused_for_its_size() -> None:
    """The largest body is bounded by peer.max_body_bytes (413), not by this limit."""
    q = PeerQuotas(LIMITS)
    assert q.admit("BE-DU", 5000, now=0.0) is None


def test_a_refused_request_takes_no_token() -> None:
    q = PeerQuotas(PeerLimits(1.0, 2, 1, 1000))
    assert q.admit("BE-DU", 0, now=0.0) is None
    for _ in range(10):
        assert q.admit("BE-DU", 0, now=0.0) == Throttled(Limit.CONCURRENT, 1)
    q.release("BE-DU", 0)
    assert q.admit("BE-DU", 0, now=0.0) is None


def test_releasing_more_than_was_admitted_is_a_programming_error() -> None:
    q = PeerQuotas(LIMITS)
    assert q.admit("BE-DU", 10, now=0.0) is None
    q.release("BE-DU", 10)
    with pytest.raises(ValueError, match="released more"):
        q.release("BE-DU", 10)


@given(
    times=st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=300),
    rate=st.floats(min_value=0.1, max_value=50),
    burst=st.integers(min_value=1, max_value=20),
)
def test_never_more_than_the_burst_plus_the_rate_over_any_run(
    times: list[float], rate: float, burst: int
) -> None:
    q = PeerQuotas(PeerLimits(rate, burst, 1000, 1000))
    admitted = 0
    ordered = sorted(times)
    for now in ordered:
        if q.admit("BE-DU", 0, now=now) is None:
            admitted += 1
            q.release("BE-DU", 0)
    span = (ordered[-1] - ordered[0]) if ordered else 0.0
    assert admitted <= burst + rate * span + 1e-6


@given(st.integers(min_value=1, max_value=1000), st.floats(min_value=0.01, max_value=100))
def test_retry_after_is_honest_a_peer_waiting_that_long_is_admitted(
    burst: int, rate: float
) -> None:
    q = PeerQuotas(PeerLimits(rate, burst, 10_000, 1000))
    now = 0.0
    while (refused := q.admit("BE-DU", 0, now=now)) is None:
        q.release("BE-DU", 0)
    assert refused.limit is Limit.RATE and refused.retry_after >= 1
    assert q.admit("BE-DU", 0, now=now + refused.retry_after) is None


def test_the_refusal_text_names_the_limit() -> None:
    assert "2 requests per second (burst 5)" in Throttled(Limit.RATE, 1).text(LIMITS)
    assert "1000 bytes of bodies in flight" in Throttled(Limit.BYTES, 1).text(LIMITS)
    assert "3 concurrent requests" in Throttled(Limit.CONCURRENT, 1).text(LIMITS)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("Fri, 04 Dec 2026 12:00:30 GMT", 30.0),
        ("Fri, 04 Dec 2026 11:00:00 GMT", 0.0),  # in the past: at once
        ("soon", None),
        ("-3", None),
        ("1.5", None),
        (None, None),
    ],
)
def test_retry_after_header_is_read_as_seconds_or_an_http_date(
    value: str | None, seconds: float | None
) -> None:
    now = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds(value, now) == seconds


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PeerLimits(0, 1, 1, 1)
    with pytest.raises(ValueError):
        PeerLimits(1, 0, 1, 1)


def test_bytes_in_flight_below_the_largest_body_is_a_configuration_error() -> None:
    raw = {"max_body_bytes": 2_000_000, "max_bytes_in_flight": 1_000_000}
    with pytest.raises(ConfigError, match=r"peer\.max_bytes_in_flight must be at least"):
        parse_config({"authority": "BE-DU", "peer": raw}, Path("/etc/gw/gateway.toml"))
    limits = parse_config({"authority": "BE-DU"}, Path("/etc/gw/gateway.toml")).peer.limits()
    assert limits.max_bytes_in_flight >= 10 * 1024 * 1024  # the default largest body fits
