"""Art. 65 of COM(2020) 610: how a period is counted. The expected dates are worked out by
hand from the article's text, not by the code under test."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.core.calendar import Period, due_date, expires_at

BRU, ATH, LIS = "Europe/Brussels", "Europe/Athens", "Europe/Lisbon"

CASES = [
    # (event instant, zone of the acting authority, period, last day in time, why)
    ("2026-01-31T10:00:00+01:00", BRU, "P1M", "2026-02-28", "31 Jan + 1 month: no 31 Feb"),
    ("2028-01-31T10:00:00+01:00", BRU, "P1M", "2028-02-29", "leap year February"),
    ("2026-03-31T12:00:00Z", BRU, "P1M", "2026-04-30", "no 31 April"),
    ("2026-05-31T12:00:00Z", BRU, "P1M", "2026-06-30", "no 31 June"),
    ("2026-01-15T12:00:00Z", BRU, "P1M", "2026-02-15", "same date next month"),
    ("2026-12-15T12:00:00Z", BRU, "P1M", "2027-01-15", "across the year end"),
    ("2026-12-31T12:00:00Z", BRU, "P2W", "2027-01-14", "weeks across the year end"),
    ("2026-12-31T12:00:00Z", BRU, "P2M", "2027-02-28", "31 Dec + 2 months"),
    ("2027-12-31T12:00:00Z", BRU, "P2M", "2028-02-29", "31 Dec + 2 months, leap"),
    ("2028-02-29T12:00:00Z", BRU, "P1Y", "2029-02-28", "29 Feb + 1 year"),
    ("2028-02-29T12:00:00Z", BRU, "P1M", "2028-03-29", "29 Feb + 1 month"),
    ("2026-08-31T12:00:00Z", BRU, "P6M", "2027-02-28", "6 months to a short February"),
    ("2027-08-31T12:00:00Z", BRU, "P6M", "2028-02-29", "6 months to a leap February"),
    ("2026-11-23T12:00:00Z", BRU, "P1W", "2026-11-30", "Monday to Monday"),
    ("2026-11-21T12:00:00Z", BRU, "P1W", "2026-11-28", "ends on a Saturday: counted"),
    ("2026-11-22T12:00:00Z", BRU, "P2W", "2026-12-06", "ends on a Sunday: counted"),
    ("2026-12-04T12:00:00Z", BRU, "P3W", "2026-12-25", "ends on Christmas: counted"),
    ("2026-12-18T12:00:00Z", BRU, "P2W", "2027-01-01", "ends on New Year's Day: counted"),
    ("2026-11-23T23:30:00Z", ATH, "P1W", "2026-12-01", "23:30 UTC is already the 24th"),
    ("2026-07-10T22:30:00Z", BRU, "P1W", "2026-07-18", "22:30 UTC is the 11th in summer"),
    ("2026-01-10T22:30:00Z", BRU, "P1W", "2026-01-17", "22:30 UTC is still the 10th in winter"),
    ("2026-07-10T23:30:00+02:00", BRU, "P1W", "2026-07-17", "late evening local time"),
    ("2026-03-01T00:30:00+01:00", BRU, "P1M", "2026-04-01", "00:30 local, 28 Feb in UTC"),
    ("2026-03-01T00:30:00+01:00", LIS, "P1M", "2026-03-28", "the same instant in Lisbon"),
    ("2026-03-22T12:00:00Z", BRU, "P1W", "2026-03-29", "ends on the spring DST day"),
    ("2026-03-21T12:00:00Z", BRU, "P1W", "2026-03-28", "ends the day before spring DST"),
    ("2026-10-18T12:00:00Z", BRU, "P1W", "2026-10-25", "ends on the autumn DST day"),
    ("2026-10-17T12:00:00Z", BRU, "P1W", "2026-10-24", "ends the day before autumn DST"),
    ("2026-06-15T12:00:00Z", ATH, "P2W", "2026-06-29", "Athens summer"),
    ("2026-01-05T12:00:00Z", "Europe/Dublin", "P3W", "2026-01-26", "three weeks"),
    ("2026-02-01T12:00:00Z", BRU, "P4W", "2026-03-01", "four weeks over February"),
    ("2026-10-31T12:00:00Z", BRU, "P1M", "2026-11-30", "no 31 November"),
    ("2026-03-15T12:00:00Z", BRU, "P1Y", "2027-03-15", "one year"),
    ("2026-02-28T12:00:00Z", BRU, "P6M", "2026-08-28", "six months"),
    ("2026-12-28T12:00:00Z", BRU, "P1W", "2027-01-04", "a week over the year end"),
    ("2027-02-15T12:00:00Z", BRU, "P3W", "2027-03-08", "three weeks over a short February"),
    ("2028-02-15T12:00:00Z", BRU, "P3W", "2028-03-07", "three weeks over a leap February"),
    ("2026-02-20T12:00:00Z", BRU, "P2W", "2026-03-06", "two weeks over February"),
    ("2026-01-30T12:00:00Z", BRU, "P1M", "2026-02-28", "30 Jan + 1 month"),
    ("2026-01-29T12:00:00Z", BRU, "P1M", "2026-02-28", "29 Jan + 1 month, no 29 Feb"),
    ("2028-01-30T12:00:00Z", BRU, "P1M", "2028-02-29", "30 Jan + 1 month, leap"),
    ("2026-06-30T23:59:00Z", "Atlantic/Reykjavik", "P1M", "2026-07-30", "UTC all year"),
    ("2026-06-30T22:30:00Z", "Europe/Helsinki", "P1M", "2026-08-01", "already 1 July"),
    ("2026-09-30T12:00:00Z", BRU, "P10D", "2026-10-10", "days"),
]


@pytest.mark.parametrize(
    ("event", "zone", "period", "expected", "why"), CASES, ids=[c[4] for c in CASES]
)
def test_art65_period_ends_at_the_end_of_the_matching_day(
    event: str, zone: str, period: str, expected: str, why: str
) -> None:
    got = due_date(datetime.fromisoformat(event), Period.parse(period), ZoneInfo(zone))
    assert got == date.fromisoformat(expected), why


@pytest.mark.parametrize(
    ("due", "zone", "expires"),
    [
        ("2026-03-29", BRU, "2026-03-29T22:00:00+00:00"),  # ends in summer time
        ("2026-03-28", BRU, "2026-03-28T23:00:00+00:00"),  # ends in winter time
        ("2026-10-25", BRU, "2026-10-25T23:00:00+00:00"),  # back in winter time
        ("2026-10-24", BRU, "2026-10-24T22:00:00+00:00"),
        ("2026-06-29", ATH, "2026-06-29T21:00:00+00:00"),
        ("2026-01-26", "Europe/Dublin", "2026-01-27T00:00:00+00:00"),
    ],
)
def test_art65_limit_passes_at_local_midnight_ending_the_last_day(
    due: str, zone: str, expires: str
) -> None:
    assert expires_at(date.fromisoformat(due), ZoneInfo(zone)) == datetime.fromisoformat(expires)


def test_art65_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        due_date(datetime(2026, 1, 1, 12), Period.parse("P1W"), ZoneInfo(BRU))


@pytest.mark.parametrize("text", ["P", "1M", "P1M2W", "P0W", "PT5H", "P-1M", "P1X"])
def test_only_single_unit_periods_are_accepted(text: str) -> None:
    with pytest.raises(ValueError):
        Period.parse(text)
