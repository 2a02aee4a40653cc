"""The time limits of COM(2020) 610 Art. 29-35 and 40, as data, by their public names."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.cli import main
from gateway.core.deadlines import (
    DeadlineError,
    available_rule_sets,
    compute,
    load_rule_set,
    parse_rule_set,
)

START = datetime.fromisoformat("2026-03-10T09:00:00+01:00")  # a Tuesday in Brussels
BRU = ZoneInfo("Europe/Brussels")

EXPECTED = {
    "take_charge_request": "2026-05-10",  # 2 months, Art. 29(1)
    "take_charge_request_hit": "2026-04-10",  # 1 month
    "take_charge_request_detained": "2026-03-24",  # 2 weeks
    "take_charge_request_detained_later": "2026-03-17",  # 1 week
    "take_charge_reply": "2026-04-10",  # 1 month, Art. 30(1)
    "take_charge_reply_hit": "2026-03-24",  # 2 weeks
    "take_charge_reply_urgent": "2026-03-24",  # 2 weeks without a requested date
    "take_charge_reply_detained": "2026-03-17",  # 1 week, Art. 34(3)
    "humanitarian_reply": "2026-05-10",  # 2 months
    "take_back_notification": "2026-03-24",  # 2 weeks, Art. 31(1)
    "take_back_confirmation": "2026-03-17",  # 1 week, Art. 31(3)
    "transfer_decision": "2026-03-17",  # 1 week, Art. 32(1)
    "transfer": "2026-09-10",  # 6 months, Art. 35(1)
    "transfer_imprisoned": "2027-03-10",  # 1 year
    "transfer_detained": "2026-04-07",  # 4 weeks
    "info_reply": "2026-03-31",  # 3 weeks, Art. 40(5)
}


def test_the_rule_set_records_its_legal_basis_and_every_named_rule() -> None:
    rules = load_rule_set()
    assert rules.legal_basis == "COM(2020) 610"
    assert set(rules.rules) == set(EXPECTED)
    assert "com-2020-610" in available_rule_sets()


@pytest.mark.parametrize(("name", "due"), sorted(EXPECTED.items()))
def test_each_rule_gives_its_due_date(name: str, due: str) -> None:
    deadline = compute(load_rule_set().rules[name], START, BRU)
    assert deadline.due_date == date.fromisoformat(due)


def test_art30_7_urgent_reply_shows_a_requested_date_of_at_least_one_week_as_due() -> None:
    """Art. 30(7)-(8): the requested date is shown as due, and acceptance is deemed only at
    the end of the two weeks (LEGAL-BASES defect 4: it was deemed at the requested date)."""
    rule = load_rule_set().rules["take_charge_reply_urgent"]
    for wanted in (date(2026, 3, 20), date(2026, 3, 17)):
        deadline = compute(rule, START, BRU, wanted)
        assert deadline.requested_date == wanted
        assert deadline.due_date == date(2026, 3, 24)
    with pytest.raises(DeadlineError, match="less than P1W"):
        compute(rule, START, BRU, date(2026, 3, 16))
    with pytest.raises(DeadlineError, match="does not take a requested date"):
        compute(load_rule_set().rules["take_charge_reply"], START, BRU, date(2026, 3, 20))


def test_silence_consequences_are_declared_with_their_articles() -> None:
    rules = load_rule_set().rules
    assert rules["take_charge_reply"].consequence == "deemed-acceptance"
    assert rules["take_back_confirmation"].consequence == "deemed-confirmation"
    assert rules["transfer"].consequence == "responsibility-shifted"
    assert rules["info_reply"].article == "Art. 40(5)"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rules": []}, "legal_basis"),
        (
            {
                "legal_basis": "X",
                "rules": [
                    {
                        "name": "a",
                        "period": "P2Q",
                        "runs_from": "receipt",
                        "acting": "requested",
                        "article": "1",
                        "verified": True,
                        "source": "s",
                    }
                ],
            },
            "rule a",
        ),
        (
            {
                "legal_basis": "X",
                "rules": [
                    {
                        "name": "a",
                        "period": "P1W",
                        "runs_from": "receipt",
                        "acting": "nobody",
                        "article": "1",
                        "verified": True,
                        "source": "s",
                    }
                ],
            },
            "acting",
        ),
        (
            {
                "legal_basis": "X",
                "rules": [
                    {
                        "name": "a",
                        "period": "P1W",
                        "runs_from": "receipt",
                        "acting": "requested",
                        "article": "1",
                        "verified": True,
                        "source": "s",
                        "x": 1,
                    }
                ],
            },
            "unknown keys",
        ),
    ],
)
def test_malformed_rule_files_are_refused(data: object, message: str) -> None:
    with pytest.raises(DeadlineError, match=message):
        parse_rule_set(data, "bad.json")


def test_unknown_legal_basis_is_refused() -> None:
    with pytest.raises(DeadlineError, match="unknown legal basis"):
        load_rule_set("regulation-of-atlantis")


def test_cli_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "deadline",
                "take_charge_reply",
                "--from",
                "2026-01-31T10:00:00+01:00",
                "--tz",
                "Europe/Brussels",
                "--legal-basis",
                "com-2020-610",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "rule": "take_charge_reply",
        "legal_basis": "com-2020-610",
        "article": "Art. 30(1), 30(8)",
        "due_date": "2026-02-28",
        "expires_at": "2026-02-28T23:00:00Z",
        "verified": True,
    }


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (
            ["take_charge_reply", "--from", "2026-01-31T10:00:00", "--tz", "Europe/Brussels"],
            "UTC offset",
        ),
        (
            ["take_over", "--from", "2026-01-31T10:00:00Z", "--tz", "Europe/Brussels"],
            "unknown rule",
        ),
        (["transfer", "--from", "2026-01-31T10:00:00Z", "--tz", "Europe/Atlantis"], "time zone"),
        (
            [
                "take_charge_reply_urgent",
                "--from",
                "2026-01-31T10:00:00Z",
                "--tz",
                "Europe/Brussels",
                "--state",
                "BE",
                "--requested",
                "2026-02-03",
            ],
            "less than P1W",
        ),
        (
            ["take_charge_reply", "--from", "2026-01-31T10:00:00Z", "--tz", "Europe/Athens"],
            "--state",
        ),
        (
            [
                *("take_charge_reply", "--from", "2026-01-31T10:00:00Z", "--tz", "Europe/Athens"),
                *("--state", "XX"),
            ],
            "unknown State 'XX'",
        ),
        (
            [
                *("take_charge_reply", "--from", "2026-01-31T10:00:00Z", "--tz", "Europe/Athens"),
                *("--legal-basis", "2013-604"),
            ],
            "available: 2024-1351, 604-2013, com-2020-610",
        ),
        (
            [
                *("take_back_request", "--from", "2026-01-31T10:00:00Z", "--tz", "Europe/Athens"),
                *("--state", "GR"),
            ],
            "unknown rule 'take_back_request' for 2024-1351; known:",
        ),
    ],
)
def test_cli_refuses_bad_input_with_one_line(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["deadline", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and "\n" not in err
