"""Computing time limits by Art. 65 of COM(2020) 610, Art. 42 of 604/2013 and Art. 75(a)-(b)
of 2024/1351 (the three agree on what is here; the roll-over of Art. 75(c) is in
`deadlines.compute`).

The day of the event is not counted; a period in weeks ends with the end of the day of the
last week that has the same weekday as the event day; a period in months (or years) ends with
the end of the day of the last month with the same date, or of that month's last day when the
date does not exist in it. Saturdays, Sundays and public holidays count. The event day is the
calendar day, in the time zone of the authority that must act, of the event instant."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Unit = Literal["days", "weeks", "months", "years"]
_ISO = re.compile(r"^P(?P<n>[1-9][0-9]{0,3})(?P<u>[DWMY])$")
_UNITS: dict[str, Unit] = {"D": "days", "W": "weeks", "M": "months", "Y": "years"}


@dataclass(frozen=True)
class Period:
    amount: int
    unit: Unit

    @classmethod
    def parse(cls, text: str) -> Period:
        """An ISO 8601 duration of a single unit: P2M, P1W, P3W, P6M, P1Y, P10D."""
        m = _ISO.match(text)
        if not m:
            raise ValueError(f"{text!r} is not a period such as P2M, P1W or P1Y")
        return cls(int(m["n"]), _UNITS[m["u"]])

    def __str__(self) -> str:
        return f"P{self.amount}{self.unit[0].upper()}"


def event_day(event: datetime, zone: ZoneInfo) -> date:
    if event.tzinfo is None or event.utcoffset() is None:
        raise ValueError("naive datetimes are refused: give the instant with its UTC offset")
    return event.astimezone(zone).date()


def _add_months(day: date, months: int) -> date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def add_period(day: date, period: Period) -> date:
    if period.unit == "days":
        return day + timedelta(days=period.amount)
    if period.unit == "weeks":
        return day + timedelta(weeks=period.amount)
    months = period.amount * (12 if period.unit == "years" else 1)
    return _add_months(day, months)


def due_date(event: datetime, period: Period, zone: ZoneInfo) -> date:
    """The last day on which acting is still in time."""
    return add_period(event_day(event, zone), period)


def expires_at(due: date, zone: ZoneInfo) -> datetime:
    """The first instant at which the limit has passed: local midnight ending `due`, in UTC."""
    return datetime.combine(due + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
