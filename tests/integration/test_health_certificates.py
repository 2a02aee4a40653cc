"""Art. 39: the common health certificate is sent by health practitioners, only to
authorities the directory marks for health practitioners, with a stated consent basis
(Art. 39(2)), and sealed so that only the receiving practitioners' key opens it: gateways,
their operators, the register and auditors hold ciphertext (Art. 39(3)-(4))."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms
from cryptography import x509
from lxml import etree

from gateway.cli import main
from gateway.client import ApiError
from gateway.core.forms import FORM_TYPES
from gateway.pki.certs import fingerprint
from gateway.service.health import SealError, open_transmission
from gateway.xml.envelope import build_transmission
from gateway.xml.forms import form_to_element
from gateway.xml.sealed import HEALTH_NS, read_sealed, seal
from tests.integration.conftest import Harness, answered_request, example
from tests.integration.test_rejections import header
from tests.pki_helpers import publish

pytestmark = pytest.mark.asyncio

# Values of the example certificate that must never be readable outside the practitioners.
PERSONAL = (b"EXAMPLE-DOE", b"Jane", b"no acute condition", b"Dr EXAMPLE", b"the applicant")


async def send_health_certificate(h: Harness, case: str) -> dict[str, Any]:
    request, _ = await answered_request(h, case)
    return await h.api("BE-DU", "health-practitioner").submit(
        "health-certificate", "NL-DU", example("health-certificate.json"), case=request["reference"]
    )


async def test_art39_stored_health_certificate_is_ciphertext_only_the_practitioner_opens(
    harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    sent = await send_health_certificate(h, "HEALTH-1")
    await h.api("BE-DU").wait_for_state(sent["message_id"], {"delivered"}, within=20)
    pki = h.net.pki

    stored = await h.ctx("NL-DU").store.messages.get(sent["message_id"])
    assert stored is not None and stored.signed_xml is not None
    for value in PERSONAL:
        assert value not in stored.signed_xml, "the receiving gateway stores ciphertext only"
    outgoing = await h.ctx("BE-DU").store.messages.get(sent["message_id"])
    assert outgoing is not None and outgoing.signed_xml is not None
    assert not any(value in outgoing.signed_xml for value in PERSONAL)
    for code in ("BE-DU", "NL-DU"):
        for entry in await h.ctx(code).store.register.query(limit=1000):
            text = str(entry.to_dict()).encode()
            assert not any(value in text for value in PERSONAL)

    nl_health = pki.authorities["NL-DU"].health_cert, pki.authorities["NL-DU"].health_key
    opened = open_transmission(stored.signed_xml, *nl_health)
    assert opened == example("health-certificate.json")
    # The sending practitioners can read back what they sent; nobody else can.
    be_health = pki.authorities["BE-DU"].health_cert, pki.authorities["BE-DU"].health_key
    assert open_transmission(stored.signed_xml, *be_health) == opened
    gr_health = pki.authorities["GR-DU"].health_cert, pki.authorities["GR-DU"].health_key
    with pytest.raises(SealError, match="not sealed for"):
        open_transmission(stored.signed_xml, *gr_health)
    with pytest.raises(SealError, match="does not belong"):
        open_transmission(stored.signed_xml, nl_health[0], gr_health[1])

    # The practitioners' command does the same with an exported transmission.
    exported = tmp_path / "health.xml"
    exported.write_bytes(stored.signed_xml)
    capsys.readouterr()
    argv = ["health", "open", str(exported), "--cert", str(nl_health[0]), "--key"]
    assert main([*argv, str(nl_health[1])]) == 0
    assert json.loads(capsys.readouterr().out) == opened
    assert main([*argv, str(gr_health[1])]) == 2

    # What the API gives NL's practitioners is the sealed form and its signed consent basis.
    items = (await h.api("NL-DU", "health-practitioner").inbox("0", 50))["items"]
    health = next(m for m in items if m["type"] == "health-certificate")
    assert health["form"]["sealed"]["consent"] == "explicit-consent"
    officers = (await h.api("NL-DU").inbox("0", 50))["items"]
    assert next(m for m in officers if m["type"] == "health-certificate")["restricted"]


async def test_art39_health_certificate_to_an_endpoint_not_marked_for_practitioners_is_refused(
    harness: Harness,
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")

    def nl_without_practitioners(data: dict[str, Any]) -> None:
        nl = next(a for a in data["authorities"] if a["code"] == "NL-DU")
        nl["roles"] = ["administrator", "auditor", "case-officer"]
        nl["health_encryption_certificates"] = []

    publish(h.net.pki, nl_without_practitioners)
    await h.api("BE-DU", "administrator").reload_trust()
    await h.api("NL-DU", "administrator").reload_trust()
    with pytest.raises(ApiError) as caught:
        await send_health_certificate(h, "HEALTH-2")
    problem = caught.value.problem
    assert caught.value.status == 422 and problem["rule"] == "role-not-allowed"
    assert "NL-DU is not marked for the health-practitioner role" in problem["detail"]

    # A sending gateway that ignored that is refused by the receiver, with the reason.
    form = form_to_element(FORM_TYPES["health-certificate"], example("health-certificate.json"))
    files = h.net.pki.authorities["BE-DU"]
    sealed = seal(form, "explicit-consent", [_cert(files.health_cert)])
    head = header(
        message_type="health-certificate",
        reference="BE10HEALTH-3",
        case_reference="BE01HEALTH-3",
        sender_role="health-practitioner",
    )
    body = h.signer("BE-DU").sign(build_transmission(head, sealed))
    status, ack = await h.post_signed("BE-DU", "NL-DU", body)
    assert status == 422 and ack.reason_code == "role-not-allowed"
    assert "NL-DU is not marked for the health-practitioner role" in (ack.reason_text or "")
    assert await h.ctx("NL-DU").store.messages.get(head.message_id) is None


async def test_art39_health_certificate_in_clear_or_sealed_for_others_is_refused(
    harness: Harness,
) -> None:
    h = harness
    await h.start("NL-DU")
    form = form_to_element(FORM_TYPES["health-certificate"], example("health-certificate.json"))

    def transmission(body_form: etree._Element) -> bytes:
        head = header(
            message_type="health-certificate",
            reference="BE10HEALTH-4",
            case_reference="BE01HEALTH-4",
            sender_role="health-practitioner",
        )
        return h.signer("BE-DU").sign(build_transmission(head, body_form))

    clear = transmission(form)
    status, ack = await h.post_signed("BE-DU", "NL-DU", clear)
    assert status == 422 and ack.reason_code == "schema-invalid"
    assert "must travel sealed" in (ack.reason_text or "")
    gr = h.net.pki.authorities["GR-DU"]
    for_gr = transmission(seal(form, "explicit-consent", [_cert(gr.health_cert)]))
    status, ack = await h.post_signed("BE-DU", "NL-DU", for_gr)
    assert status == 422 and ack.reason_code == "role-not-allowed"
    assert "not sealed for any encryption certificate" in (ack.reason_text or "")
    assert await h.ctx("NL-DU").store.messages.count() == 0


def _cert(path: Any) -> Any:
    from gateway.pki.certs import load_certificate

    return load_certificate(path)


def _sealed_element(listed: Sequence[x509.Certificate], enveloped_data: bytes) -> etree._Element:
    """A SealedHealthCertificate listing `listed` as its recipients and carrying
    `enveloped_data`, whatever that is: the form a hostile sender may sign."""
    ns = f"{{{HEALTH_NS}}}"
    root = etree.Element(f"{ns}SealedHealthCertificate", nsmap={"f": HEALTH_NS})
    etree.SubElement(root, f"{ns}consent").text = "explicit-consent"
    for cert in listed:
        etree.SubElement(root, f"{ns}recipient").text = fingerprint(cert)
    etree.SubElement(root, f"{ns}envelopedData").text = base64.b64encode(enveloped_data).decode()
    return root


def _enveloped(form: etree._Element, recipients: Sequence[x509.Certificate]) -> bytes:
    """A genuine CMS EnvelopedData of `form` for `recipients`, made by the project's sealer."""
    return read_sealed(seal(form, "explicit-consent", recipients)).enveloped_data


