"""What a developer meets first (issue 17, item 10): every error is problem+json, also the
router's own 404 and 405; `field` names the input at fault; a reply without `in_reply_to`
is told so before anything else."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from gateway.client import ApiError
from gateway.config import load_config
from gateway.examples import attachments_for

from .conftest import Harness, example


async def test_unknown_paths_and_methods_answer_problem_json(harness: Harness) -> None:
    await harness.start("BE-DU")
    api = harness.net.gateways["BE-DU"].api_url
    async with aiohttp.ClientSession() as session:
        async with session.get(api + "/api/v1/nothing-here") as missing:
            assert missing.status == 404
            assert missing.content_type == "application/problem+json"
            body = await missing.json(content_type=None)
            assert body["status"] == 404 and "openapi.json" in body["detail"]
        async with session.delete(api + "/api/v1/messages") as wrong:
            assert wrong.status == 405
            assert wrong.content_type == "application/problem+json"
            assert "POST" in wrong.headers["Allow"]


async def test_a_reply_without_in_reply_to_is_told_so_first(harness: Harness) -> None:
    await harness.start("BE-DU")
    be = harness.api("BE-DU")
    with pytest.raises(ApiError) as refused:
        await be.submit("take-charge-reply", "NL-DU", {"acceptance": {}})
    assert refused.value.status in (400, 422)
    assert refused.value.problem["field"] == "/in_reply_to", refused.value.problem


async def test_the_field_at_fault_is_named(harness: Harness) -> None:
    await harness.start("BE-DU")
    be = harness.api("BE-DU")
    form = example("take-charge-request.json")
    with pytest.raises(ApiError) as unknown:
        await be.submit(
            "take-charge-request",
            "XX-NOBODY",
            form,
            case_number="POLISH-1",
            attachments=attachments_for(form),
        )
    assert unknown.value.problem["field"] == "/receiver", unknown.value.problem
    with pytest.raises(ApiError) as no_number:
        await be.submit("take-charge-request", "NL-DU", form, attachments=attachments_for(form))
    assert no_number.value.problem["field"] == "/case_number", no_number.value.problem


async def test_a_case_system_lists_its_own_messages_by_direction_state_and_type(
    harness: Harness,
) -> None:
    await harness.start("BE-DU", "NL-DU")
    be, nl = harness.api("BE-DU"), harness.api("NL-DU")
    form = example("take-charge-request.json")
    sent = await be.submit(
        "take-charge-request",
        "NL-DU",
        form,
        case_number="POLISH-2",
        attachments=attachments_for(form),
    )
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    mine = await be.messages(direction="out", state="delivered", message_type="take-charge-request")
    assert [m["message_id"] for m in mine["items"]] == [sent["message_id"]]
    assert "form" not in mine["items"][0]  # metadata only
    assert (await be.messages(direction="in"))["items"] == []
    received = await nl.messages(direction="in")
    assert [m["message_id"] for m in received["items"]] == [sent["message_id"]]
    after = await be.messages(cursor=mine["next_cursor"])
    assert after["items"] == []
    with pytest.raises(ApiError) as bad:
        await be.messages(state="lost")
    assert bad.value.status == 400 and bad.value.problem["field"] == "state"


async def test_every_problem_of_a_form_comes_at_once(harness: Harness) -> None:
    await harness.start("BE-DU")
    be = harness.api("BE-DU")
    form = example("take-charge-request.json")
    form["applicant"]["dateOfBirth"] = "17/03/1994"
    form["applicant"]["sex"] = "unknownish"
    form["criterion"] = "Article nineteen"
    with pytest.raises(ApiError) as refused:
        await be.submit(
            "take-charge-request",
            "NL-DU",
            form,
            case_number="POLISH-3",
            attachments=attachments_for(form),
        )
    problem = refused.value.problem
    fields = [e["field"] for e in problem["errors"]]
    assert problem["field"] == fields[0]
    for field in ("/form/applicant/dateOfBirth", "/form/applicant/sex", "/form/criterion"):
        assert field in fields, fields
    assert "17/03/1994" not in str(problem)  # a rule, never the value (personal data)


async def test_the_synchronous_client_for_scripts(harness: Harness) -> None:
    from gateway.client_sync import SyncGatewayClient

    await harness.start("BE-DU", "NL-DU")
    gw = harness.net.gateways["BE-DU"]
    form = example("take-charge-request.json")

    def script() -> tuple[str, list[str]]:  # as a shell script would use it: no event loop
        with SyncGatewayClient(gw.api_url, gw.tokens["case-officer"]) as api:
            sent = api.submit(
                "take-charge-request",
                "NL-DU",
                form,
                case_number="POLISH-SYNC",
                attachments=attachments_for(form),
            )
            view = api.wait_for_state(sent["message_id"], {"delivered"}, within=20)
            with pytest.raises(AttributeError):
                api._request  # noqa: B018 - private methods are not offered
            listed = api.messages(direction="out")
            return view["state"], [m["message_id"] for m in listed["items"]]

    state, listed = await asyncio.to_thread(script)
    assert state == "delivered" and len(listed) == 1


async def test_a_person_with_two_roles_sends_and_reads_each_form_in_its_own_role(
    harness: Harness,
) -> None:
    """A user who is both case officer and health practitioner (issue 17, item 5), at each
    gateway: at BE-DU the take charge request goes as a case officer's and the health
    certificate as a health practitioner's (Art. 39(3)), each accepted; at NL-DU that user
    reads and consumes the sealed certificate, which a case officer alone may not read."""
    from gateway.client import GatewayClient

    from .conftest import run_gateway, send_request

    await harness.start("BE-DU", "NL-DU")
    both: dict[str, GatewayClient] = {}
    for code in ("BE-DU", "NL-DU"):
        tokens = load_config(harness.net.gateways[code].config).api.tokens_file
        assert tokens is not None
        added = await asyncio.to_thread(
            run_gateway, "users", "add", "dr-both", "--role", "case-officer",
            "--role", "health-practitioner", "--tokens-file", str(tokens),
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        token = next(w for w in added.stdout.split() if w.startswith("gwt_"))
        both[code] = GatewayClient(harness.net.gateways[code].api_url, token)
        harness.clients.append(both[code])
    for _ in range(100):  # the tokens files are re-read within api.tokens_reload_seconds
        try:
            await both["BE-DU"].health()
            await both["NL-DU"].health()
            break
        except ApiError as exc:
            assert exc.status == 401
            await asyncio.sleep(0.1)
    sent = await send_request(both["BE-DU"], case_number="POLISH-ROLES")
    await both["BE-DU"].wait_for_state(sent["message_id"], {"delivered"}, within=20)
    answer = await harness.api("NL-DU").submit(
        "take-charge-reply",
        "BE-DU",
        example("take-charge-reply-acceptance.json"),
        in_reply_to=sent["message_id"],
    )
    await harness.api("NL-DU").wait_for_state(answer["message_id"], {"delivered"}, within=20)
    certificate = await both["BE-DU"].submit(
        "health-certificate", "NL-DU", example("health-certificate.json"), case=sent["reference"]
    )
    await both["BE-DU"].wait_for_state(certificate["message_id"], {"delivered"}, within=20)
    items = (await both["NL-DU"].inbox())["items"]
    (view,) = [m for m in items if m["type"] == "health-certificate"]
    assert view.get("form") is not None and not view.get("restricted")
    officer = (await harness.api("NL-DU").inbox())["items"]
    assert [m.get("restricted") for m in officer if m["type"] == "health-certificate"] == [True]
    assert await both["NL-DU"].consume(certificate["message_id"])
