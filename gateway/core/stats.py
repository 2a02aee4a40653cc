"""The administrators' traffic figures, counted from register entries per UTC hour: messages
sent and received, failed deliveries and refused transmissions, and the reasons of both.

Pure: the caller reads the register page by page and hands each page to `HourlyStats.add`;
nothing here reads a clock or a database. Which events count, and as what, is one table
(`COUNTED`); an event not in it (a submission, a time limit, a reload) is read and ignored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gateway.core.register import Event, RegisterEntry
from gateway.core.times import utc_text

__all__ = ["COLUMNS", "COUNTED", "HOUR", "HourlyStats", "hour_of"]

Column = Literal["sent", "received", "failures", "rejections"]
COLUMNS: tuple[Column, ...] = ("sent", "received", "failures", "rejections")
HOUR = timedelta(hours=1)

COUNTED: Mapping[str, Column] = {
    Event.DELIVERED: "sent",
    Event.RECEIVED: "received",
    Event.DELIVERY_FAILED: "failures",
    Event.UNDELIVERABLE: "failures",
    Event.REFUSED_BY_PEER: "failures",
    Event.REJECTED: "rejections",
}
"""Register event -> the column it counts in. `sent` is a message the peer acknowledged
(not a submission, which may still be queued); a failure is an attempt that failed, a
message given up on, or a peer's negative acknowledgement; a rejection is a transmission or
request from a peer that we refused. `acknowledgement-refused` is not counted: the attempt
it belongs to is already a `delivery-failed` entry."""


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment`."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are refused: give every moment its UTC offset")
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _weight(entry: RegisterEntry) -> int:
    """How many refusals one entry stands for: refusals of a flooding client are recorded
    as the first one, then one entry with the `count` of the others in the interval."""
    count = entry.details.get("count") if entry.event == Event.REJECTED else None
    if isinstance(count, int) and not isinstance(count, bool) and count > 0:
        return count
    return 1


def _failure_reason(entry: RegisterEntry) -> str:
    """A peer's refusal by the reason code it gave; our own failures by their event."""
    if entry.event == Event.REFUSED_BY_PEER and entry.reason:
        return entry.reason
    return entry.event


@dataclass
class HourlyStats:
    """Counts per hour of [since, until): every hour is present, those without traffic as
    zeros, so a chart's axis is the period itself."""

    since: datetime
    until: datetime
    hours: dict[datetime, Counter[str]] = field(init=False)
    rejections_by_reason: Counter[str] = field(init=False, default_factory=Counter)
    failures_by_reason: Counter[str] = field(init=False, default_factory=Counter)
    entries_read: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.until < self.since:
            raise ValueError("the period ends before it starts")
        self.hours = {}
        hour = hour_of(self.since)
        while hour < self.until:
            self.hours[hour] = Counter()
            hour += HOUR

    def add(self, entries: Iterable[RegisterEntry]) -> None:
        """Count a page of entries (any order; entries outside the period are skipped)."""
        for entry in entries:
            self.entries_read += 1
            column = COUNTED.get(entry.event)
            if column is None or not self.since <= entry.time < self.until:
                continue
            weight = _weight(entry)
            self.hours[hour_of(entry.time)][column] += weight
            if column == "rejections":
                self.rejections_by_reason[entry.reason or "unknown"] += weight
            elif column == "failures":
                self.failures_by_reason[_failure_reason(entry)] += weight

    def totals(self) -> dict[str, int]:
        return {c: sum(counts[c] for counts in self.hours.values()) for c in COLUMNS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": utc_text(self.since),
            "until": utc_text(self.until),
            "hours": [
                {"hour": utc_text(hour)} | {c: counts[c] for c in COLUMNS}
                for hour, counts in self.hours.items()
            ],
            "totals": self.totals(),
            "rejections_by_reason": dict(sorted(self.rejections_by_reason.items())),
            "failures_by_reason": dict(sorted(self.failures_by_reason.items())),
            "entries_read": self.entries_read,
        }