def _edited(der: bytes, edit: Callable[[Any], None]) -> bytes:
    """`der` with its EncryptedContentInfo changed by `edit` (asn1crypto), re-encoded."""
    info = cms.ContentInfo.load(der)
    edit(info["content"]["encrypted_content_info"])
    return bytes(info.dump(force=True))


def _triple_des(content: Any) -> None:
    content["content_encryption_algorithm"] = cms.EncryptionAlgorithm(
        {"algorithm": "tripledes_3key", "parameters": cms.OctetString(os.urandom(8))}
    )


def _without_ciphertext(content: Any) -> None:
    content["encrypted_content"] = None


HOSTILE_SEALS = {
    "plain-form-base64": lambda form, nl, be, gr: (
        [nl, be],
        etree.tostring(form, encoding="UTF-8", xml_declaration=True),
    ),
    "random-bytes": lambda form, nl, be, gr: ([nl, be], os.urandom(600)),
    "for-another-states-practitioner": lambda form, nl, be, gr: (
        [nl, be],
        _enveloped(form, [gr, be]),
    ),
    "missing-a-listed-recipient": lambda form, nl, be, gr: ([nl, be], _enveloped(form, [nl])),
    "extra-recipient-not-listed": lambda form, nl, be, gr: (
        [nl, be],
        _enveloped(form, [nl, be, gr]),
    ),
    "triple-des-content-encryption": lambda form, nl, be, gr: (
        [nl, be],
        _edited(_enveloped(form, [nl, be]), _triple_des),
    ),
    "no-encrypted-content": lambda form, nl, be, gr: (
        [nl, be],
        _edited(_enveloped(form, [nl, be]), _without_ciphertext),
    ),
}


