"""Time limits between two real gateways (Art. 29-35, 65): both sides compute the same
expiry from the acknowledged receipt time, and silence has its consequence exactly once."""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from gateway.core.register import verify_chain
from gateway.examples import attachments_for
from gateway.store.store import Store
from tests.net_proxy import Proxy

from .conftest import Harness, example, make_harness, send_request
from .test_faults import route_through


def rolled_over(day: date, state: str) -> date:
    """2024/1351 Art. 75(c), worked out here apart from the gateway's own code."""
    official = holidays.country_holidays(state)
    while day.weekday() >= 5 or day in official:
        day += timedelta(days=1)
    return day


async def advance(h: Harness, days: float) -> None:
    for running in h.running.values():
        running.ctx.clock.offset += timedelta(days=days)  # type: ignore[attr-defined]
        running.keeper.wake.set()


async def case_state(h: Harness, code: str, reference: str, want: str) -> dict:  # type: ignore[type-arg]
    for _ in range(200):
        case = await h.api(code).case(reference)
        if case["state"] == want:
            return case
        await asyncio.sleep(0.05)
    raise AssertionError(f"{code}: case {reference} is {case['state']}, not {want}")


async def expiries(h: Harness, code: str, rule: str) -> list[object]:
    return [
        e
        for e in await h.ctx(code).store.register.query(limit=10_000)
        if e.event == "deadline-expired" and e.details.get("rule") == rule
    ]


async def test_art30_8_silence_is_deemed_acceptance_on_both_sides_exactly_once(
    harness: Harness,
) -> None:
    await harness.start("BE-DU", "NL-DU")
    be = harness.api("BE-DU")
    sent = await send_request(be, case_number="SILENT-1")
    view = await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    both = [await harness.api(c).case(sent["reference"]) for c in ("BE-DU", "NL-DU")]
    limits = [{d["rule"]: d for d in c["deadlines"]}["take_charge_reply"] for c in both]
    assert limits[0]["expires_at"] == limits[1]["expires_at"], "same expiry on both sides"
    assert limits[0]["started_at"] == view["acknowledgement"]["receipt_time"]
    assert limits[0]["acting"] == "NL-DU"
    opened = (await be.message(sent["message_id"]))["deadlines"]
    assert [d["rule"] for d in opened] == ["take_charge_request", "take_charge_reply"]

    await advance(harness, 40)
    for code in ("BE-DU", "NL-DU"):
        case = await case_state(harness, code, sent["reference"], "deemed-accepted")
        rules = {d["rule"]: d for d in case["deadlines"]}
        assert rules["take_charge_reply"]["state"] == "expired"
        assert rules["take_charge_reply"]["consequence"] == "deemed-acceptance"
        # Art. 32(1), 35(1): the transfer limits run from the deemed acceptance, counted
        # from the last day of the reply period whatever the time zones (issue 16, defect 8)
        start = datetime.fromisoformat(rules["transfer_decision"]["started_at"][:-1] + "+00:00")
        acting = ZoneInfo("Europe/Brussels")
        assert start.astimezone(acting).date().isoformat() == limits[0]["due_date"]
        assert start.astimezone(acting).hour == 12
    await advance(harness, 10)
    for code in ("BE-DU", "NL-DU"):
        # Art. 32(1) gives the transfer decision's limit no consequence when it passes: the
        # expiry is recorded, and no consequence is invented (the rules data says none).
        for _ in range(200):
            passed = await expiries(harness, code, "transfer_decision")
            if passed:
                break
            await asyncio.sleep(0.05)
        assert [e.reason for e in passed] == [None]  # type: ignore[attr-defined]
        case = await harness.api(code).case(sent["reference"])
        rules = {d["rule"]: d for d in case["deadlines"]}
        assert rules["transfer_decision"]["state"] == "expired"
        assert rules["transfer_decision"]["consequence"] is None
        assert len(await expiries(harness, code, "take_charge_reply")) == 1
        verify_chain(await harness.ctx(code).store.register.query(limit=10_000))


async def test_art30_8_a_late_reply_is_acknowledged_stored_and_flagged(harness: Harness) -> None:
    await harness.start("BE-DU", "NL-DU")
    be, nl = harness.api("BE-DU"), harness.api("NL-DU")
    sent = await send_request(be, case_number="LATE-1")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    await advance(harness, 40)
    for code in ("BE-DU", "NL-DU"):
        await case_state(harness, code, sent["reference"], "deemed-accepted")
    reply = await nl.submit(
        "take-charge-reply",
        "BE-DU",
        example("take-charge-reply-refusal"),
        in_reply_to=sent["message_id"],
    )
    view = await nl.wait_for_state(reply["message_id"], {"delivered"}, within=20)
    assert view["acknowledgement"]["status"] == "accepted"
    got = await be.wait_for_inbox(lambda m: m["message_id"] == reply["message_id"], within=10)
    assert got["late"] is True
    assert (await be.case(sent["reference"]))["state"] == "deemed-accepted"


