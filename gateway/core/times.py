"""The one text form of a moment: UTC with microseconds and a Z, on the wire (headers,
acknowledgements), in the register's canonical entries and in the API. A naive datetime is a
programming error, never read as local time."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_text(moment: datetime) -> str:
    """`2026-07-01T09:30:00.000000Z`; always four year digits and six fraction digits."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are refused: give every moment its UTC offset")
    t = moment.astimezone(UTC)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond:06d}Z"
    )


def parse_utc(text: str) -> datetime:
    """The moment a text with a zone names (a Z or an offset), in UTC; no zone is an error."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("time without zone")
    return moment.astimezone(UTC)
