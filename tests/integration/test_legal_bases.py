"""Cases under Regulation (EU) 2024/1351 between two real gateways: the limits of the AMMR,
counted by its Art. 75 (a limit ending on a Saturday, Sunday or official holiday of the
acting State ends with the next working day), and silence with its consequence (Art. 40(8))
on both sides."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
from dateutil.relativedelta import relativedelta

from .conftest import Harness, make_harness, send_request
from .test_deadlines import advance, case_state


def _rolled_over(day: date, state: str) -> date:
    """Art. 75(c), worked out here apart from the gateway's own code."""
    official = holidays.country_holidays(state)
    while day.weekday() >= 5 or day in official:
        day += timedelta(days=1)
    return day


async def _start(tmp_path: Path) -> Harness:
    h = await make_harness(tmp_path, deadlines={"legal_basis": "2024-1351"})
    await h.start("BE-DU", "NL-DU")
    return h


async def test_2024_1351_art40_8_an_unanswered_request_is_deemed_accepted_on_both_sides(
    tmp_path: Path,
) -> None:
    h = await _start(tmp_path)
    try:
        be = h.api("BE-DU")
        sent = await send_request(be, case_number="AMMR-1")
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        both = [await h.api(c).case(sent["reference"]) for c in ("BE-DU", "NL-DU")]
        limits = [{d["rule"]: d for d in c["deadlines"]}["take_charge_reply"] for c in both]
        assert limits[0]["expires_at"] == limits[1]["expires_at"], "same expiry on both sides"
        assert {c["legal_basis"] for c in both} == {"2024-1351"}
        # Art. 40(1): one month from the receipt, in the acting (requested) State NL.
        receipt = datetime.fromisoformat(limits[0]["started_at"].replace("Z", "+00:00"))
        receipt_day = receipt.astimezone(ZoneInfo("Europe/Amsterdam")).date()
        expected = _rolled_over(receipt_day + relativedelta(months=1), "NL")
        assert limits[0]["due_date"] == expected.isoformat()
        opened = [
            e
            for e in await h.ctx("BE-DU").store.query_register(event="deadline-opened")
            if e.details["rule"] == "take_charge_reply"
        ]
        assert [(e.details["legal_basis"], e.details["article"]) for e in opened] == [
            ("2024-1351", "Art. 40(1), 40(8)")
        ]

        await advance(h, 40)
        for code in ("BE-DU", "NL-DU"):
            case = await case_state(h, code, sent["reference"], "deemed-accepted")
            rules = {d["rule"]: d for d in case["deadlines"]}
            assert rules["take_charge_reply"]["consequence"] == "deemed-acceptance"
            # Art. 42(1): the transfer decision within 2 weeks of the deemed acceptance.
            decision = rules["transfer_decision"]
            start = datetime.fromisoformat(decision["started_at"].replace("Z", "+00:00"))
            day = start.astimezone(ZoneInfo("Europe/Brussels")).date()
            assert decision["due_date"] == _rolled_over(day + timedelta(weeks=2), "BE").isoformat()
        for _ in range(100):
            expired = [
                e
                for e in await h.ctx("NL-DU").store.query_register(event="deadline-expired")
                if e.details["rule"] == "take_charge_reply"
            ]
            if expired:
                break
            await asyncio.sleep(0.05)
        assert [(e.reason, e.details["article"]) for e in expired] == [
            ("deemed-acceptance", "Art. 40(1), 40(8)")
        ]
    finally:
        await h.close()
