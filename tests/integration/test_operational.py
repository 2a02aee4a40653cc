"""The operational family on three real gateways: ICONET early warnings (Council Decision
2005/267/EC) and liaison officers' reports (Regulation (EU) 2019/1240) broadcast to a
network, one signed, acknowledged, registered transmission per receiver under one item id;
no personal data (refused at the sender, and at the receiver when a sender skips the check);
handling codes that forbid passing an item on without the originator's permission, checked by
the forwarding gateway and by the final receiver; withdrawals and corrections; and only
liaison officers read them."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import shutil
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.core.forms import OPERATIONAL_TYPES
from gateway.core.policy import Header
from gateway.xml.envelope import build_transmission
from gateway.xml.forms import form_to_element
from tests.integration.conftest import Harness, example, gateway_now
from tests.pki_helpers import publish

pytestmark = pytest.mark.asyncio


async def call(
    h: Harness, code: str, method: str, path: str, role: str = "liaison-officer", **kw: Any
) -> tuple[int, Any]:
    gw = h.net.gateways[code]
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method,
            gw.api_url + path,
            headers={"Authorization": f"Bearer {gw.tokens[role]}"},
            **kw,
        ) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def until(h: Harness, code: str, path: str, test: Any, within: float = 20) -> Any:
    """Poll the liaison officers' API until `test(answer)` holds (bounded)."""
    answer: Any = None
    for _ in range(int(within / 0.1)):
        status, answer = await call(h, code, "GET", path)
        if status == 200 and test(answer):
            return answer
        await asyncio.sleep(0.1)
    raise AssertionError(f"{code} {path}: never so: {answer}")


async def standard_tools_check(h: Harness, code: str, item: str, tmp_path: Path) -> set[str]:
    """Every transmission `code` holds of the item validates with xmllint against schemas/ and
    verifies with xmlsec1 against the network CA (when the tools are installed); the types
    checked."""
    if not (shutil.which("xmllint") and shutil.which("xmlsec1")):
        return set()
    from tests.integration.test_processes import check_with_standard_tools

    checked = set()
    for m in await h.ctx(code).store.items.transmissions(item):
        assert m.signed_xml is not None
        path = tmp_path / f"{code}-{m.message_id}.xml"
        path.write_bytes(m.signed_xml)
        check_with_standard_tools(path, h.net.pki.ca_cert, m.message_type)
        checked.add(m.message_type)
    return checked


def warning(**changes: Any) -> dict[str, Any]:
    form = example("early-warning.json")
    form.update(changes)
    return form


async def broadcast(h: Harness, form: dict[str, Any], distribution: Any = "network") -> Any:
    status, body = await call(
        h,
        "BE-DU",
        "POST",
        "/api/v1/messages",
        json={"type": "early-warning", "form": form, "distribution": distribution},
    )
    assert status == 201, body
    return body


MAP = b"\x89PNG\r\n\x1a\nfictitious route map"