async def test_restart_across_the_expiry_applies_the_consequence_once(tmp_path: Path) -> None:
    h = await make_harness(tmp_path)
    try:
        await h.start("BE-DU", "NL-DU")
        be = h.api("BE-DU")
        sent = await send_request(be, case_number="DOWN-1")
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        await h.stop("NL-DU")
        config = h.net.gateways["NL-DU"].config
        config.write_text(
            config.read_text().replace("[clock]\n", "[clock]\noffset_seconds = 3456000.0\n")
        )
        for _ in range(2):  # down at the expiry, then restarted twice
            await h.start("NL-DU")
            await case_state(h, "NL-DU", sent["reference"], "deemed-accepted")
            await h.stop("NL-DU")
        await h.start("NL-DU")
        assert len(await expiries(h, "NL-DU", "take_charge_reply")) == 1
    finally:
        await h.close()


async def test_art30_7_8_urgent_request_shows_its_date_as_due_and_deems_at_two_weeks(
    harness: Harness,
) -> None:
    await harness.start("BE-DU", "NL-DU")
    be = harness.api("BE-DU")
    form = example("take-charge-request")
    wanted = (harness.ctx("BE-DU").clock().date() + timedelta(days=9)).isoformat()
    form["urgency"] = {
        "reasons": "Fictitious: the applicant is a vulnerable person.",
        "ground": "return-decision",  # 2024/1351 Art. 39(2)
        "requestedReplyDate": wanted,
    }
    sent = await be.submit(
        "take-charge-request",
        "NL-DU",
        form,
        case_number="URG-1",
        urgent=True,
        attachments=attachments_for(form),
    )
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    for code in ("BE-DU", "NL-DU"):
        rules = {
            d["rule"]: d for d in (await harness.api(code).case(sent["reference"]))["deadlines"]
        }
        urgent = rules["take_charge_reply_urgent"]
        # Art. 30(8): silence is acceptance only at the end of the two weeks (2024/1351
        # Art. 75(c): a limit ending on a Saturday, Sunday or holiday of NL-DU, which acts,
        # ends with the next working day).
        started = datetime.fromisoformat(urgent["started_at"].replace("Z", "+00:00"))
        receipt_day = started.astimezone(ZoneInfo("Europe/Amsterdam")).date()
        two_weeks = rolled_over(receipt_day + timedelta(weeks=2), "NL")
        assert urgent["due_date"] == two_weeks.isoformat()
        # Art. 30(7): the requested date is shown as due, in the register entry that opened it.
        opened = [
            e
            for e in await harness.ctx(code).store.register.query(event="deadline-opened")
            if e.details.get("rule") == "take_charge_reply_urgent"
        ]
        assert [e.details["requested_date"] for e in opened] == [wanted]


async def test_deadlines_api_filters_by_state_rule_and_peer(harness: Harness) -> None:
    await harness.start("BE-DU", "NL-DU")
    be = harness.api("BE-DU")
    sent = await send_request(be, case_number="API-1")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    page = await be._request(
        "GET",
        "/api/v1/deadlines",
        params={"state": "open", "rule": "take_charge_reply", "peer": "NL-DU"},
    )
    assert [d["case"] for d in page["items"]] == [sent["reference"]]
    none = await be._request("GET", "/api/v1/deadlines", params={"peer": "GR-DU"})
    assert none["items"] == []


async def test_reminders_go_out_at_the_lead_times_before_expiry(harness: Harness) -> None:
    await harness.start("BE-DU", "NL-DU")
    be = harness.api("BE-DU")
    sent = await send_request(be, case_number="REMIND-1")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    case = await be.case(sent["reference"])
    limit = {d["rule"]: d for d in case["deadlines"]}["take_charge_reply"]
    from datetime import datetime

    expires = datetime.fromisoformat(limit["expires_at"].replace("Z", "+00:00"))
    to_go = (expires - harness.ctx("BE-DU").clock()).total_seconds() / 86400

    async def reminders() -> list[object]:
        return [
            e
            for e in await harness.ctx("BE-DU").store.register.query(limit=10_000)
            if e.event == "reminder"
        ]

    await advance(harness, to_go - 2.5)  # inside the 3-day lead time
    for _ in range(100):
        if len(await reminders()) == 1:
            break
        await asyncio.sleep(0.05)
    assert len(await reminders()) == 1
    await advance(harness, 2)  # inside the 1-day lead time
    for _ in range(100):
        if len(await reminders()) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(await reminders()) == 2
    assert (await be.case(sent["reference"]))["state"] == "requested"


