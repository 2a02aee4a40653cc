"""Cases under Regulation (EU) 2024/1351 between two real gateways: the limits of the AMMR,
counted by its Art. 75 (a limit ending on a Saturday, Sunday or official holiday of the
acting State ends with the next working day), and silence with its consequence (Art. 40(8))
on both sides."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta

from gateway.client import ApiError
from gateway.examples import attachments_for

from .conftest import Harness, example, gateway_now, make_harness, send_request
from .test_deadlines import advance, case_state, rolled_over


async def _start(tmp_path: Path, valid_days: int = 365) -> Harness:
    h = await make_harness(tmp_path, deadlines={"legal_basis": "2024-1351"}, valid_days=valid_days)
    await h.start("BE-DU", "NL-DU")
    return h


async def _accepted_case(h: Harness, case_number: str, *notices: str, **kw: Any) -> str:
    """A take charge request from BE-DU that NL-DU accepts, then BE-DU's transfer notices
    (example names), each delivered; the case's reference."""
    be, nl = h.api("BE-DU"), h.api("NL-DU")
    sent = await send_request(be, case_number=case_number, **kw)
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    reply = await nl.submit(
        "take-charge-reply",
        "BE-DU",
        example("take-charge-reply-acceptance.json"),
        in_reply_to=sent["message_id"],
    )
    await nl.wait_for_state(reply["message_id"], {"delivered"}, within=20)
    for name in notices:
        await _notify(h, sent["reference"], name)
    return str(sent["reference"])


async def _notify(h: Harness, case: str, name: str) -> None:
    """BE-DU sends the transfer notice of example `name` in `case`, delivered."""
    be = h.api("BE-DU")
    notice = await be.submit("transfer-notice", "NL-DU", example(f"{name}.json"), case=case)
    await be.wait_for_state(notice["message_id"], {"delivered"}, within=20)


