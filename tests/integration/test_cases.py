"""Cases between two gateways: the conversation rules hold on both sides, attachments travel
inside the signed transmission, and the case view shows state and history."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.client import ApiError
from gateway.core.conversations import basis_version
from gateway.core.forms import form_type
from gateway.core.policy import Header
from gateway.examples import attachments_for
from gateway.xml.envelope import AttachmentFile, build_transmission
from gateway.xml.forms import form_to_element

from .conftest import Harness, answered_request, erased_information, example, send_request


async def test_art30_case_view_follows_request_and_acceptance_on_both_sides(
    harness: Harness,
) -> None:
    await harness.start("BE-DU", "NL-DU")
    be, nl = harness.api("BE-DU"), harness.api("NL-DU")
    sent = await send_request(be, case_number="CASE-7")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    assert (await nl.case(sent["reference"]))["state"] == "requested"
    reply = await nl.submit(
        "take-charge-reply",
        "BE-DU",
        example("take-charge-reply-acceptance"),
        in_reply_to=sent["message_id"],
    )
    await nl.wait_for_state(reply["message_id"], {"delivered"}, within=20)
    for api in (be, nl):
        case = await api.case(sent["reference"])
        assert case["state"] == "accepted"
        assert case["kind"] == "take-charge"
        assert (case["requesting"], case["requested"]) == ("BE-DU", "NL-DU")
        assert [m["type"] for m in case["messages"]] == ["take-charge-request", "take-charge-reply"]


async def test_art30_second_reply_is_refused_at_submission_and_nothing_is_sent(
    harness: Harness,
) -> None:
    await harness.start("BE-DU", "NL-DU")
    be, nl = harness.api("BE-DU"), harness.api("NL-DU")
    sent = await send_request(be, case_number="CASE-8")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    await nl.submit(
        "take-charge-reply",
        "BE-DU",
        example("take-charge-reply-refusal"),
        in_reply_to=sent["message_id"],
    )
    count = await harness.ctx("NL-DU").store.messages.count()
    with pytest.raises(ApiError) as err:
        await nl.submit(
            "take-charge-reply",
            "BE-DU",
            example("take-charge-reply-acceptance"),
            in_reply_to=sent["message_id"],
        )
    assert err.value.status == 422
    assert err.value.problem["rule"] == "already-answered"
    assert await harness.ctx("NL-DU").store.messages.count() == count


async def test_art30_reply_arriving_for_an_answered_request_gets_a_negative_ack(
    harness: Harness,
) -> None:
    """A second reply crafted past the sender's own checks is refused by the receiver."""
    await harness.start("BE-DU", "NL-DU")
    be = harness.api("BE-DU")
    sent, _ = await answered_request(harness, "CASE-9", "take-charge-reply-refusal")
    header = Header(
        str(uuid.uuid4()),
        sent["reference"],
        "take-charge-reply",
        "NL-DU",
        "BE-DU",
        datetime.now(UTC),
        in_reply_to=sent["message_id"],
        legal_basis="2024-1351",
        rules_version=basis_version("2024-1351"),
    )
    form = form_to_element(form_type("take-charge-reply"), example("take-charge-reply-acceptance"))
    body = harness.signer("NL-DU").sign(build_transmission(header, form))
    status, ack = await harness.post_signed("NL-DU", "BE-DU", body)
    assert status == 422
    assert ack.reason_code == "already-answered"
    assert (await be.case(sent["reference"]))["state"] == "refused"


async def test_attachment_content_must_match_its_descriptor(harness: Harness) -> None:
    await harness.start("BE-DU")
    be = harness.api("BE-DU")
    form = example("take-charge-request")
    files = attachments_for(form)
    files[0]["content"] = base64.b64encode(b"%PDF-1.4 something else").decode()
    with pytest.raises(ApiError) as err:
        await be.submit(
            "take-charge-request", "NL-DU", form, case_number="ATT-1", attachments=files
        )
    assert err.value.problem["field"] == "/attachments"
    assert "SHA-256" in err.value.problem["detail"]
    with pytest.raises(ApiError) as err:
        await be.submit("take-charge-request", "NL-DU", form, case_number="ATT-2")
    assert "absent" in err.value.problem["detail"]


async def test_attachment_swapped_after_signing_is_refused_by_the_receiver(
    harness: Harness,
) -> None:
    """The attachment bytes are covered by the signature, and checked against the form."""
    await harness.start("NL-DU")
    header = Header(
        str(uuid.uuid4()),
        "BE01ATT-3",
        "take-charge-request",
        "BE-DU",
        "NL-DU",
        datetime.now(UTC),
        legal_basis="2024-1351",
        rules_version=basis_version("2024-1351"),
    )
    form_json = example("take-charge-request")
    form = form_to_element(form_type("take-charge-request"), form_json)
    wrong = [AttachmentFile("visa-copy.pdf", "application/pdf", b"%PDF-1.4 forged")]
    body = harness.signer("BE-DU").sign(build_transmission(header, form, wrong))
    status, ack = await harness.post_signed("BE-DU", "NL-DU", body)
    assert status == 422
    assert ack.reason_code == "attachment-invalid"
    assert await harness.ctx("NL-DU").store.messages.count() == 0


def _described_twice(first_lies: bool) -> dict[str, Any]:
    """The example request whose form describes its one attachment twice: identically, or
    first with a digest and size the file does not have (only the last used to be checked)."""
    form = example("take-charge-request")
    real = form["attachment"][0]
    first = dict(real, sha256="0" * 64, size=1) if first_lies else dict(real)
    form["attachment"] = [first, real]
    return form