@pytest.mark.attack
async def test_art39_sealed_health_certificate_that_is_not_a_cms_envelope_for_its_listed_recipients_is_refused(  # noqa: E501
    harness: Harness,
) -> None:
    """Art. 39(3)-(4): the receiving gateway cannot decrypt, but it checks that the sealed
    form is a well-formed CMS EnvelopedData with exactly one recipient info per listed
    recipient (issuer and serial of the pinned encryption certificates), allowed algorithms
    and ciphertext. A sender holding BE-DU's real keys tries each way around that: each is
    refused (`sealed-form-invalid`) with a signed negative acknowledgement and a register
    entry, and nothing is stored; the same transmission sealed honestly is accepted."""
    h = harness
    await h.start("BE-DU", "NL-DU")
    request, _ = await answered_request(h, "SEAL-1")
    authorities = h.net.pki.authorities
    nl, be, gr = (_cert(authorities[code].health_cert) for code in ("NL-DU", "BE-DU", "GR-DU"))
    form = form_to_element(FORM_TYPES["health-certificate"], example("health-certificate.json"))
    store = h.ctx("NL-DU").store

    def transmission(sealed: etree._Element, number: int) -> tuple[str, bytes]:
        head = header(
            message_type="health-certificate",
            reference=f"BE10SEAL-{number}",
            case_reference=request["reference"],
            sender_role="health-practitioner",
        )
        return head.message_id, h.signer("BE-DU").sign(build_transmission(head, sealed))

    stored_before = await store.messages.count()
    for number, (name, make) in enumerate(HOSTILE_SEALS.items(), start=2):
        listed, der = make(form, nl, be, gr)
        message_id, body = transmission(_sealed_element(listed, der), number)
        status, ack = await h.post_signed("BE-DU", "NL-DU", body)
        assert (status, ack.status, ack.reason_code) == (
            422,
            "rejected",
            "sealed-form-invalid",
        ), (name, ack.reason_text)
        entries = await store.register.query(limit=1000, message_id=message_id)
        assert [(e.event, e.reason, e.sequence) for e in entries] == [
            ("rejected", "sealed-form-invalid", ack.head_sequence)
        ], name
        assert await store.messages.get(message_id) is None, name
        assert await store.messages.count() == stored_before, name

    # The control: the same sender, case and builder, sealed as an honest gateway seals.
    message_id, body = transmission(_sealed_element([nl, be], _enveloped(form, [nl, be])), 1)
    status, ack = await h.post_signed("BE-DU", "NL-DU", body)
    assert (status, ack.status) == (200, "accepted"), ack.reason_text
    assert await store.messages.get(message_id) is not None