async def test_art39_1_a_request_after_the_limit_tells_the_requesting_state_it_is_responsible(
    harness: Harness,
) -> None:
    """2024/1351 Art. 39(1) (the proposal's Art. 29(1)): a take charge request made more than
    2 months after the registration makes the requesting State responsible; for a detained
    person (Art. 45(1), 2 weeks) the consequence is release, not responsibility (defect 9)."""
    await harness.start("BE-DU")
    be = harness.api("BE-DU")
    today = harness.ctx("BE-DU").clock().date()
    form = example("take-charge-request")
    form["application"] = {"date": (today - timedelta(days=75)).isoformat()}
    late = await be.submit(
        "take-charge-request",
        "NL-DU",
        form,
        case_number="LATE-29",
        attachments=attachments_for(form),
    )
    assert len(late["warnings"]) == 1 and "Art. 39(1) of 2024-1351" in late["warnings"][0]
    assert late["warnings"][0].endswith("the requesting State is responsible")
    rules = {d["rule"]: d for d in (await be.message(late["message_id"]))["deadlines"]}
    assert rules["take_charge_request"]["state"] == "expired"
    assert rules["take_charge_request"]["consequence"] == "requesting-state-responsible"
    form["application"] = {"date": (today - timedelta(days=10)).isoformat()}
    timely = await be.submit(
        "take-charge-request", "NL-DU", form, case_number="OK-29", attachments=attachments_for(form)
    )
    assert timely["warnings"] == []
    rules = {d["rule"]: d for d in (await be.message(timely["message_id"]))["deadlines"]}
    assert rules["take_charge_request"]["state"] == "met"
    form["detained"] = True
    form["application"] = {"date": (today - timedelta(days=20)).isoformat()}
    detained = await be.submit(
        "take-charge-request",
        "NL-DU",
        form,
        case_number="DET-45",
        attachments=attachments_for(form),
    )
    assert len(detained["warnings"]) == 1 and "Art. 45(1)" in detained["warnings"][0]
    assert "must be released" in detained["warnings"][0]
    assert "responsible" not in detained["warnings"][0]


def slow_disk(store: Store) -> None:
    """The next commit's flush takes as long as a scheduler round (a real disk takes ~2 ms,
    tmpfs none): it becomes durable only after the deadline scheduler, if anything woke it,
    has looked for due events and gone back to sleep (2 s at most)."""
    rounds = [0]
    look = store.deadlines.next_event  # the last read of each scheduler round

    async def counted() -> datetime | None:
        found = await look()
        rounds[0] += 1
        return found

    writer: Any = store._writer
    finish = writer._finish

    async def flush_slowly(batch: object) -> None:
        writer._finish = finish  # once
        before, end = rounds[0], time.monotonic() + 2
        while rounds[0] == before and time.monotonic() < end:
            await asyncio.sleep(0.01)
        await finish(batch)

    store.deadlines.next_event = counted  # type: ignore[method-assign]
    writer._finish = flush_slowly


async def test_a_limit_already_past_when_it_opens_has_its_consequence_at_once(
    tmp_path: Path,
) -> None:
    """Issue 14, item 10: BE-DU's proof of receipt of a take charge request arrives 40 days
    late (every answer was lost, BE-DU gave up, reconciliation finds it). The reply limit runs
    from that receipt (Art. 30(1), 65) and was over when it opened: its consequence, deemed
    acceptance (Art. 30(8)), is applied at once, not at the scheduler's next 300 s round."""
    h = await make_harness(
        tmp_path,
        delivery={
            "max_attempts": 2,
            "reconcile_interval_seconds": 3600,
            "reconcile_window_days": 90,
        },
    )
    proxy = Proxy(h.net.gateways["NL-DU"].peer_port)
    await proxy.start()
    try:
        await h.start("BE-DU", "NL-DU")
        await route_through(h, "NL-DU", proxy)
        proxy.set("drop-responses")
        be = h.api("BE-DU")
        sent = await send_request(be, case_number="LATE-PROOF")
        await be.wait_for_state(sent["message_id"], {"undeliverable"}, within=30)
        proxy.set("forward")
        await advance(h, 40)
        await case_state(h, "NL-DU", sent["reference"], "deemed-accepted")
        slow_disk(h.ctx("BE-DU").store)
        assert await h.running["BE-DU"].deliverer.reconcile() == 1
        end = time.monotonic() + 20  # far below the scheduler's 300 s round
        while not await expiries(h, "BE-DU", "take_charge_reply"):
            assert time.monotonic() < end, "the past limit still waits for its consequence"
            await asyncio.sleep(0.05)
        case = await be.case(sent["reference"])
        assert case["state"] == "deemed-accepted"
        rules = {d["rule"]: d for d in case["deadlines"]}
        assert rules["take_charge_reply"]["consequence"] == "deemed-acceptance"
        assert len(await expiries(h, "BE-DU", "take_charge_reply")) == 1
    finally:
        await proxy.close()
        await h.close()
