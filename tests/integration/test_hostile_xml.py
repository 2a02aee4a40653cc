"""Hostile XML over the wire, against a running gateway: XML signature wrapping in its known
variants, entity and DTD tricks, very deep and very large documents, namespace confusion,
comments and whitespace inside signed values, signatures over part of the document or by
another authority. Each is refused with its reason code in a signed negative acknowledgement
and a register entry, and nothing else is stored (Art. 40(9): the register records every
transmission, refused ones included)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from tests.integration.conftest import Harness
from tests.integration.test_rejections import assert_rejected, header, nl, post, with_files

pytestmark = pytest.mark.attack
__all__ = ["nl"]

DS = "http://www.w3.org/2000/09/xmldsig#"
GW = "{urn:eu:dublin:gateway:1}"


def signed(h: Harness, code: str = "BE-DU") -> bytes:
    return h.signer(code).sign(with_files(header()))


def wrap_under_object(h: Harness) -> bytes:
    """The signed original hidden in ds:Object, a forged body where the reader looks."""
    root = etree.fromstring(signed(h))
    original = copy.deepcopy(root)
    sig = root.find(f"{{{DS}}}Signature")
    assert sig is not None
    obj = etree.SubElement(sig, f"{{{DS}}}Object")
    obj.append(original)
    root.find(f"{GW}Header/{GW}Reference").text = "BE01FORGED-1"  # type: ignore[union-attr]
    return etree.tostring(root)


def wrap_under_object_without_inner_signature(h: Harness) -> bytes:
    """The same, with the wrapped copy's own signature removed: the enveloped-signature
    transform then hides the Object, and the reference digest no longer matches."""
    root = etree.fromstring(signed(h))
    original = copy.deepcopy(root)
    inner = original.find(f"{{{DS}}}Signature")
    assert inner is not None
    original.remove(inner)
    sig = root.find(f"{{{DS}}}Signature")
    assert sig is not None
    etree.SubElement(sig, f"{{{DS}}}Object").append(original)
    root.find(f"{GW}Header/{GW}Reference").text = "BE01FORGED-2"  # type: ignore[union-attr]
    return etree.tostring(root)


def wrap_in_sibling(h: Harness) -> bytes:
    """The signed Body moved into a sibling element, a forged Body in its place."""
    root = etree.fromstring(signed(h))
    body = root.find(f"{GW}Body")
    assert body is not None
    holder = etree.Element(f"{GW}Extensions")
    holder.append(copy.deepcopy(body))
    body.addprevious(holder)
    return etree.tostring(root)


def forged_first_header(h: Harness) -> bytes:
    """A second, forged Header placed before the signed one (first-match readers)."""
    root = etree.fromstring(signed(h))
    forged = copy.deepcopy(root.find(f"{GW}Header"))
    forged.find(f"{GW}Sender").text = "GR-DU"  # type: ignore[union-attr]
    root.insert(0, forged)
    return etree.tostring(root)


def partial_signature(h: Harness) -> bytes:
    """A valid signature by BE-DU that covers only the Body (by Id), not the header."""
    root = with_files(header())
    body = root.find(f"{GW}Body")
    assert body is not None
    body.set("Id", "body")
    signer = XMLSigner(
        signature_algorithm=SignatureMethod.ECDSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    be = h.signer("BE-DU")
    result = signer.sign(root, key=be.key, cert=[be.certificate], reference_uri="#body")
    return etree.tostring(result)


def root_in_lookalike_namespace(h: Harness) -> bytes:
    return h.signer("BE-DU").sign(
        etree.fromstring(
            etree.tostring(with_files(header())).replace(
                b"urn:eu:dublin:gateway:1", b"urn:eu:dublin:gateway:1:evil"
            )
        )
    )


def form_prefix_rebound(h: Harness) -> bytes:
    """The form's prefix rebound to another namespace halfway down the document."""
    text = etree.tostring(with_files(header()))
    text = text.replace(
        b"urn:eu:dublin:forms:take-charge-request:1",
        b"urn:eu:dublin:forms:take-charge-reply:1",
        1,
    )
    return h.signer("BE-DU").sign(etree.fromstring(text))


def whitespace_in_signed_sender(h: Harness) -> bytes:
    text = etree.tostring(with_files(header())).replace(
        b"<gw:Sender>BE-DU</gw:Sender>", b"<gw:Sender> BE-DU\n</gw:Sender>"
    )
    return h.signer("BE-DU").sign(etree.fromstring(text))


def comment_in_signed_receiver(h: Harness) -> bytes:
    """Exclusive C14N drops comments: `NL-<!---->XX` would be signed as one value and read as
    another by a naive reader. Comments are refused outright."""
    return signed(h).replace(b"<gw:Receiver>NL-DU", b"<gw:Receiver>NL-<!-- x -->DU")