async def test_iconet_early_warning_broadcast_to_the_network_reaches_every_member(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU", "GR-DU")
    descriptor = {
        "fileName": "route-map.png",
        "mediaType": "image/png",
        "sha256": hashlib.sha256(MAP).hexdigest(),
        "size": len(MAP),
    }
    status, sent = await call(
        h,
        "BE-DU",
        "POST",
        "/api/v1/messages",
        json={
            "type": "early-warning",
            "form": warning(attachment=[descriptor]),
            "distribution": "network",
            "attachments": [
                {
                    "fileName": "route-map.png",
                    "mediaType": "image/png",
                    "content": base64.b64encode(MAP).decode(),
                }
            ],
        },
    )
    assert status == 201, sent
    assert sorted(t["receiver"] for t in sent["transmissions"]) == ["GR-DU", "NL-DU"]
    assert len({t["message_id"] for t in sent["transmissions"]}) == 2
    assert sent["reference"].startswith("BE-EW-")
    item = sent["item_id"]
    for code in ("NL-DU", "GR-DU"):
        page = await until(h, code, "/api/v1/operational", lambda a: len(a["items"]) == 1)
        got = page["items"][0]
        assert got["item_id"] == item and got["originator"] == "BE-DU"
        assert got["category"] == "route-change" and set(got["countries"]) == {"GR", "TR"}
        assert got["handling"]["no_forwarding_without_permission"] is True
        assert got["form"]["summary"].startswith("Fictitious")
        assert got["attachments"] == [
            {"fileName": "route-map.png", "mediaType": "image/png", "size": len(MAP)}
        ]
        gw = h.net.gateways[code]
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                f"{gw.api_url}/api/v1/operational/{item}/attachments/route-map.png",
                headers={"Authorization": f"Bearer {gw.tokens['liaison-officer']}"},
            ) as resp,
        ):
            assert resp.status == 200 and await resp.read() == MAP
        filtered = await until(
            h, code, "/api/v1/operational?country=TR&category=route-change", lambda a: True
        )
        assert [i["item_id"] for i in filtered["items"]] == [item]
        none = await until(h, code, "/api/v1/operational?country=IT", lambda a: True)
        assert none["items"] == []
    # The sender sees who acknowledged.
    mine = await until(
        h,
        "BE-DU",
        f"/api/v1/operational/{item}",
        lambda a: all(r["state"] == "delivered" for r in a["receivers"]),
    )
    assert sorted(r["receiver"] for r in mine["receivers"]) == ["GR-DU", "NL-DU"]
    # Each copy is registered on its own, with the item id; Dublin roles see none of it.
    for code in ("NL-DU", "GR-DU"):
        entries = await h.ctx(code).store.register.query(event="received", limit=100)
        assert [e.details["item_id"] for e in entries] == [item]
        status, inbox = await call(h, code, "GET", "/api/v1/inbox", role="case-officer")
        assert status == 200 and inbox["items"] == []
        status, _ = await call(h, code, "GET", "/api/v1/operational", role="case-officer")
        assert status == 403
    # Exported copies validate with xmllint and verify with xmlsec1 against the network CA.
    await standard_tools_check(h, "GR-DU", item, tmp_path)


