"""The internal API for case systems: bearer token per role, problem+json errors naming the
field or rule at fault, inbox paging by cursor."""

from __future__ import annotations

import json

import aiohttp
import pytest

from gateway.client import ApiError
from gateway.examples import attachments_for

from .conftest import Harness, example, send_request


@pytest.fixture
async def be(harness: Harness) -> Harness:
    await harness.start("BE-DU")
    return harness


async def test_no_token_or_wrong_token_is_unauthorized(be: Harness) -> None:
    url = be.net.gateways["BE-DU"].api_url + "/api/v1/inbox"
    async with aiohttp.ClientSession() as s:
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
            async with s.get(url, headers=headers) as resp:
                assert resp.status == 401
                assert resp.content_type == "application/problem+json"
                assert "Bearer" in resp.headers["WWW-Authenticate"]


async def test_auditor_may_not_send_or_read_payloads(be: Harness) -> None:
    auditor = be.api("BE-DU", "auditor")
    with pytest.raises(ApiError) as err:
        await send_request(auditor, case_number="A-1")
    assert err.value.status == 403 and err.value.problem["rule"] == "submit"
    with pytest.raises(ApiError) as err:
        await auditor.inbox()
    assert err.value.status == 403
    assert (await auditor.health())["status"] == "ok"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "pizza"}, "/type"),
        ({"receiver": "FR-DU"}, "/receiver"),
        ({"case_number": "has space"}, "/case_number"),
        ({"colour": "red"}, "/colour"),
        ({"form": {"applicant": {"surname": ["X"]}}}, "/form/criterion"),
        (
            {"form": {"criterion": "Art. 15(1)", "applicant": {"surname": "X"}}},
            "/form/applicant/surname",
        ),
        (
            {
                "form": {
                    "criterion": "Art. 15(1)",
                    "applicant": {"surname": ["X"], "dateOfBirth": "1990-02-30"},
                }
            },
            "/form/applicant/dateOfBirth",
        ),
        ({"urgent": "yes"}, "/urgent"),
        ({"in_reply_to": "11111111-1111-4111-8111-111111111111"}, "/in_reply_to"),
    ],
)
async def test_invalid_submission_is_a_problem_naming_the_field(
    be: Harness, change: dict[str, object], field: str
) -> None:
    body = {
        "type": "take-charge-request",
        "receiver": "NL-DU",
        "case_number": "C-1",
        "form": example("take-charge-request.json"),
        "attachments": attachments_for(example("take-charge-request.json")),
    } | change
    url = be.net.gateways["BE-DU"].api_url + "/api/v1/messages"
    token = be.net.gateways["BE-DU"].tokens["case-officer"]
    async with (
        aiohttp.ClientSession() as s,
        s.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        problem = await resp.json(content_type=None)
        assert resp.status == 422, problem
        assert resp.content_type == "application/problem+json"
    assert problem["field"] == field, problem
    assert problem["status"] == 422
    assert await be.ctx("BE-DU").store.messages.count() == 0
    assert [e.event for e in await be.ctx("BE-DU").store.register.query(limit=1000)] == [
        "configuration-loaded"
    ], "a refused submission leaves nothing in the register"


async def test_schema_errors_do_not_echo_personal_data(be: Harness) -> None:
    form = example("take-charge-request.json")
    form["applicant"]["surname"] = ["A" * 150]
    with pytest.raises(ApiError) as err:
        await be.api("BE-DU").submit("take-charge-request", "NL-DU", form, case_number="C-2")
    assert err.value.problem["field"] == "/form/applicant/surname/0"
    assert "AAAA" not in err.value.problem["detail"]


async def test_reply_to_unknown_request_is_refused(be: Harness) -> None:
    with pytest.raises(ApiError) as err:
        await be.api("BE-DU").submit(
            "take-charge-reply",
            "NL-DU",
            example("take-charge-reply-refusal.json"),
            in_reply_to="11111111-1111-4111-8111-111111111111",
        )
    assert err.value.status == 422 and err.value.problem["field"] == "/in_reply_to"


async def test_not_json_is_a_bad_request(be: Harness) -> None:
    gw = be.net.gateways["BE-DU"]
    async with aiohttp.ClientSession() as s:
        async with s.post(
            gw.api_url + "/api/v1/messages",
            data=b"{nope",
            headers={
                "Authorization": f"Bearer {gw.tokens['case-officer']}",
                "Content-Type": "application/json",
            },
        ) as resp:
            assert resp.status == 400
        async with s.post(
            gw.api_url + "/api/v1/messages",
            data=b"<x/>",
            headers={
                "Authorization": f"Bearer {gw.tokens['case-officer']}",
                "Content-Type": "application/xml",
            },
        ) as resp:
            assert resp.status == 415


async def test_unknown_message_is_not_found(be: Harness) -> None:
    with pytest.raises(ApiError) as err:
        await be.api("BE-DU").message("00000000-0000-4000-8000-000000000000")
    assert err.value.status == 404


async def test_inbox_pages_by_cursor_oldest_first(harness: Harness) -> None:
    await harness.start("BE-DU", "NL-DU")
    be, nl = harness.api("BE-DU"), harness.api("NL-DU")
    sent = []
    for i in range(5):
        m = await send_request(
            be,
            case_number=f"P-{i}",
        )
        sent.append(m["message_id"])
    for mid in sent:
        await be.wait_for_state(mid, {"delivered"}, within=20)
    seen: list[str] = []
    cursor = "0"
    while True:
        page = await nl.inbox(cursor, limit=2)
        if not page["items"]:
            break
        assert len(page["items"]) <= 2
        seen += [m["message_id"] for m in page["items"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(sent) and len(seen) == 5
    with pytest.raises(ApiError) as err:
        await nl.inbox("0", limit=0)
    assert err.value.status == 400


async def test_clock_moves_only_for_administrators_of_demonstration_gateways(
    tmp_path: object,
) -> None:
    from pathlib import Path

    from .conftest import make_harness

    h = await make_harness(Path(str(tmp_path)))
    try:
        await h.start("BE-DU")
        with pytest.raises(ApiError) as err:
            await h.api("BE-DU", "case-officer").advance_clock(60)
        assert err.value.status == 403
        before = h.ctx("BE-DU").clock()
        moved = await h.api("BE-DU", "administrator").advance_clock(86400)
        assert moved["offset_seconds"] == 86400
        assert (h.ctx("BE-DU").clock() - before).days == 1
        with pytest.raises(ApiError) as err:
            await h.api("BE-DU", "administrator").advance_clock(-5)
        assert err.value.status == 422
        # JSON as Python writes it may hold NaN and Infinity; no number moves the clock past
        # what a date can hold: each is refused, naming the field, and the clock stays put
        for bad in (float("nan"), float("inf"), 1e300):
            with pytest.raises(ApiError) as err:
                await h.api("BE-DU", "administrator").advance_clock(bad)
            assert err.value.status == 422, bad
            assert err.value.problem["field"] == "advance_seconds"
        assert h.ctx("BE-DU").clock.offset.total_seconds() == 86400  # type: ignore[attr-defined]
        await h.stop("BE-DU")
        config = h.net.gateways["BE-DU"].config
        config.write_text(config.read_text().replace("adjustable = true", "adjustable = false"))
        await h.start("BE-DU")
        with pytest.raises(ApiError) as err:
            await h.api("BE-DU", "administrator").advance_clock(60)
        assert err.value.status == 403 and err.value.problem["rule"] == "clock.adjustable"
    finally:
        await h.close()


async def test_art40_9_register_api_is_for_auditors_only_and_carries_no_payload(
    harness: Harness,
) -> None:
    await harness.start("BE-DU", "NL-DU")
    be = harness.api("BE-DU")
    sent = await send_request(be, case_number="AUD-1")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    auditor = harness.api("BE-DU", "auditor")
    page = await auditor._request(
        "GET", "/api/v1/register", params={"reference": sent["reference"], "event": "delivered"}
    )
    assert [e["message_id"] for e in page["items"]] == [sent["message_id"]]
    assert "EXAMPLE-DOE" not in json.dumps(page)
    for role in ("case-officer", "health-practitioner", "administrator"):
        with pytest.raises(ApiError) as err:
            await harness.api("BE-DU", role)._request("GET", "/api/v1/register")
        assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        await auditor._request("GET", "/api/v1/register", params={"since": "yesterday"})
    assert err.value.status == 400
    with pytest.raises(ApiError) as err:
        await auditor._request("GET", "/api/v1/register", params={"peer'; DROP": "x"})
    assert err.value.status == 400
