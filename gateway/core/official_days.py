"""Which days are working days in a Member State, for the counting rules that move a limit
ending on a Saturday, Sunday or official holiday to the next working day (Art. 75(c) of
Regulation (EU) 2024/1351).

Official holidays come from the maintained `holidays` package (its version is pinned in
pyproject.toml, so that both gateways of a case count the same days), never from a list
written here. Its national public holidays are used: a holiday of one region only does not
move a limit (the Regulation speaks of the Member State). Pure computation, no I/O."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date
from importlib import metadata

import holidays


class UnknownState(ValueError):
    """A code that names no State applying the Dublin rules."""


EU_CODES = {"EL": "GR"}
"""The EU's own codes that differ from ISO 3166-1 alpha-2 (Greece is EL in EU texts)."""

DUBLIN_STATES = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
        # associated States applying the Dublin rules by agreement
        "CH", "IS", "LI", "NO",
    }
)  # fmt: skip


def state_code(code: str) -> str:
    """The ISO 3166-1 alpha-2 code of a Dublin State given by its ISO or EU code."""
    iso = EU_CODES.get(code.strip().upper(), code.strip().upper())
    if iso not in DUBLIN_STATES:
        raise UnknownState(
            f"unknown State {code!r}: give the ISO 3166-1 alpha-2 code of a State applying the "
            f"Dublin rules ({', '.join(sorted(DUBLIN_STATES))}; EL is accepted for GR)"
        )
    return iso


@functools.cache
def _calendar(iso: str) -> holidays.HolidayBase:
    return holidays.country_holidays(iso)


def official_holiday(state: str, day: date) -> str | None:
    """The name of the official holiday on `day` in `state`, or None."""
    name = _calendar(state_code(state)).get(day)
    return str(name) if name is not None else None


def off_day(state: str) -> Callable[[date], bool]:
    """A test for the days that are not working days in `state`: Saturdays, Sundays and its
    official holidays."""
    iso = state_code(state)
    calendar = _calendar(iso)
    return lambda day: day.weekday() >= 5 or day in calendar


def holidays_version() -> str:
    """The version of the `holidays` package the official days come from."""
    return metadata.version("holidays")