async def _limits(h: Harness, code: str, case: str, state: str) -> dict[str, list[Any]]:
    """The case's limits at `code` once the case is in `state`, by rule, oldest first."""
    view = await case_state(h, code, case, state)
    found: dict[str, list[Any]] = {}
    for d in view["deadlines"]:
        found.setdefault(d["rule"], []).append(d)
    return found


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
        expected = rolled_over(receipt_day + relativedelta(months=1), "NL")
        assert limits[0]["due_date"] == expected.isoformat()
        opened = [
            e
            for e in await h.ctx("BE-DU").store.register.query(event="deadline-opened")
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
            assert decision["due_date"] == rolled_over(day + timedelta(weeks=2), "BE").isoformat()
        for _ in range(100):
            expired = [
                e
                for e in await h.ctx("NL-DU").store.register.query(event="deadline-expired")
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


async def test_2024_1351_art46_1_an_appeal_with_suspensive_effect_restarts_the_transfer_limit(
    tmp_path: Path,
) -> None:
    """Art. 46(1) with 43(3): the 6-month transfer limit runs from the acceptance, or from the
    final decision on an appeal when the appeal has suspensive effect. Suspensive effect
    closes the running limit (no responsibility shift while the court decides, however long);
    the final decision opens it again, running from the decision's day, on both sides."""
    h = await _start(tmp_path)
    try:
        be, nl = h.api("BE-DU"), h.api("NL-DU")
        sent = await send_request(be, case_number="AMMR-APPEAL")
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        reply = await nl.submit(
            "take-charge-reply",
            "BE-DU",
            example("take-charge-reply-acceptance.json"),
            in_reply_to=sent["message_id"],
        )
        await nl.wait_for_state(reply["message_id"], {"delivered"}, within=20)
        case = sent["reference"]
        for kind in ("decision-taken", "suspensive-effect"):
            notice = await be.submit(
                "transfer-notice", "NL-DU", example(f"transfer-notice-{kind}.json"), case=case
            )
            await be.wait_for_state(notice["message_id"], {"delivered"}, within=20)
        for code in ("BE-DU", "NL-DU"):
            view = await case_state(h, code, case, "appeal-pending")
            transfer = {d["rule"]: d for d in view["deadlines"]}["transfer"]
            assert transfer["state"] == "closed"
        # Eight months pass while the court decides: no limit expires, nothing shifts.
        await advance(h, 240)
        await asyncio.sleep(0.5)
        for code in ("BE-DU", "NL-DU"):
            assert (await h.api(code).case(case))["state"] == "appeal-pending"
        now = h.ctx("BE-DU").clock()
        decided = (now.astimezone(ZoneInfo("Europe/Brussels")) - timedelta(days=2)).date()
        form = {"kind": "final-decision", "date": decided.isoformat()}
        final = await be.submit("transfer-notice", "NL-DU", form, case=case)
        await be.wait_for_state(final["message_id"], {"delivered"}, within=20)
        expected = rolled_over(decided + relativedelta(months=6), "BE").isoformat()
        for code in ("BE-DU", "NL-DU"):
            view = await case_state(h, code, case, "transfer-decided")
            running = [
                d for d in view["deadlines"] if d["rule"] == "transfer" and d["state"] == "open"
            ]
            assert [(d["due_date"], d["article"]) for d in running] == [
                (expected, "Art. 46(1)-(2)")
            ]
    finally:
        await h.close()


async def test_2024_1351_art46_2_after_a_failed_appearance_the_transfer_limit_still_runs(
    tmp_path: Path,
) -> None:
    """Issue 16, defect 5: a person who fails to appear does not end the case. The
    transferring State may arrange the transfer again within the 6 months (Art. 46(1)), and
    when they pass without a transfer responsibility moves to it (Art. 46(2)), on both
    sides."""
    h = await _start(tmp_path)
    try:
        be, nl = h.api("BE-DU"), h.api("NL-DU")
        sent = await send_request(be, case_number="AMMR-FTA")
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        reply = await nl.submit(
            "take-charge-reply",
            "BE-DU",
            example("take-charge-reply-acceptance.json"),
            in_reply_to=sent["message_id"],
        )
        await nl.wait_for_state(reply["message_id"], {"delivered"}, within=20)
        case = sent["reference"]
        steps = (
            (be, "NL-DU", "transfer-notice-decision-taken"),
            (nl, "BE-DU", "transfer-notice-failed-to-appear"),
            (be, "NL-DU", "transfer-notice-arrangements"),
        )
        for client, receiver, name in steps:
            notice = await client.submit(
                "transfer-notice", receiver, example(f"{name}.json"), case=case
            )
            await client.wait_for_state(notice["message_id"], {"delivered"}, within=20)
        for code in ("BE-DU", "NL-DU"):
            await case_state(h, code, case, "transfer-arranged")
        await advance(h, 200)
        for code in ("BE-DU", "NL-DU"):
            view = await case_state(h, code, case, "responsibility-shifted")
            transfer = {d["rule"]: d for d in view["deadlines"]}["transfer"]
            assert transfer["state"] == "expired" and transfer["article"] == "Art. 46(1)-(2)"
    finally:
        await h.close()


async def test_2024_1351_art41_3_a_take_back_notification_confirmed_on_day_13_is_confirmed(
    tmp_path: Path,
) -> None:
    """Art. 41(3)-(4): the notified State confirms within 2 weeks (the proposal gave it 1
    week): a confirmation on day 13 confirms, on both sides, and no deemed confirmation is
    recorded; the transfer limits then run from the confirmation."""
    h = await _start(tmp_path)
    try:
        be, nl = h.api("BE-DU"), h.api("NL-DU")
        form = example("take-back-notification.json")
        sent = await be.submit(
            "take-back-notification",
            "NL-DU",
            form,
            case_number="AMMR-TB13",
            attachments=attachments_for(form),
        )
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        view = await nl.case(sent["reference"])
        limit = {d["rule"]: d for d in view["deadlines"]}["take_back_confirmation"]
        assert limit["article"] == "Art. 41(3)-(4)"
        await advance(h, 13)
        await asyncio.sleep(0.3)
        for code in ("BE-DU", "NL-DU"):
            assert (await h.api(code).case(sent["reference"]))["state"] == "notified"
        confirmation = await nl.submit(
            "take-back-confirmation",
            "BE-DU",
            example("take-back-confirmation-confirmation.json"),
            in_reply_to=sent["message_id"],
        )
        await nl.wait_for_state(confirmation["message_id"], {"delivered"}, within=20)
        for code in ("BE-DU", "NL-DU"):
            view = await case_state(h, code, sent["reference"], "confirmed")
            rules = {d["rule"]: d for d in view["deadlines"]}
            assert rules["take_back_confirmation"]["state"] == "met"
            assert {"transfer_decision", "transfer"} <= set(rules)
        expired = [
            e
            for code in ("BE-DU", "NL-DU")
            for e in await h.ctx(code).store.register.query(event="deadline-expired")
        ]
        assert expired == []
    finally:
        await h.close()


async def test_2024_1351_art46_2_imprisonment_extends_the_transfer_limit_to_a_year(
    tmp_path: Path,
) -> None:
    """Issue 16, defect 3: Art. 46(2) extends the transfer limit to at most 1 year when the
    transfer could not be carried out because of imprisonment. The notice closes the 6-month
    limit and opens the 1-year one from where the 6 months ran from (the acceptance), on both
    sides: 7 months later nothing has shifted; after the year, responsibility moves."""
    h = await _start(tmp_path)
    try:
        case = await _accepted_case(
            h, "AMMR-PRISON", "transfer-notice-decision-taken", "transfer-notice-imprisoned"
        )
        for code in ("BE-DU", "NL-DU"):
            view = await case_state(h, code, case, "transfer-decided")
            limits = {d["rule"]: d for d in view["deadlines"]}
            six, year = limits["transfer"], limits["transfer_imprisoned"]
            assert six["state"] == "closed" and year["state"] == "open"
            assert year["started_at"] == six["started_at"], "from the acceptance, not the notice"
            start = datetime.fromisoformat(year["started_at"].replace("Z", "+00:00"))
            day = start.astimezone(ZoneInfo("Europe/Brussels")).date()
            assert year["due_date"] == rolled_over(day + relativedelta(years=1), "BE").isoformat()
            assert year["article"] == "Art. 46(2)"
        await advance(h, 213)
        await asyncio.sleep(0.5)
        for code in ("BE-DU", "NL-DU"):
            assert (await h.api(code).case(case))["state"] == "transfer-decided"
        await advance(h, 160)
        for code in ("BE-DU", "NL-DU"):
            await case_state(h, code, case, "responsibility-shifted")
    finally:
        await h.close()


async def test_2024_1359_art12_a_crisis_derogation_lengthens_the_limits_the_state_must_meet(
    tmp_path: Path,
) -> None:
    """2024/1359 Art. 12(2): the operator publishes, in the signed directory, that NL's State
    is authorised by a Council implementing decision to derogate for a period. A take charge
    request to NL-DU received in that period gives NL 2 months to reply instead of 1 (on both
    sides, with the decision and the derogating article shown); one to GR-DU, which does not
    derogate, keeps 1 month and is deemed accepted when it passes, NL's is not."""
    import json

    from gateway.core.directory import Directory
    from gateway.pki.signed_directory import publish_directory
    from gateway.service.trust import load_signer_files

    h = await make_harness(tmp_path)
    pki = h.net.pki
    data = json.loads(pki.directory_source.read_text())
    today = gateway_now().astimezone(ZoneInfo("Europe/Amsterdam")).date()
    decision = "Council Implementing Decision (fictional, for this test) authorising NL"
    for entry in data["authorities"]:
        if entry["code"] == "NL-DU":
            entry["crisis_derogations"] = [
                {
                    "decision": decision,
                    "from": (today - timedelta(days=1)).isoformat(),
                    "until": (today + timedelta(days=90)).isoformat(),
                }
            ]
    data["version"] = int(data.get("version", 1)) + 1
    signer = load_signer_files(pki.publisher_cert, pki.publisher_key)
    publish_directory(pki.directory, Directory.from_dict(data), signer, datetime.now(UTC))
    await h.start("BE-DU", "NL-DU", "GR-DU")
    try:
        be = h.api("BE-DU")
        to_nl = await send_request(be, "NL-DU", case_number="CRISIS-NL")
        to_gr = await send_request(be, "GR-DU", case_number="CRISIS-GR")
        for sent in (to_nl, to_gr):
            await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        for code in ("BE-DU", "NL-DU"):
            view = await h.api(code).case(to_nl["reference"])
            limit = {d["rule"]: d for d in view["deadlines"]}["take_charge_reply"]
            start = datetime.fromisoformat(limit["started_at"].replace("Z", "+00:00"))
            day = start.astimezone(ZoneInfo("Europe/Amsterdam")).date()
            assert limit["due_date"] == rolled_over(day + relativedelta(months=2), "NL").isoformat()
            assert limit["crisis_derogation"] == decision
            assert limit["article"] == "Art. 40(1), 40(8) as derogated by 2024/1359 Art. 12(2)"
        gr = {d["rule"]: d for d in (await be.case(to_gr["reference"]))["deadlines"]}
        assert gr["take_charge_reply"]["crisis_derogation"] is None
        await advance(h, 40)
        await case_state(h, "BE-DU", to_gr["reference"], "deemed-accepted")
        for code in ("BE-DU", "NL-DU"):
            assert (await h.api(code).case(to_nl["reference"]))["state"] == "requested"
        await advance(h, 35)
        for code in ("BE-DU", "NL-DU"):
            await case_state(h, code, to_nl["reference"], "deemed-accepted")
        # 12(4): transfers to the derogating State wait; the case system is told so.
        notice = await be.submit(
            "transfer-notice",
            "NL-DU",
            example("transfer-notice-decision-taken.json"),
            case=to_nl["reference"],
        )
        assert any("2024/1359 Art. 12(4)" in w for w in notice["warnings"]), notice
    finally:
        await h.close()


async def test_2024_1351_art37_1_a_requesting_state_that_became_responsible_ends_its_request(
    tmp_path: Path,
) -> None:
    """Issue 16, defect 6: while its take charge request is pending, the requesting State
    becomes responsible and informs the requested State (Art. 37(1)). The request's reply
    limit closes on both sides, so no deemed acceptance follows when it would have passed."""
    h = await _start(tmp_path)
    try:
        be = h.api("BE-DU")
        sent = await send_request(be, case_number="AMMR-37")
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        notice = await be.submit(
            "responsibility-notice",
            "NL-DU",
            example("responsibility-notice-responsibility-ceased.json"),
            case=sent["reference"],
        )
        await be.wait_for_state(notice["message_id"], {"delivered"}, within=20)
        await advance(h, 40)
        await asyncio.sleep(0.5)
        for code in ("BE-DU", "NL-DU"):
            view = await case_state(h, code, sent["reference"], "responsibility-shifted")
            reply = {d["rule"]: d for d in view["deadlines"]}["take_charge_reply"]
            assert reply["state"] == "closed" and reply["consequence"] is None
            assert await h.ctx(code).store.register.query(event="deadline-expired") == []
    finally:
        await h.close()


async def test_2024_1351_art46_2_absconding_then_available_again_with_less_than_3_months_left(
    tmp_path: Path,
) -> None:
    """Issue 16, defect 2. Art. 46(2): an absconding notice extends the transfer limit to 3
    years from the notice. The person available again soon after: the 3 years keep running.
    Absconded again and available again with less than 3 months of the 3 years left: a
    3-month limit from that notice replaces them (second subparagraph), on both sides, and
    its expiry moves responsibility."""
    h = await _start(tmp_path, valid_days=4 * 365)  # the clock moves 3 years on
    try:
        case = await _accepted_case(
            h, "AMMR-AWAY", "transfer-notice-decision-taken", "transfer-notice-absconded"
        )
        for code in ("BE-DU", "NL-DU"):
            away = (await _limits(h, code, case, "absconded"))["transfer_absconded"]
            assert [d["state"] for d in away] == ["open"] and away[0]["article"] == "Art. 46(2)"
        await _notify(h, case, "transfer-notice-available-again")
        for code in ("BE-DU", "NL-DU"):
            limits = await _limits(h, code, case, "available-again")
            assert [d["state"] for d in limits["transfer_absconded"]] == ["open"]
            assert "transfer_available_again" not in limits, "3 years left: they keep running"
        await _notify(h, case, "transfer-notice-absconded")
        await advance(h, 3 * 365 - 30)
        await _notify(h, case, "transfer-notice-available-again")
        for code in ("BE-DU", "NL-DU"):
            limits = await _limits(h, code, case, "available-again")
            assert [d["state"] for d in limits["transfer_absconded"]] == ["closed", "closed"]
            (again,) = limits["transfer_available_again"]
            start = datetime.fromisoformat(again["started_at"].replace("Z", "+00:00"))
            day = start.astimezone(ZoneInfo("Europe/Brussels")).date()
            assert again["state"] == "open"
            assert again["due_date"] == rolled_over(day + relativedelta(months=3), "BE").isoformat()
            assert again["article"] == "Art. 46(2)"
        replaced = [
            e
            for e in await h.ctx("BE-DU").store.register.query(limit=10_000)
            if e.event == "deadline-closed" and e.status == "replaced"
        ]
        assert [e.details["rule"] for e in replaced] == ["transfer_absconded"]
        await advance(h, 95)
        for code in ("BE-DU", "NL-DU"):
            await case_state(h, code, case, "responsibility-shifted")
    finally:
        await h.close()


async def test_proposal_art35_2_the_transfer_limit_resumes_for_the_time_it_had_left(
    tmp_path: Path,
) -> None:
    """Issue 16, defect 2, under the proposal (COM(2020) 610 Art. 35(2)): notified before
    expiry, absconding suspends the 6-month limit; when the person is available again the
    transfer may take place « dans le délai restant »: the limit runs again, its end moved on
    by the 40 days the person was away, on both sides."""
    h = await _start(tmp_path)
    try:
        case = await _accepted_case(
            h, "PROP-AWAY", "transfer-notice-absconded", legal_basis="com-2020-610"
        )
        for code in ("BE-DU", "NL-DU"):
            (six,) = (await _limits(h, code, case, "absconded"))["transfer"]
            assert six["state"] == "suspended"
        await advance(h, 40)
        await asyncio.sleep(0.3)
        for code in ("BE-DU", "NL-DU"):
            assert (await h.api(code).case(case))["state"] == "absconded", "no shift meanwhile"
        await _notify(h, case, "transfer-notice-available-again")
        for code in ("BE-DU", "NL-DU"):
            suspended, resumed = (await _limits(h, code, case, "available-again"))["transfer"]
            assert (suspended["state"], resumed["state"]) == ("suspended", "open")
            was = datetime.fromisoformat(suspended["started_at"].replace("Z", "+00:00"))
            now = datetime.fromisoformat(resumed["started_at"].replace("Z", "+00:00"))
            assert timedelta(days=40) <= now - was < timedelta(days=40, minutes=5)
            day = now.astimezone(ZoneInfo("Europe/Brussels")).date()
            assert resumed["due_date"] == (day + relativedelta(months=6)).isoformat()
    finally:
        await h.close()


async def test_604_2013_art25_2_an_unanswered_take_back_request_is_deemed_accepted(
    tmp_path: Path,
) -> None:
    """Dublin III for a case opened before the cut-over (the case system names
    `"legal_basis": "604-2013"`): a take back request on Eurodac data gets 2 weeks for a
    reply (Art. 25(1)), counted by Art. 42 (no roll-over to a working day); silence is
    acceptance on both sides (Art. 25(2)) and opens the 6-month transfer limit (Art. 29(1)),
    whose expiry moves responsibility (Art. 29(2))."""
    h = await _start(tmp_path)
    try:
        be = h.api("BE-DU")
        form = example("take-back-request.json")
        # Registered before the cut-over, as a case still running under 604/2013 must be
        # (2024/1351 Art. 84(2)), whatever day the test runs.
        form["application"] |= {"date": "2026-05-20"}
        sent = await be.submit(
            "take-back-request",
            "NL-DU",
            form,
            case_number="DUBLIN-III-1",
            legal_basis="604-2013",
        )
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        case = sent["reference"]
        for code in ("BE-DU", "NL-DU"):
            view = await case_state(h, code, case, "requested")
            assert view["legal_basis"] == "604-2013"
            (reply,) = [d for d in view["deadlines"] if d["rule"] == "take_back_reply_hit"]
            start = datetime.fromisoformat(reply["started_at"].replace("Z", "+00:00"))
            day = start.astimezone(ZoneInfo("Europe/Amsterdam")).date()
            assert reply["due_date"] == (day + timedelta(weeks=2)).isoformat(), "Art. 42"
            assert reply["article"] == "Art. 25(1)-(2)" and reply["acting"] == "NL-DU"
        await advance(h, 15)
        for code in ("BE-DU", "NL-DU"):
            view = await case_state(h, code, case, "deemed-accepted")
            (transfer,) = [d for d in view["deadlines"] if d["rule"] == "transfer"]
            assert transfer["state"] == "open" and transfer["article"] == "Art. 29(1)-(2)"
        await advance(h, 190)
        for code in ("BE-DU", "NL-DU"):
            await case_state(h, code, case, "responsibility-shifted")
        with pytest.raises(ApiError) as refused:
            await h.api("NL-DU").submit(
                "take-back-notification",
                "BE-DU",
                example("take-back-notification.json"),
                case_number="DUBLIN-III-2",
                legal_basis="604-2013",
            )
        assert "opens no case under 604-2013" in refused.value.problem["detail"]
    finally:
        await h.close()


async def _refused_then_reexamination(h: Harness, case_number: str) -> tuple[str, str]:
    """BE-DU's take charge request, refused by NL-DU, then BE-DU's request for its
    re-examination, delivered; the case's reference and the re-examination request's id."""
    be, nl = h.api("BE-DU"), h.api("NL-DU")
    sent = await send_request(be, case_number=case_number)
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    refusal = await nl.submit(
        "take-charge-reply",
        "BE-DU",
        example("take-charge-reply-refusal.json"),
        in_reply_to=sent["message_id"],
    )
    await nl.wait_for_state(refusal["message_id"], {"delivered"}, within=20)
    case = str(sent["reference"])
    for code in ("BE-DU", "NL-DU"):
        limits = await _limits(h, code, case, "refused")
        (ask,) = limits["reexamination_request"]
        assert (ask["state"], ask["acting"], ask["article"]) == (
            "open",
            "BE-DU",
            "2025/2055 Art. 9(2)",
        )
    asked = await be.submit(
        "reexamination-request", "NL-DU", example("reexamination-request.json"), case=case
    )
    await be.wait_for_state(asked["message_id"], {"delivered"}, within=20)
    return case, str(asked["message_id"])


async def test_2025_2055_art9_2_a_refused_request_re_examined_and_accepted(tmp_path: Path) -> None:
    """2025/2055 Art. 9(2): within 3 weeks of a refusal the requesting State may ask for a
    re-examination; the requested State endeavours to answer within 2 weeks. An acceptance
    on re-examination accepts the request: the transfer limits open on both sides."""
    h = await _start(tmp_path)
    try:
        case, asked = await _refused_then_reexamination(h, "AMMR-REEXAM-1")
        for code in ("BE-DU", "NL-DU"):
            limits = await _limits(h, code, case, "reexamination-requested")
            assert [d["state"] for d in limits["reexamination_request"]] == ["met"]
            (answer,) = limits["reexamination_reply"]
            assert (answer["state"], answer["acting"]) == ("open", "NL-DU")
        accepted = await h.api("NL-DU").submit(
            "reexamination-reply",
            "BE-DU",
            example("reexamination-reply-acceptance.json"),
            in_reply_to=asked,
        )
        await h.api("NL-DU").wait_for_state(accepted["message_id"], {"delivered"}, within=20)
        for code in ("BE-DU", "NL-DU"):
            limits = await _limits(h, code, case, "accepted")
            assert [d["state"] for d in limits["reexamination_reply"]] == ["met"]
            assert [d["state"] for d in limits["transfer"]] == ["open"]
    finally:
        await h.close()


async def test_2025_2055_art9_2_an_unanswered_re_examination_ends_with_no_deemed_acceptance(
    tmp_path: Path,
) -> None:
    """2025/2055 Art. 9(2): the procedure ends 2 weeks after the request, replied or not;
    silence is not acceptance. The refusal stands on both sides, and no transfer limit opens."""
    h = await _start(tmp_path)
    try:
        case, _ = await _refused_then_reexamination(h, "AMMR-REEXAM-2")
        await advance(h, 21)  # past the 2 weeks, whatever weekend or holidays roll them over to
        for code in ("BE-DU", "NL-DU"):
            limits = await _limits(h, code, case, "refused")
            assert [d["state"] for d in limits["reexamination_reply"]] == ["expired"]
            assert "transfer" not in limits
            ended = [
                e
                for e in await h.ctx(code).store.register.query(limit=10_000)
                if e.event == "deadline-expired" and e.details.get("rule") == "reexamination_reply"
            ]
            assert [(e.reason, e.details["article"]) for e in ended] == [
                ("procedure-ended", "2025/2055 Art. 9(2)")
            ]
    finally:
        await h.close()


async def test_transfer_information_is_filed_under_its_case_in_the_register(
    tmp_path: Path,
) -> None:
    """Issue 16, defect 12: the information before a transfer (type 6 under 1560/2003, 09
    under 2025/2055) has a reference of its own; its register entries, on both sides, are
    filed under the case it belongs to, with its own reference beside, so that the case's
    events show it (and an auditor searching the case finds it)."""
    h = await _start(tmp_path)
    try:
        case = await _accepted_case(h, "AMMR-TYPE6")
        be = h.api("BE-DU")
        info = await be.submit(
            "transfer-information", "NL-DU", example("transfer-information.json"), case=case
        )
        await be.wait_for_state(info["message_id"], {"delivered"}, within=20)
        assert info["reference"] != case
        for code, events in (("BE-DU", {"submitted", "delivered"}), ("NL-DU", {"received"})):
            entries = [
                e
                for e in await h.ctx(code).store.register.query(limit=10_000)
                if e.message_id == info["message_id"]
            ]
            assert {e.event for e in entries} >= events
            for e in entries:
                assert (e.reference, e.details["form_reference"]) == (case, info["reference"])
        feed = await h.api("NL-DU").events("0", 1000, case=case)
        assert info["message_id"] in {item["message_id"] for item in feed["items"]}
    finally:
        await h.close()


async def test_a_reply_moves_its_senders_case_only_when_delivered(tmp_path: Path) -> None:
    """Issue 16, defect 7 (2024/1351 Art. 40(1): a reply counts when received): NL-DU's
    refusal waits while BE-DU is down; NL-DU's case stays `requested`, showing the refusal
    as awaiting delivery, so that both sides judge silence by the same facts; once BE-DU has
    it, both cases are `refused`."""
    h = await _start(tmp_path)
    try:
        be, nl = h.api("BE-DU"), h.api("NL-DU")
        sent = await send_request(be, case_number="AMMR-WAIT")
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        await h.stop("BE-DU")
        refusal = await nl.submit(
            "take-charge-reply",
            "BE-DU",
            example("take-charge-reply-refusal.json"),
            in_reply_to=sent["message_id"],
        )
        await asyncio.sleep(0.5)  # attempts fail: BE-DU is down
        waiting = await nl.case(sent["reference"])
        assert waiting["state"] == "requested"
        assert waiting["awaiting_delivery"] == [refusal["message_id"]]
        assert {d["rule"]: d["state"] for d in waiting["deadlines"]}["take_charge_reply"] == "open"
        await h.start("BE-DU")
        await nl.wait_for_state(refusal["message_id"], {"delivered"}, within=30)
        for code in ("BE-DU", "NL-DU"):
            view = await case_state(h, code, sent["reference"], "refused")
            assert view["awaiting_delivery"] == []
    finally:
        await h.close()


async def test_2025_2055_art15_a_non_confirmation_reconsidered_and_confirmed(
    tmp_path: Path,
) -> None:
    """2025/2055 Art. 15(3)-(4): within 2 weeks of a non-confirmation of a take back
    notification (responsibility ceased) the notifying State may ask for reconsideration; a
    confirmation then confirms the notification and opens the transfer limits, on both sides;
    the notified State's 2 weeks have no deemed confirmation."""
    h = await _start(tmp_path)
    try:
        be, nl = h.api("BE-DU"), h.api("NL-DU")
        sent = await be.submit(
            "take-back-notification",
            "NL-DU",
            example("take-back-notification.json"),
            case_number="AMMR-RECONSIDER",
        )
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        ceased = await nl.submit(
            "take-back-confirmation",
            "BE-DU",
            example("take-back-confirmation-responsibilityCeased.json"),
            in_reply_to=sent["message_id"],
        )
        await nl.wait_for_state(ceased["message_id"], {"delivered"}, within=20)
        case = sent["reference"]
        for code in ("BE-DU", "NL-DU"):
            (ask,) = (await _limits(h, code, case, "responsibility-ceased"))[
                "reconsideration_request"
            ]
            assert (ask["state"], ask["acting"]) == ("open", "BE-DU")
        asked = await be.submit(
            "reconsideration-request", "NL-DU", example("reconsideration-request.json"), case=case
        )
        await be.wait_for_state(asked["message_id"], {"delivered"}, within=20)
        for code in ("BE-DU", "NL-DU"):
            (answer,) = (await _limits(h, code, case, "reconsideration-requested"))[
                "reconsideration_reply"
            ]
            assert (answer["state"], answer["rule"]) == ("open", "reconsideration_reply")
            assert answer["article"] == "2025/2055 Art. 15(3)-(4)"
        confirmed = await nl.submit(
            "reconsideration-reply",
            "BE-DU",
            example("reconsideration-reply-confirmation.json"),
            in_reply_to=asked["message_id"],
        )
        await nl.wait_for_state(confirmed["message_id"], {"delivered"}, within=20)
        for code in ("BE-DU", "NL-DU"):
            limits = await _limits(h, code, case, "confirmed")
            assert [d["state"] for d in limits["reconsideration_reply"]] == ["met"]
            assert [d["state"] for d in limits["transfer"]] == ["open"]
    finally:
        await h.close()


async def test_2024_1351_art51_only_a_grounds_request_is_refused_and_late_information_is_justified(
    tmp_path: Path,
) -> None:
    """Issue 16, defect 11. Art. 51(3): only a request for the grounds of the applicant's
    claim may be refused; any other request for information is answered, by both gateways'
    rules. Art. 51(5): information given after the 3 weeks must justify the delay."""
    h = await _start(tmp_path)
    try:
        be, nl = h.api("BE-DU"), h.api("NL-DU")
        asked = await be.submit(
            "info-request", "NL-DU", example("info-request.json"), case_number="AMMR-INFO-1"
        )
        await be.wait_for_state(asked["message_id"], {"delivered"}, within=20)
        with pytest.raises(ApiError) as refused:
            await nl.submit(
                "info-reply",
                "BE-DU",
                example("info-reply-refusal.json"),
                in_reply_to=asked["message_id"],
            )
        assert refused.value.status == 422 and "Art. 51(3)" in refused.value.problem["detail"]
        grounds = example("info-request.json") | {
            "item": ["grounds-of-claim"],
            "writtenConsent": True,
            "purpose": "examining-application",  # 2025/2055 Annex VII: only for that purpose
        }
        asked_grounds = await be.submit("info-request", "NL-DU", grounds, case_number="AMMR-INFO-2")
        await be.wait_for_state(asked_grounds["message_id"], {"delivered"}, within=20)
        refusal = await nl.submit(
            "info-reply",
            "BE-DU",
            example("info-reply-refusal.json"),
            in_reply_to=asked_grounds["message_id"],
        )
        await nl.wait_for_state(refusal["message_id"], {"delivered"}, within=20)
        await advance(h, 30)  # past the 3 weeks, whatever holidays roll them over to
        information = example("info-reply-information.json")
        information["information"].pop("lateJustification", None)
        with pytest.raises(ApiError) as late:
            await nl.submit("info-reply", "BE-DU", information, in_reply_to=asked["message_id"])
        assert late.value.problem["field"] == "/form/information/lateJustification"
        information["information"]["lateJustification"] = "The records were archived (test)."
        given = await nl.submit("info-reply", "BE-DU", information, in_reply_to=asked["message_id"])
        await nl.wait_for_state(given["message_id"], {"delivered"}, within=20)
    finally:
        await h.close()


async def test_2024_1351_art84_2_the_registration_date_decides_criteria_and_dublin_iii(
    tmp_path: Path,
) -> None:
    """Issue 16, item 2: a take charge request for an application registered before the
    cut-over opens an AMMR case that records `criteria: 604-2013`, on both sides; naming
    604-2013 for an application registered after it is refused, saying why."""
    h = await _start(tmp_path)
    try:
        be = h.api("BE-DU")
        form = example("take-charge-request.json")
        form["application"] |= {"date": "2026-05-18", "registrationDate": "2026-05-20"}
        sent = await be.submit(
            "take-charge-request",
            "NL-DU",
            form,
            case_number="AMMR-EARLY",
            attachments=attachments_for(form),
        )
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        for code in ("BE-DU", "NL-DU"):
            view = await case_state(h, code, sent["reference"], "requested")
            assert (view["legal_basis"], view["criteria"]) == ("2024-1351", "604-2013")
            assert view["standard_form"] == "2025/2055 Annex XII (Art. 7(1), second subparagraph)"
        later = example("take-back-request.json")
        later["application"] |= {"date": "2026-07-01", "registrationDate": "2026-07-02"}
        with pytest.raises(ApiError) as refused:
            await be.submit(
                "take-back-request",
                "NL-DU",
                later,
                case_number="DUBLIN-III-LATE",
                legal_basis="604-2013",
            )
        problem = refused.value.problem
        assert (problem["rule"], problem["field"]) == ("legal-basis-mismatch", "/legal_basis")
        assert "registered on 2026-07-02" in problem["detail"]
        assert await h.ctx("BE-DU").store.messages.count() == 1
    finally:
        await h.close()


async def test_2024_1351_art39_2_an_urgent_request_without_its_requested_date_is_refused(
    tmp_path: Path,
) -> None:
    """Issue 16, defect 4: the requested reply date of an urgent request is mandatory; and
    2024/1351 Art. 39(2): an urgent reply is asked only for an application registered after a
    refusal of entry or a return decision, for a period of at least one week. Each is refused
    before anything is signed, naming the field."""
    h = await _start(tmp_path)
    try:
        today = h.ctx("BE-DU").clock().astimezone(ZoneInfo("Europe/Amsterdam")).date()
        reasons = "Fictitious: the applicant is a vulnerable person."
        in_ten_days = (today + timedelta(days=10)).isoformat()
        cases = [
            ({"reasons": reasons, "ground": "return-decision"}, "/form/urgency"),
            ({"reasons": reasons, "requestedReplyDate": in_ten_days}, "/form/urgency"),
            (
                {
                    "reasons": reasons,
                    "ground": "refusal-of-entry",
                    "requestedReplyDate": (today + timedelta(days=3)).isoformat(),
                },
                "/form/urgency/requestedReplyDate",
            ),
        ]
        for n, (urgency, field) in enumerate(cases):
            form = example("take-charge-request.json")
            form["urgency"] = urgency
            with pytest.raises(ApiError) as refused:
                await h.api("BE-DU").submit(
                    "take-charge-request",
                    "NL-DU",
                    form,
                    case_number=f"AMMR-URGENT-{n}",
                    urgent=True,
                    attachments=attachments_for(form),
                )
            problem = refused.value.problem
            assert (problem["rule"], problem["field"]) == ("urgency-incomplete", field), problem
        assert "Art. 39(2)" in problem["detail"]
        assert await h.ctx("BE-DU").store.messages.count() == 0
    finally:
        await h.close()


async def test_2025_2055_arts_24_26_a_transfer_form_sent_too_late_is_sent_with_a_warning(
    tmp_path: Path,
) -> None:
    """The transfer form (notice `arrangements`) for an unaccompanied minor under escort is
    sent 10 days before the arrival, not the 21 of 2025/2055 Art. 26(3): the case system is
    warned, and the form is delivered all the same (the text gives no consequence); a form
    within the days gets no warning."""
    h = await _start(tmp_path)
    try:
        case = await _accepted_case(h, "AMMR-FORM", "transfer-notice-decision-taken")
        be = h.api("BE-DU")
        today = h.ctx("BE-DU").clock().astimezone(ZoneInfo("Europe/Brussels")).date()
        late = example("transfer-notice-arrangements.json") | {
            "transferType": "escort",
            "arrivalDate": (today + timedelta(days=10)).isoformat(),
            "circumstance": ["unaccompanied-minor"],
        }
        sent = await be.submit("transfer-notice", "NL-DU", late, case=case)
        (warning,) = [w for w in sent["warnings"] if "transfer form" in w]
        assert "at least 21 days" in warning and "2025/2055 Art. 26(3)" in warning
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        in_time = late | {"circumstance": [], "arrivalDate": late["arrivalDate"]}
        again = await be.submit("transfer-notice", "NL-DU", in_time, case=case)
        assert not [w for w in again["warnings"] if "transfer form" in w]
    finally:
        await h.close()


@pytest.mark.parametrize(
    ("cessation", "minor_under_six", "allowed"),
    [
        ("art-37-1", False, False),
        ("incorrect-eurodac-indication", False, False),
        ("art-37-1", True, True),
    ],
)
async def test_2025_2055_art15_3_4_only_the_grounds_it_names_may_be_reconsidered(
    tmp_path: Path, cessation: str, minor_under_six: bool, allowed: bool
) -> None:
    """2025/2055 Art. 15(3): a non-confirmation on Art. 37(2), (4) or (5) may be
    reconsidered, one on Art. 37(1) (the shift is already in Eurodac) or on an incorrect
    Eurodac indication (Art. 16) may not: BE-DU's gateway refuses to send the request,
    saying why. Art. 15(4): the non-confirmation of a notification under Art. 12(6) may be
    reconsidered whatever its ground."""
    h = await _start(tmp_path)
    try:
        be, nl = h.api("BE-DU"), h.api("NL-DU")
        notification = example("take-back-notification.json")
        if minor_under_six:
            notification["minorWithoutBiometrics"] = True
        sent = await be.submit(
            "take-back-notification", "NL-DU", notification, case_number="AMMR-RC-GROUND"
        )
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        reply = example("take-back-confirmation-responsibilityCeased.json")
        reply["responsibilityCeased"]["cessation"] = cessation
        ceased = await nl.submit(
            "take-back-confirmation", "BE-DU", reply, in_reply_to=sent["message_id"]
        )
        await nl.wait_for_state(ceased["message_id"], {"delivered"}, within=20)
        case = sent["reference"]
        await case_state(h, "BE-DU", case, "responsibility-ceased")
        ask = example("reconsideration-request.json")
        if allowed:
            asked = await be.submit("reconsideration-request", "NL-DU", ask, case=case)
            await be.wait_for_state(asked["message_id"], {"delivered"}, within=20)
            await case_state(h, "NL-DU", case, "reconsideration-requested")
            return
        with pytest.raises(ApiError) as refused:
            await be.submit("reconsideration-request", "NL-DU", ask, case=case)
        assert refused.value.problem["rule"] == "conversation-rule"
        detail = refused.value.problem["detail"]
        assert "2025/2055 Art. 15(3)-(4)" in detail and cessation in detail
    finally:
        await h.close()


async def test_2024_1351_art40_7_a_peers_requested_period_under_a_week_is_no_requested_period(
    tmp_path: Path,
) -> None:
    """A sender holding BE-DU's real keys asks an urgent reply within 3 days (Art. 39(2)
    gives at least one week): NL-DU keeps the request and answers "failing that" within the
    2 weeks of Art. 40(7), showing no requested date, instead of failing on it."""
    from gateway.core.forms import form_type
    from gateway.xml.envelope import AttachmentFile, build_transmission
    from gateway.xml.forms import form_to_element

    from .test_rejections import header

    h = await _start(tmp_path)
    try:
        today = h.ctx("NL-DU").clock().astimezone(ZoneInfo("Europe/Amsterdam")).date()
        form = example("take-charge-request.json")
        form["urgency"] = {
            "reasons": "Fictitious: the applicant is a vulnerable person.",
            "ground": "refusal-of-entry",
            "requestedReplyDate": (today + timedelta(days=3)).isoformat(),
        }
        files = [
            AttachmentFile(a["fileName"], a["mediaType"], base64.b64decode(a["content"]))
            for a in attachments_for(form)
        ]
        head = dataclasses.replace(header(), reference="BE01URGENT-3", urgent=True)
        element = form_to_element(form_type("take-charge-request"), form)
        body = h.signer("BE-DU").sign(build_transmission(head, element, files))
        status, _ = await h.post_signed("BE-DU", "NL-DU", body)
        assert status == 200
        view = await case_state(h, "NL-DU", "BE01URGENT-3", "requested")
        (reply,) = [d for d in view["deadlines"] if d["rule"] == "take_charge_reply_urgent"]
        assert reply.get("requested_date") is None
        assert reply["due_date"] == rolled_over(today + timedelta(weeks=2), "NL").isoformat()
    finally:
        await h.close()


async def test_2024_1351_art51_5_a_late_information_reply_extends_the_request_limit(
    tmp_path: Path,
) -> None:
    """Art. 51(5): NL-DU answers BE-DU's request for information after its 3 weeks; BE-DU's
    case system says the information withheld showed NL-DU responsible, so BE-DU's Art. 39
    limit for the take charge request is extended by the delay, as the register measures it
    (a request that would be late without it is in time, and is recorded so); without the
    extension the same request is late."""
    h = await _start(tmp_path)
    try:
        be, nl = h.api("BE-DU"), h.api("NL-DU")
        asked = await be.submit(
            "info-request", "NL-DU", example("info-request.json"), case_number="INFO-515"
        )
        await be.wait_for_state(asked["message_id"], {"delivered"}, within=20)
        await advance(h, 30)
        replied = await nl.submit(
            "info-reply",
            "BE-DU",
            example("info-reply-information.json"),
            in_reply_to=asked["message_id"],
        )
        await nl.wait_for_state(replied["message_id"], {"delivered"}, within=20)
        today = h.ctx("BE-DU").clock().astimezone(ZoneInfo("Europe/Brussels")).date()
        registered = (today - relativedelta(months=2) - timedelta(days=5)).isoformat()
        results = {}
        for number, extended in (("LATE-515", None), ("EXT-515", asked["reference"])):
            form = example("take-charge-request.json")
            form["application"] |= {"registrationDate": registered}
            sent = await be.submit(
                "take-charge-request",
                "NL-DU",
                form,
                case_number=number,
                attachments=attachments_for(form),
                **({"extended_by_information": extended} if extended else {}),
            )
            late = [w for w in sent["warnings"] if "the request was made after" in w]
            (limit,) = [
                d
                for d in (await be.case(sent["reference"]))["deadlines"]
                if d["rule"] == "take_charge_request"
            ]
            results[number] = (bool(late), limit["state"])
        assert results == {"LATE-515": (True, "expired"), "EXT-515": (False, "met")}
        with pytest.raises(ApiError) as refused:
            form = example("take-charge-request.json")
            await be.submit(
                "take-charge-request",
                "NL-DU",
                form,
                case_number="EXT-BAD",
                attachments=attachments_for(form),
                extended_by_information="BE01NO-SUCH",
            )
        assert refused.value.problem["field"] == "/extended_by_information"
    finally:
        await h.close()


async def test_604_2013_art28_3_a_detained_persons_take_back_request_is_deemed_accepted_at_2_weeks(
    tmp_path: Path,
) -> None:
    """Dublin III, a detained person: the take back request asks an urgent reply, due within
    2 weeks (Art. 28(3), counted by Art. 42); silence is acceptance on both sides, and the
    transfer must follow within 6 weeks (28(3))."""
    h = await _start(tmp_path)
    try:
        be = h.api("BE-DU")
        form = example("take-back-request.json")
        form["application"] |= {"date": "2026-05-20"}  # registered before the cut-over
        form["detained"] = True
        sent = await be.submit(
            "take-back-request",
            "NL-DU",
            form,
            case_number="DUBLIN-III-DET",
            legal_basis="604-2013",
        )
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        case = sent["reference"]
        for code in ("BE-DU", "NL-DU"):
            view = await case_state(h, code, case, "requested")
            (reply,) = [d for d in view["deadlines"] if d["rule"] == "take_back_reply_detained"]
            start = datetime.fromisoformat(reply["started_at"].replace("Z", "+00:00"))
            day = start.astimezone(ZoneInfo("Europe/Amsterdam")).date()
            assert reply["due_date"] == (day + timedelta(weeks=2)).isoformat(), "Art. 42"
            assert reply["article"] == "Art. 28(3)"
        (own,) = [
            d
            for d in (await be.case(case))["deadlines"]
            if d["rule"] == "take_back_request_detained"
        ]
        assert (own["state"], own["article"]) == ("expired", "Art. 28(3)")  # lodged in May
        await advance(h, 15)
        for code in ("BE-DU", "NL-DU"):
            view = await case_state(h, code, case, "deemed-accepted")
            assert {d["rule"] for d in view["deadlines"] if d["state"] == "open"} >= {"transfer"}
    finally:
        await h.close()


async def test_2025_2055_art24_4_a_voluntary_transfer_without_news_is_considered_carried_out(
    tmp_path: Path,
) -> None:
    """A voluntary transfer form names the day by which the person is to appear: when no
    news of the arrival, or of a failure to appear, comes within 7 days of it, the
    transferring State considers the transfer carried out (2025/2055 Art. 24(4)); both
    gateways record it on the same day. A transfer by escort opens no such limit."""
    h = await _start(tmp_path)
    try:
        case = await _accepted_case(h, "AMMR-VOLUNTARY", "transfer-notice-decision-taken")
        be = h.api("BE-DU")
        today = h.ctx("BE-DU").clock().astimezone(ZoneInfo("Europe/Brussels")).date()
        appear = today + timedelta(days=10)
        form = example("transfer-notice-arrangements.json") | {
            "transferType": "voluntary",
            "arrivalDate": appear.isoformat(),
            "appearBefore": "Dublin unit, Exampletown (fictitious)",
        }
        sent = await be.submit("transfer-notice", "NL-DU", form, case=case)
        assert not [w for w in sent["warnings"] if "transfer form" in w]
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        due = rolled_over(appear + timedelta(days=7), "BE").isoformat()
        for code in ("BE-DU", "NL-DU"):
            (done,) = (await _limits(h, code, case, "transfer-arranged"))["transfer_deemed_done"]
            assert (done["state"], done["due_date"], done["acting"]) == ("open", due, "BE-DU")
            assert done["article"] == "2025/2055 Art. 24(4), 25(6)"
        await advance(h, 20)
        for code in ("BE-DU", "NL-DU"):
            for _ in range(200):
                (done,) = (await _limits(h, code, case, "transfer-arranged"))[
                    "transfer_deemed_done"
                ]
                if done["state"] == "expired":
                    break
                await asyncio.sleep(0.05)
            assert done["state"] == "expired"
            entries = await h.ctx(code).store.register.query(event="deadline-expired")
            assert "transfer-deemed-carried-out" in {e.reason for e in entries}
        escorted = await _accepted_case(h, "AMMR-ESCORT", "transfer-notice-decision-taken")
        form = form | {
            "transferType": "escort",
            "arrivalDate": (today + timedelta(days=30)).isoformat(),
        }
        await _notify_form(h, escorted, form)
        limits = await _limits(h, "BE-DU", escorted, "transfer-arranged")
        assert "transfer_deemed_done" not in limits
    finally:
        await h.close()


async def _notify_form(h: Harness, case: str, form: dict[str, Any]) -> None:
    be = h.api("BE-DU")
    notice = await be.submit("transfer-notice", "NL-DU", form, case=case)
    await be.wait_for_state(notice["message_id"], {"delivered"}, within=20)