@pytest.mark.attack
@pytest.mark.parametrize("first_lies", [False, True], ids=["identical", "first-lies"])
async def test_a_form_describing_the_same_attachment_twice_is_refused_by_the_receiver(
    harness: Harness, first_lies: bool
) -> None:
    await harness.start("NL-DU")
    header = Header(
        str(uuid.uuid4()),
        "BE01ATT-4",
        "take-charge-request",
        "BE-DU",
        "NL-DU",
        datetime.now(UTC),
        legal_basis="2024-1351",
        rules_version=basis_version("2024-1351"),
    )
    form_json = _described_twice(first_lies)
    form = form_to_element(form_type("take-charge-request"), form_json)
    files = [
        AttachmentFile(a["fileName"], a["mediaType"], base64.b64decode(a["content"]))
        for a in attachments_for(example("take-charge-request"))
    ]
    body = harness.signer("BE-DU").sign(build_transmission(header, form, files))
    status, ack = await harness.post_signed("BE-DU", "NL-DU", body)
    assert (status, ack.status, ack.reason_code) == (422, "rejected", "attachment-invalid")
    assert "described more than once" in (ack.reason_text or "")
    assert files[0].file_name not in (ack.reason_text or "")
    store = harness.ctx("NL-DU").store
    entries = await store.register.query(limit=1000, message_id=header.message_id)
    assert [(e.event, e.reason, e.sequence) for e in entries] == [
        ("rejected", "attachment-invalid", ack.head_sequence)
    ]
    assert await store.messages.count() == 0


@pytest.mark.parametrize("first_lies", [False, True], ids=["identical", "first-lies"])
async def test_a_submission_describing_the_same_attachment_twice_is_refused(
    harness: Harness, first_lies: bool
) -> None:
    await harness.start("BE-DU")
    form = _described_twice(first_lies)
    with pytest.raises(ApiError) as err:
        await harness.api("BE-DU").submit(
            "take-charge-request",
            "NL-DU",
            form,
            case_number="ATT-5",
            attachments=attachments_for(example("take-charge-request")),
        )
    problem = err.value.problem
    assert (err.value.status, problem["rule"]) == (422, "attachment-invalid")
    assert problem["field"] == "/form/attachment/1/fileName"
    assert form["attachment"][0]["fileName"] not in problem["detail"]
    assert await harness.ctx("BE-DU").store.messages.count() == 0


async def test_unknown_case_is_not_found(harness: Harness) -> None:
    await harness.start("BE-DU")
    with pytest.raises(ApiError) as err:
        await harness.api("BE-DU").case("BE01NOPE")
    assert err.value.status == 404


async def test_art40_8_erasure_notice_erases_the_payload_and_the_register_still_verifies(
    harness: Harness,
) -> None:
    from gateway.pki.certs import load_certificate
    from gateway.service.audit import verify_store

    await harness.start("BE-DU", "NL-DU")
    be, nl = harness.api("BE-DU"), harness.api("NL-DU")
    _, info, _ = await erased_information(harness, "ERASE-1")

    stored = await harness.ctx("NL-DU").store.messages.get(info["message_id"])
    assert stored is not None and stored.signed_xml is None
    assert stored.digest == (await be.message(info["message_id"]))["digest"]
    entries = await harness.ctx("NL-DU").store.register.query(limit=1000)
    erased = [e for e in entries if e.event == "payload-erased"]
    assert len(erased) == 1 and erased[0].message_id == info["message_id"]
    item = await nl.wait_for_inbox(lambda m: m["message_id"] == info["message_id"])
    assert item["form"] is None
    report = await verify_store(
        harness.ctx("NL-DU").store, "NL-DU", load_certificate(harness.net.pki.ca_cert)
    )
    assert report.entries == len(entries)
    # NL-DU cannot ask BE-DU to erase what BE-DU itself sent (Art. 40(8))
    with pytest.raises(ApiError) as err:
        await nl.submit(
            "erasure-notice", "BE-DU", example("erasure-notice"), in_reply_to=info["message_id"]
        )
    assert err.value.problem["rule"] == "conversation-rule"


async def test_payloads_are_erased_after_retention_and_the_register_still_verifies(
    tmp_path: Path,
) -> None:
    from datetime import timedelta

    from gateway.pki.certs import load_certificate
    from gateway.service.audit import verify_store

    from .conftest import make_harness

    h = await make_harness(tmp_path)
    for code in ("BE-DU", "NL-DU"):
        cfg = h.net.gateways[code].config
        cfg.write_text(cfg.read_text() + "\n[register]\npayload_retention_days = 30\n")
    try:
        await h.start("BE-DU", "NL-DU")
        be = h.api("BE-DU")
        sent = await send_request(be, case_number="RET-1")
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        for code in ("BE-DU", "NL-DU"):
            running = h.running[code]
            assert await running.retention.erase_expired() == 0  # not yet
            running.ctx.clock.offset += timedelta(days=31)  # type: ignore[attr-defined]
            assert await running.retention.erase_expired() == 1
            stored = await running.ctx.store.messages.get(sent["message_id"])
            assert stored is not None and stored.signed_xml is None and stored.digest
            entries = await running.ctx.store.register.query(limit=1000)
            erased = [e for e in entries if e.event == "payload-erased"]
            assert [(e.message_id, e.reason) for e in erased] == [(sent["message_id"], "retention")]
            await verify_store(running.ctx.store, code, load_certificate(h.net.pki.ca_cert))
    finally:
        await h.close()
