"""The administrators' traffic figures (gateway.core.stats): register entries counted per UTC
hour, each event in the column the table names, refusals weighted by the count a summary
entry carries, and every hour of the period present."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from gateway.core.register import Event, RegisterEntry
from gateway.core.stats import COUNTED, HourlyStats, hour_of

SINCE = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
UNTIL = datetime(2026, 12, 1, 14, 15, tzinfo=UTC)


def entry(
    minutes: float,
    event: Event,
    *,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    sequence: int = 1,
) -> RegisterEntry:
    """An entry `minutes` after SINCE."""
    return RegisterEntry(
        sequence=sequence,
        time=SINCE + timedelta(minutes=minutes),
        event=event.value,
        direction="in" if event in (Event.RECEIVED, Event.REJECTED) else "out",
        peer="NL-DU",
        message_id=None,
        message_type=None,
        reference=None,
        digest=None,
        status=None,
        reason=reason,
        details=details or {},
        principal=None,
        prev_hash="0" * 64,
        hash="0" * 64,
    )


def hours_of(stats: HourlyStats) -> list[dict[str, Any]]:
    return list(stats.to_dict()["hours"])


def test_every_hour_of_the_period_is_listed_from_the_hour_holding_since() -> None:
    stats = HourlyStats(SINCE, UNTIL)
    assert [h["hour"] for h in hours_of(stats)] == [
        "2026-12-01T10:00:00.000000Z",
        "2026-12-01T11:00:00.000000Z",
        "2026-12-01T12:00:00.000000Z",
        "2026-12-01T13:00:00.000000Z",
        "2026-12-01T14:00:00.000000Z",
    ]
    assert all(
        (h["sent"], h["received"], h["failures"], h["rejections"]) == (0, 0, 0, 0)
        for h in hours_of(stats)
    )


def test_a_period_ending_on_the_hour_does_not_list_that_hour() -> None:
    stats = HourlyStats(SINCE, datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    assert len(hours_of(stats)) == 2


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="ends before"):
        HourlyStats(UNTIL, SINCE)


def test_each_event_counts_in_its_column_and_hour() -> None:
    stats = HourlyStats(SINCE, UNTIL)
    stats.add(
        [
            entry(0, Event.DELIVERED),  # 10:30
            entry(29, Event.DELIVERED),  # 10:59
            entry(31, Event.RECEIVED),  # 11:01
            entry(90, Event.DELIVERY_FAILED),  # 12:00
            entry(91, Event.UNDELIVERABLE),
            entry(92, Event.REFUSED_BY_PEER, reason="schema-invalid"),
            entry(200, Event.REJECTED, reason="signature-invalid"),  # 13:50
        ]
    )
    counts = [(h["sent"], h["received"], h["failures"], h["rejections"]) for h in hours_of(stats)]
    assert counts == [(2, 0, 0, 0), (0, 1, 0, 0), (0, 0, 3, 0), (0, 0, 0, 1), (0, 0, 0, 0)]
    assert stats.totals() == {"sent": 2, "received": 1, "failures": 3, "rejections": 1}


def test_events_that_are_not_traffic_are_read_but_not_counted() -> None:
    stats = HourlyStats(SINCE, UNTIL)
    ignored = [
        Event.SUBMITTED,
        Event.ACKNOWLEDGEMENT_REFUSED,  # its attempt is a delivery-failed entry already
        Event.DEADLINE_OPENED,
        Event.TRUST_RELOAD_REFUSED,
        Event.REQUEUED,
        Event.CHECKPOINT,
    ]
    stats.add(entry(10, event) for event in ignored)
    assert stats.entries_read == len(ignored)
    assert stats.totals() == {"sent": 0, "received": 0, "failures": 0, "rejections": 0}
    assert set(COUNTED).isdisjoint(ignored)


def test_entries_outside_the_period_are_skipped_but_read() -> None:
    stats = HourlyStats(SINCE, UNTIL)
    stats.add(
        [
            entry(-1, Event.RECEIVED),  # before since (same hour: 10:29)
            entry(0, Event.RECEIVED),  # since itself counts
            entry(225, Event.RECEIVED),  # until itself (14:15) does not
            entry(10_000, Event.RECEIVED),
        ]
    )
    assert stats.entries_read == 4
    assert [h["received"] for h in hours_of(stats)] == [1, 0, 0, 0, 0]


def test_rejections_are_counted_by_reason_and_weighted_by_a_summary_count() -> None:
    """A flooding client's refusals are one entry for the first and one carrying the count
    of the others (gateway.transport.admission): the figures count the refusals."""
    stats = HourlyStats(SINCE, UNTIL)
    stats.add(
        [
            entry(1, Event.REJECTED, reason="unknown-peer", details={"count": 1}),
            entry(2, Event.REJECTED, reason="unknown-peer", details={"count": 299}),
            entry(3, Event.REJECTED, reason="throttled", details={"count": 14}),
            entry(4, Event.REJECTED, reason="signature-invalid"),
            entry(5, Event.REJECTED, reason=None),
        ]
    )
    assert stats.to_dict()["rejections_by_reason"] == {
        "signature-invalid": 1,
        "throttled": 14,
        "unknown": 1,
        "unknown-peer": 300,
    }
    assert hours_of(stats)[0]["rejections"] == 316


@pytest.mark.parametrize("count", [0, -3, "7", 2.5, True, None])
def test_a_count_that_is_not_a_positive_integer_weighs_one(count: object) -> None:
    stats = HourlyStats(SINCE, UNTIL)
    stats.add([entry(1, Event.REJECTED, reason="throttled", details={"count": count})])
    assert stats.totals()["rejections"] == 1


def test_a_count_on_another_event_is_not_a_weight() -> None:
    stats = HourlyStats(SINCE, UNTIL)
    stats.add([entry(1, Event.RECEIVED, details={"count": 50})])
    assert stats.totals()["received"] == 1


def test_failures_are_named_by_event_or_by_the_peers_reason_code() -> None:
    stats = HourlyStats(SINCE, UNTIL)
    stats.add(
        [
            entry(1, Event.DELIVERY_FAILED),
            entry(2, Event.DELIVERY_FAILED),
            entry(3, Event.UNDELIVERABLE),
            entry(4, Event.REFUSED_BY_PEER, reason="conversation-invalid"),
            entry(5, Event.REFUSED_BY_PEER),
        ]
    )
    assert stats.to_dict()["failures_by_reason"] == {
        "conversation-invalid": 1,
        "delivery-failed": 2,
        "refused-by-peer": 1,
        "undeliverable": 1,
    }


def test_pages_add_up_like_one_batch() -> None:
    entries = [entry(i * 7, Event.RECEIVED, sequence=i + 1) for i in range(30)]
    whole = HourlyStats(SINCE, UNTIL)
    whole.add(entries)
    paged = HourlyStats(SINCE, UNTIL)
    for start in range(0, 30, 4):
        paged.add(entries[start : start + 4])
    assert paged.to_dict() == whole.to_dict()
    assert whole.totals()["received"] == 30


def test_hours_are_utc_whatever_offset_the_period_is_given_in() -> None:
    brussels = timezone(timedelta(hours=1))
    stats = HourlyStats(SINCE.astimezone(brussels), UNTIL.astimezone(brussels))
    assert stats.to_dict()["since"] == "2026-12-01T10:30:00.000000Z"
    assert hours_of(stats)[0]["hour"] == "2026-12-01T10:00:00.000000Z"
    assert hour_of(datetime(2026, 12, 1, 0, 45, tzinfo=brussels)) == datetime(
        2026, 11, 30, 23, 0, tzinfo=UTC
    )


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        hour_of(datetime(2026, 12, 1, 10, 0))


def test_a_week_has_168_hours_and_31_days_744() -> None:
    start = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    assert len(HourlyStats(start, start + timedelta(days=7)).hours) == 168
    assert len(HourlyStats(start, start + timedelta(days=31)).hours) == 744