async def test_iconet_no_personal_data_a_passport_number_is_refused_naming_the_field(
    harness: Harness,
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU", "GR-DU")
    form = warning(summary="Fictitious: a smuggler travels on passport number X1234567.")
    status, body = await call(
        h,
        "BE-DU",
        "POST",
        "/api/v1/messages",
        json={"type": "early-warning", "form": form, "distribution": "network"},
    )
    assert status == 422 and body["rule"] == "personal-data", body
    assert body["field"] == "/form/summary"
    assert "X1234567" not in str(body), "the value is never echoed"
    assert await h.ctx("BE-DU").store.items.find(networks=("iconet",)) == []


async def test_iconet_a_receiver_refuses_personal_data_from_a_sender_that_skips_the_check(
    harness: Harness,
) -> None:
    """A hostile sender (BE-DU's real keys, its own transmission) skips the check: NL-DU runs
    it itself and refuses, with a register entry naming the reason."""
    h = harness
    await h.start("NL-DU")
    ft = OPERATIONAL_TYPES["early-warning"]
    form = warning(assessment="Fictitious: contact the organiser at organiser@example.org.")
    header = Header(
        message_id=str(uuid.uuid4()),
        reference="BE-EW-000042",
        message_type="early-warning",
        sender="BE-DU",
        receiver="NL-DU",
        created=gateway_now(),
        sender_role="liaison-officer",
        item_id=str(uuid.uuid4()),
    )
    body = h.signer("BE-DU").sign(build_transmission(header, form_to_element(ft, form)))
    _, ack = await h.post_signed("BE-DU", "NL-DU", body)
    assert ack.status == "rejected" and ack.reason_code == "personal-data"
    assert "/form/assessment" in str(ack.reason_text)
    assert "organiser@example.org" not in str(ack.reason_text)
    entries = await h.ctx("NL-DU").store.register.query(event="rejected", limit=10)
    assert [e.reason for e in entries] == ["personal-data"]
    assert await h.ctx("NL-DU").store.items.find(networks=("iconet",)) == []


async def test_iconet_forwarding_needs_the_originators_permission_at_both_gateways(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU", "GR-DU")
    sent = await broadcast(h, warning(), distribution=["NL-DU"])
    item = sent["item_id"]
    await until(h, "NL-DU", f"/api/v1/operational/{item}", lambda a: a["state"] == "active")
    forward = {"type": "forwarded-item", "form": {"item": item}, "receiver": "GR-DU"}
    status, body = await call(h, "NL-DU", "POST", "/api/v1/messages", json=forward)
    assert status == 422 and body["rule"] == "forwarding-forbidden", body

    # A hostile forwarder (NL-DU's real keys) sends it anyway: GR-DU checks the code itself.
    received = [
        m for m in await h.ctx("NL-DU").store.items.transmissions(item) if m.direction == "in"
    ]
    assert received and received[0].signed_xml is not None
    ft = OPERATIONAL_TYPES["forwarded-item"]
    header = Header(
        message_id=str(uuid.uuid4()),
        reference=sent["reference"],
        message_type="forwarded-item",
        sender="NL-DU",
        receiver="GR-DU",
        created=gateway_now(),
        sender_role="liaison-officer",
        item_id=item,
    )
    smuggled = {"item": item, "original": base64.b64encode(received[0].signed_xml).decode()}
    raw = h.signer("NL-DU").sign(build_transmission(header, form_to_element(ft, smuggled)))
    _, ack = await h.post_signed("NL-DU", "GR-DU", raw)
    assert ack.status == "rejected" and ack.reason_code == "forwarding-forbidden"

    # With BE-DU's signed permission naming GR-DU, NL-DU forwards and GR-DU accepts it.
    permit = {
        "type": "item-permission",
        "form": {"item": item, "forwardTo": ["GR-DU"], "judicialUse": False},
        "receiver": "NL-DU",
    }
    status, body = await call(h, "BE-DU", "POST", "/api/v1/messages", json=permit)
    assert status == 201, body
    for _ in range(200):
        status, body = await call(h, "NL-DU", "POST", "/api/v1/messages", json=forward)
        if status == 201:
            break
        await asyncio.sleep(0.1)
    assert status == 201, body
    got = await until(h, "GR-DU", f"/api/v1/operational/{item}", lambda a: True)
    assert got["originator"] == "BE-DU" and got["forwarded_by"] == "NL-DU"
    assert got["form"]["summary"] == warning()["summary"]
    checked = await standard_tools_check(h, "GR-DU", item, tmp_path)
    checked |= await standard_tools_check(h, "NL-DU", item, tmp_path)
    if checked:
        assert checked == {"early-warning", "item-permission", "forwarded-item"}
    # The permission names GR-DU only: another receiver is still refused at NL-DU.
    status, body = await call(
        h, "NL-DU", "POST", "/api/v1/messages", json={**forward, "receiver": "BE-DU"}
    )
    assert status == 422


async def test_iconet_withdrawal_and_correction_by_the_originator(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU", "GR-DU")
    first = await broadcast(h, warning())
    item = first["item_id"]
    corrected = await broadcast(h, warning(replaces=item, category="smugglers-activity"))
    for code in ("NL-DU", "GR-DU"):
        await until(h, code, f"/api/v1/operational/{item}", lambda a: a["state"] == "replaced")
    withdraw = {
        "type": "item-withdrawal",
        "form": {"item": corrected["item_id"], "reason": "Fictitious: observation not confirmed."},
    }
    status, body = await call(h, "BE-DU", "POST", "/api/v1/messages", json=withdraw)
    assert status == 201 and len(body["transmissions"]) == 2, body
    for code in ("NL-DU", "GR-DU"):
        await until(
            h,
            code,
            f"/api/v1/operational/{corrected['item_id']}",
            lambda a: a["state"] == "withdrawn",
        )
    checked = await standard_tools_check(h, "NL-DU", corrected["item_id"], tmp_path)
    assert not checked or checked == {"early-warning", "item-withdrawal"}
    # Only the originator withdraws.
    status, body = await call(h, "NL-DU", "POST", "/api/v1/messages", json=copy.deepcopy(withdraw))
    assert status == 422


async def test_ilo_network_liaison_report_only_to_members_and_only_by_liaison_officers(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU", "GR-DU")
    report = {"type": "liaison-report", "form": example("liaison-report.json")}
    status, body = await call(
        h,
        "BE-DU",
        "POST",
        "/api/v1/messages",
        role="case-officer",
        json={**report, "distribution": "network"},
    )
    assert status == 403, body
    status, body = await call(
        h, "BE-DU", "POST", "/api/v1/messages", json={**report, "distribution": ["XX-DU"]}
    )
    assert status == 422 and body["rule"] == "not-a-network-member", body
    status, body = await call(
        h, "BE-DU", "POST", "/api/v1/messages", json={**report, "distribution": ["GR-DU"]}
    )
    assert status == 201, body
    got = await until(
        h, "GR-DU", "/api/v1/operational?category=document-forgery", lambda a: a["items"]
    )
    assert got["items"][0]["network"] == "ilo-network"
    checked = await standard_tools_check(h, "GR-DU", got["items"][0]["item_id"], tmp_path)
    assert not checked or checked == {"liaison-report"}
    assert await h.ctx("NL-DU").store.items.find(networks=("ilo-network",)) == []


async def test_ilo_network_messages_travel_only_between_its_members(harness: Harness) -> None:
    """GR-DU leaves the liaison officers' network (a new directory): BE-DU's distribution to
    the network skips it, naming it is refused, and a hostile BE-DU (its real keys) that sends
    it a report anyway is refused by GR-DU itself."""
    h = harness
    await h.start("BE-DU", "NL-DU", "GR-DU")

    def gr_leaves(data: dict[str, Any]) -> None:
        for auth in data["authorities"]:
            if auth["code"] == "GR-DU":
                auth["networks"] = ["dublin", "iconet"]

    publish(h.net.pki, gr_leaves)
    for code in ("BE-DU", "GR-DU"):
        await h.api(code, "administrator").reload_trust()
    report = {"type": "liaison-report", "form": example("liaison-report.json")}
    status, body = await call(
        h, "BE-DU", "POST", "/api/v1/messages", json={**report, "distribution": "network"}
    )
    assert status == 201 and [t["receiver"] for t in body["transmissions"]] == ["NL-DU"]
    status, body = await call(
        h, "BE-DU", "POST", "/api/v1/messages", json={**report, "distribution": ["GR-DU"]}
    )
    assert status == 422 and body["rule"] == "not-a-network-member", body
    ft = OPERATIONAL_TYPES["liaison-report"]
    header = Header(
        message_id=str(uuid.uuid4()),
        reference="BE-LR-000099",
        message_type="liaison-report",
        sender="BE-DU",
        receiver="GR-DU",
        created=gateway_now(),
        sender_role="liaison-officer",
        item_id=str(uuid.uuid4()),
    )
    raw = h.signer("BE-DU").sign(
        build_transmission(header, form_to_element(ft, example("liaison-report.json")))
    )
    _, ack = await h.post_signed("BE-DU", "GR-DU", raw)
    assert ack.status == "rejected" and ack.reason_code == "not-a-network-member"
    assert await h.ctx("GR-DU").store.items.find(networks=("ilo-network",)) == []
