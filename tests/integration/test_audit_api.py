"""The auditor's API (Art. 40(9)) on two real gateways: a case seen whole (its transfer
information, Art. 37, and health certificate, Art. 39, which carry references of their own,
under the case), the signed acknowledgements as the legal proof of the time of receipt
(checked by xmlsec1 against the network CA), signed bundles of a range and of a case
(checked by `gateway register verify-bundle`), the reference prefix search, and the CSV's
detached signature (checked by openssl). Metadata and proofs only, never a payload."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.cli import main
from gateway.xml.envelope import read_acknowledgement
from gateway.xml.parser import parse_trusted
from tests.integration.conftest import Harness, answered_request, example

pytestmark = pytest.mark.asyncio

# Values of the example forms that an auditor must never be shown.
PERSONAL = ("EXAMPLE-DOE", "Jane", "no acute condition", "Dr EXAMPLE")


async def get(h: Harness, path: str, role: str = "auditor", **params: str) -> tuple[int, Any]:
    gw = h.net.gateways["BE-DU"]
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            gw.api_url + path,
            params=params,
            headers={"Authorization": f"Bearer {gw.tokens[role]}"},
        ) as resp,
    ):
        body = await resp.read()
        return resp.status, (resp, body)


async def full_case(h: Harness, case_number: str) -> tuple[str, dict[str, str]]:
    """An accepted take charge case with transfer information and a health certificate,
    every message delivered: (case reference, {type: message id})."""
    sent, answer = await answered_request(h, case_number)
    be, doctor = h.api("BE-DU"), h.api("BE-DU", "health-practitioner")
    info = await be.submit(
        "transfer-information", "NL-DU", example("transfer-information"), case=sent["reference"]
    )
    health = await doctor.submit(
        "health-certificate", "NL-DU", example("health-certificate.json"), case=sent["reference"]
    )
    await be.wait_for_state(info["message_id"], {"delivered"}, within=20)
    await doctor.wait_for_state(health["message_id"], {"delivered"}, within=20)
    ids = {
        "take-charge-request": sent["message_id"],
        "take-charge-reply": answer["message_id"],
        "transfer-information": info["message_id"],
        "health-certificate": health["message_id"],
    }
    return sent["reference"], ids


async def test_art40_9_auditor_sees_a_whole_case_with_receipt_times_and_downloads_the_proofs(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    reference, ids = await full_case(h, "AUDIT-1")
    status, (_, body) = await get(h, f"/api/v1/audit/cases/{reference}")
    assert status == 200, body
    case = json.loads(body)
    text = body.decode()
    assert not any(value in text for value in PERSONAL), "an auditor never sees a payload"
    by_type = {m["type"]: m for m in case["messages"]}
    assert set(by_type) == set(ids)
    # Art. 37 and Art. 39 forms carry their own references, and are shown under the case.
    assert by_type["transfer-information"]["reference"] != reference
    assert by_type["health-certificate"]["reference"] != reference
    for kind, message_id in ids.items():
        m = by_type[kind]
        assert m["message_id"] == message_id
        assert m["direction"] == ("in" if kind == "take-charge-reply" else "out")
        assert m["receipt_time"] is not None and m["acknowledgement"]["status"] == "accepted"
        assert m["legal_basis"] == case["legal_basis"]
        # The receipt time shown is the one the signed acknowledgement states.
        status, (resp, ack) = await get(h, f"/api/v1/audit/acknowledgements/{message_id}")
        assert status == 200 and resp.content_type == "application/xml"
        stated = read_acknowledgement(parse_trusted(ack)).receipt_time
        assert stated.isoformat().replace("+00:00", "") in m["receipt_time"].replace("Z", "")
        path = tmp_path / f"{kind}.ack.xml"
        path.write_bytes(ack)
        if shutil.which("xmlsec1"):
            checked = subprocess.run(
                ["xmlsec1", "--verify", "--trusted-pem", str(h.net.pki.ca_cert), str(path)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert checked.returncode == 0, checked.stderr
    # The acceptance opened the transfer limits: each with its rule, article, due date.
    assert case["deadlines"]
    for d in case["deadlines"]:
        assert d["rule"] and d["article"] and d["due_date"] and d["state"]
    opened = by_type["take-charge-reply"]["articles"]
    assert any(a["effect"] == "closed" for a in opened), opened
    assert case["totals"]["messages"] == 4 and case["totals"]["acknowledged"] == 4
    sequences = [e["sequence"] for e in case["entries"]]
    assert sequences == sorted(sequences)
    times = [e["time"] for e in case["entries"]]
    assert times == sorted(times), "the register's time never goes backwards"
    assert {e["form_reference"] for e in case["entries"]} >= {
        by_type["transfer-information"]["reference"],
        by_type["health-certificate"]["reference"],
    }


async def test_art40_9_signed_bundles_of_a_range_and_of_a_case_verify_offline(
    harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    reference, _ = await full_case(h, "AUDIT-2")
    await answered_request(h, "AUDIT-3")  # entries of another case after it
    pki = h.net.pki
    offline = ["--ca", str(pki.ca_cert), "--directory", str(pki.directory)]

    status, (_, data) = await get(h, "/api/v1/audit/export", case=reference)
    assert status == 200
    body = json.loads(base64.b64decode(json.loads(data)["body"]))
    marked = body["case"]["sequences"]
    assert body["case"]["reference"] == reference
    assert marked[0] == body["first"] and marked[-1] == body["last"]
    assert all(e["reference"] == reference for e in body["entries"] if e["sequence"] in marked)
    bundle = tmp_path / "case.bundle"
    bundle.write_bytes(data)
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["register", "verify-bundle", str(bundle), *offline]) == 0
    out = capsys.readouterr().out
    assert "valid: register of BE-DU" in out and f"case {reference}: {len(marked)}" in out

    status, (_, data) = await get(h, "/api/v1/audit/export", **{"from": "2", "to": "6"})
    assert status == 200
    bundle.write_bytes(data)
    assert await asyncio.to_thread(main, ["register", "verify-bundle", str(bundle), *offline]) == 0
    assert "entries 2-6" in capsys.readouterr().out

    for params, expected in (
        ({"case": reference, "from": "1"}, 400),
        ({"from": "x"}, 400),
        ({"from": "5", "to": "2"}, 400),
        ({"case": "NO-SUCH-CASE"}, 404),
        ({"from": "999999"}, 404),
        ({"frm": "1"}, 400),
    ):
        status, (resp, _) = await get(h, "/api/v1/audit/export", **params)
        assert status == expected and resp.content_type == "application/problem+json", params
    assert (await get(h, "/api/v1/audit/acknowledgements/no-such-id"))[0] == 404
    assert (await get(h, "/api/v1/audit/cases/NO-SUCH-CASE"))[0] == 404
    for role in ("case-officer", "health-practitioner", "administrator"):
        assert (await get(h, "/api/v1/audit/export", role=role, case=reference))[0] == 403


async def test_art40_9_register_search_by_prefix_and_a_csv_whose_signature_openssl_checks(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    reference, _ = await full_case(h, "AUDIT-4")
    prefix = reference[:6]
    status, (_, body) = await get(h, "/api/v1/register", reference_prefix=prefix, limit="1000")
    items = json.loads(body)["items"]
    assert status == 200 and items
    assert all(i["reference"].startswith(prefix) for i in items)
    assert any(i["receipt_time"] for i in items if i["event"] == "delivered")
    # LIKE's own characters are searched for literally.
    status, (_, body) = await get(h, "/api/v1/register", reference_prefix="%")
    assert status == 200 and json.loads(body)["items"] == []

    status, (resp, csv_bytes) = await get(h, "/api/v1/register.csv", reference_prefix=prefix)
    assert status == 200
    upto = resp.headers["X-Register-Upto"]
    await answered_request(h, "AUDIT-5")  # the register moves on; the bound keeps the bytes
    status, (_, signature) = await get(
        h, "/api/v1/register.csv.sig", reference_prefix=prefix, upto=upto
    )
    assert status == 200
    status, (_, pem) = await get(h, "/api/v1/audit/signing-certificate")
    cert = x509.load_pem_x509_certificate(pem)
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, csv_bytes, ec.ECDSA(hashes.SHA256()))
    rows = list(csv.DictReader(io.StringIO(csv_bytes.decode())))
    assert rows and all(r["reference"].startswith(prefix) for r in rows)
    assert any(r["receipt_time"] for r in rows if r["event"] == "delivered")
    if shutil.which("openssl"):
        (tmp_path / "register.csv").write_bytes(csv_bytes)
        (tmp_path / "register.csv.sig").write_bytes(signature)
        (tmp_path / "cert.pem").write_bytes(pem)
        key = subprocess.run(
            ["openssl", "x509", "-in", "cert.pem", "-pubkey", "-noout"],
            cwd=tmp_path,
            capture_output=True,
            timeout=30,
            check=True,
        ).stdout
        (tmp_path / "key.pem").write_bytes(key)
        command = ["openssl", "dgst", "-sha256", "-verify", "key.pem", "-signature"]
        ok = subprocess.run(
            [*command, "register.csv.sig", "register.csv"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert ok.returncode == 0 and "Verified OK" in ok.stdout, ok.stderr
        (tmp_path / "register.csv").write_bytes(csv_bytes.replace(b"delivered", b"delivereD", 1))
        bad = subprocess.run(
            [*command, "register.csv.sig", "register.csv"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert bad.returncode != 0
