"""One text form for every moment (wire, register, API): UTC, microseconds, a Z; a naive
datetime is refused rather than read as the machine's local time (issue 15, item 5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.times import parse_utc, utc_text


def test_a_moment_is_written_in_utc_with_microseconds_and_a_z() -> None:
    brussels = timezone(timedelta(hours=1))
    assert utc_text(datetime(2026, 7, 1, 10, 30, tzinfo=brussels)) == "2026-07-01T09:30:00.000000Z"


def test_early_years_keep_four_digits() -> None:
    assert utc_text(datetime(999, 1, 2, tzinfo=UTC)).startswith("0999-01-02T")


def test_a_naive_datetime_is_refused_not_read_as_local_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        utc_text(datetime(2026, 7, 1, 9, 30))


def test_a_text_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="zone"):
        parse_utc("2026-07-01T09:30:00")


@given(st.datetimes(timezones=st.just(UTC), min_value=datetime(1000, 1, 1)))
def test_the_text_reads_back_to_the_same_moment(moment: datetime) -> None:
    assert parse_utc(utc_text(moment)) == moment