def deep(h: Harness) -> bytes:
    return b"<a>" * 200 + b"</a>" * 200


def billion_laughs(h: Harness) -> bytes:
    lol = b'<!ENTITY l0 "lol">' + b"".join(
        b'<!ENTITY l%d "&l%d;&l%d;&l%d;&l%d;&l%d;">' % (i, i - 1, i - 1, i - 1, i - 1, i - 1)
        for i in range(1, 10)
    )
    return b"<!DOCTYPE x [" + lol + b"]><x>&l9;</x>"


def external_dtd(h: Harness) -> bytes:
    return b'<!DOCTYPE x SYSTEM "http://127.0.0.1:1/evil.dtd"><x/>'


def parameter_entity(h: Harness) -> bytes:
    return b'<!DOCTYPE x [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><x/>'


def utf16_doctype(h: Harness) -> bytes:
    return '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>'.encode(
        "utf-16"
    )


def signature_by_other_authority_for_other_sender(h: Harness) -> bytes:
    """GR-DU's valid signature over a transmission that names GR-DU, sent on BE-DU's TLS."""
    return h.signer("GR-DU").sign(with_files(header(sender="GR-DU", reference="GR01REJ-1")))


def signature_value_swapped(h: Harness) -> bytes:
    """The SignatureValue of another valid transmission pasted in."""
    mine, other = etree.fromstring(signed(h)), etree.fromstring(signed(h))
    value = f"{{{DS}}}Signature/{{{DS}}}SignatureValue"
    mine.find(value).text = other.find(value).text  # type: ignore[union-attr]
    return etree.tostring(mine)


def signature_value_not_base64(h: Harness) -> bytes:
    """Found by fuzzing: signxml's own schema check of the Signature raised an error that was
    not a refusal (a 500 without register entry)."""
    root = etree.fromstring(signed(h))
    value = root.find(f"{{{DS}}}Signature/{{{DS}}}SignatureValue")
    assert value is not None and value.text is not None
    value.text = value.text[:-4] + "A=="
    return etree.tostring(root)


def certificate_with_invalid_version(h: Harness) -> bytes:
    """Found by fuzzing: a KeyInfo certificate whose version field is invalid raised an
    exception cryptography does not derive from ValueError (a 500, no register entry)."""
    import base64

    root = etree.fromstring(signed(h))
    cert = root.find(f"{{{DS}}}Signature/{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    assert cert is not None and cert.text is not None
    der = bytearray(base64.b64decode(cert.text))
    index = der.find(b"\xa0\x03\x02\x01\x02")  # [0] EXPLICIT INTEGER 2 (v3)
    der[index + 4] = 3
    cert.text = base64.b64encode(bytes(der)).decode()
    return etree.tostring(root)


CASES: list[tuple[str, Callable[[Harness], bytes], int, str]] = [
    ("wrap-under-object", wrap_under_object, 422, "signature-multiple"),
    (
        "wrap-under-object-stripped",
        wrap_under_object_without_inner_signature,
        422,
        "signature-invalid",
    ),
    ("wrap-in-sibling", wrap_in_sibling, 422, "schema-invalid"),
    ("forged-first-header", forged_first_header, 422, "schema-invalid"),
    ("partial-signature", partial_signature, 422, "schema-invalid"),
    ("lookalike-namespace", root_in_lookalike_namespace, 422, "schema-invalid"),
    ("form-prefix-rebound", form_prefix_rebound, 422, "schema-invalid"),
    ("whitespace-in-signed-value", whitespace_in_signed_sender, 422, "schema-invalid"),
    ("comment-in-signed-value", comment_in_signed_receiver, 422, "malformed-xml"),
    ("very-deep", deep, 422, "too-deep"),
    ("billion-laughs", billion_laughs, 422, "doctype-forbidden"),
    ("external-dtd", external_dtd, 422, "doctype-forbidden"),
    ("parameter-entity", parameter_entity, 422, "doctype-forbidden"),
    ("utf16-doctype", utf16_doctype, 422, "doctype-forbidden"),
    (
        "other-authority-signs-as-itself",
        signature_by_other_authority_for_other_sender,
        422,
        "signer-mismatch",
    ),
    ("signature-value-swapped", signature_value_swapped, 422, "signature-invalid"),
    ("signature-value-not-base64", signature_value_not_base64, 422, "signature-invalid"),
    ("certificate-invalid-version", certificate_with_invalid_version, 422, "signer-unknown"),
]


@pytest.mark.parametrize(
    ("make", "http", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_hostile_xml_is_refused_with_its_reason_and_nothing_is_stored(
    nl: Harness, make: Callable[[Harness], bytes], http: int, reason: str
) -> None:
    async with nl.session_as("BE-DU") as session:
        status, ack = await post(session, nl, make(nl))
    await assert_rejected(nl, status, ack, http, reason, sender="BE-DU")
