"""XML-DSig verification: exactly one enveloped signature over the whole document, allow-listed
algorithms, a signer pinned in the directory; only signed content comes out (1560/2003
Art. 19: what a national access point sends is presumed authentic, so it must be provably
its own)."""

from __future__ import annotations

import base64
import copy
import hashlib
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from gateway.core.policy import Header, Reason, Rejection
from gateway.pki.certs import fingerprint
from gateway.pki.demo import DemoNetwork
from gateway.pki.directory_file import load_directory
from gateway.xml.envelope import build_transmission, read_header
from gateway.xml.parser import parse_untrusted
from gateway.xml.signature import DS, Signer, verify
from tests.pki_helpers import unpinned_certificate

FORM_NS = "urn:eu:dublin:forms:take-charge-request:1"


def document() -> etree._Element:
    form = etree.Element(f"{{{FORM_NS}}}TakeChargeRequest")
    etree.SubElement(form, f"{{{FORM_NS}}}criterion").text = "Art. 15(1)"
    header = Header(
        message_id="11111111-1111-4111-8111-111111111111",
        reference="BE1CASE-1",
        message_type="take-charge-request",
        sender="BE-DU",
        receiver="NL-DU",
        created=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
    )
    return build_transmission(header, form)


@pytest.fixture(scope="module")
def resolve(pki: DemoNetwork):
    directory = load_directory(pki.directory_source)

    def signer_of(fp: str) -> str | None:
        auth = directory.by_signing_fingerprint(fp)
        return auth.code if auth else None

    return signer_of


def signed(signers: dict[str, Signer], code: str = "BE-DU") -> bytes:
    return signers[code].sign(document())


def reason(data: bytes, resolve) -> Reason:
    with pytest.raises(Rejection) as err:
        verify(parse_untrusted(data), resolve)
    return err.value.reason


def test_signed_transmission_verifies_and_names_its_signer(signers, resolve) -> None:
    result = verify(parse_untrusted(signed(signers)), resolve)
    assert result.signer_authority == "BE-DU"
    assert read_header(result.root).reference == "BE1CASE-1"
    assert result.root.find(f"{{{DS}}}Signature") is None


def test_signature_uses_exclusive_c14n_ecdsa_sha256_and_whole_document_reference(signers) -> None:
    root = etree.fromstring(signed(signers))
    ns = {"ds": DS}
    assert root.xpath("string(//ds:Reference/@URI)", namespaces=ns) == ""
    assert root.find("ds:Signature/ds:SignedInfo/ds:Reference", ns).get("URI") == ""
    assert root.xpath("string(//ds:CanonicalizationMethod/@Algorithm)", namespaces=ns) == (
        "http://www.w3.org/2001/10/xml-exc-c14n#"
    )
    assert root.xpath("string(//ds:SignatureMethod/@Algorithm)", namespaces=ns) == (
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    )


def test_unsigned_document_is_refused(resolve) -> None:
    data = etree.tostring(document())
    assert reason(data, resolve) == Reason.SIGNATURE_MISSING


def test_second_signature_is_refused(signers, resolve) -> None:
    root = etree.fromstring(signed(signers))
    sig = root.find(f"{{{DS}}}Signature")
    root.find("{urn:eu:dublin:gateway:1}Header").append(copy.deepcopy(sig))
    assert reason(etree.tostring(root), resolve) == Reason.SIGNATURE_MULTIPLE


def test_signature_nested_below_the_root_is_refused(signers, resolve) -> None:
    root = etree.fromstring(signed(signers))
    sig = root.find(f"{{{DS}}}Signature")
    root.remove(sig)
    root.find("{urn:eu:dublin:gateway:1}Header").append(sig)
    assert reason(etree.tostring(root), resolve) == Reason.SIGNATURE_LOCATION


def test_reference_other_than_whole_document_is_refused(signers, resolve) -> None:
    data = signed(signers).replace(b'URI=""', b'URI="#body"')
    assert reason(data, resolve) == Reason.SIGNATURE_REFERENCE


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"xmldsig-more#ecdsa-sha256", b"xmldsig#rsa-sha1"),
        (b"http://www.w3.org/2001/04/xmlenc#sha256", b"http://www.w3.org/2000/09/xmldsig#sha1"),
        (
            b'CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"',
            b'CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"',
        ),
    ],
)
def test_algorithms_outside_the_allow_list_are_refused(signers, resolve, old, new) -> None:
    data = signed(signers)
    assert old in data
    assert reason(data.replace(old, new), resolve) == Reason.SIGNATURE_ALGORITHM


def test_content_changed_after_signing_is_refused(signers, resolve) -> None:
    data = signed(signers).replace(b"Art. 15(1)", b"Art. 16(1)")
    assert reason(data, resolve) == Reason.SIGNATURE_INVALID


def test_signer_not_pinned_in_the_directory_is_refused(pki, resolve) -> None:
    key, cert = unpinned_certificate(pki, "signing", "BE-DU signing")
    assert resolve(fingerprint(cert)) is None
    data = Signer(key, cert).sign(document())
    assert reason(data, resolve) == Reason.SIGNER_UNKNOWN


def test_wrapping_signed_body_under_object_with_forged_body_is_refused(signers, resolve) -> None:
    root = etree.fromstring(signed(signers))
    gw = "{urn:eu:dublin:gateway:1}"
    body = root.find(f"{gw}Body")
    sig = root.find(f"{{{DS}}}Signature")
    obj = etree.SubElement(sig, f"{{{DS}}}Object")
    obj.append(copy.deepcopy(body))
    body[0][0].text = "Art. 99(9)"
    assert reason(etree.tostring(root), resolve) == Reason.SIGNATURE_INVALID


def test_comment_inside_signed_value_is_refused_before_it_can_split_the_value(
    signers, resolve
) -> None:
    """C14N drops comments: `BE1<!---->CASE-1` is signed as `BE1CASE-1`. A naive reader of
    the received tree would see `BE1`; ours reads only the signed bytes, and comments are
    refused outright anyway."""
    data = signed(signers).replace(b"BE1CASE-1", b"BE1<!---->CASE-1")
    with pytest.raises(Rejection) as caught:
        parse_untrusted(data)
    assert caught.value.reason == Reason.MALFORMED_XML
    assert "comments are refused" in str(caught.value)
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False))
    assert read_header(verify(root, resolve).root).reference == "BE1CASE-1"


@pytest.mark.skipif(
    shutil.which("xmlsec1") is None, reason="xmlsec1 (Debian package) not installed"
)
def test_signature_verifies_with_xmlsec1_against_the_network_ca(
    signers: dict[str, Signer], pki: DemoNetwork, tmp_path: Path
) -> None:
    path = tmp_path / "t.xml"
    path.write_bytes(signed(signers))
    done = subprocess.run(
        ["xmlsec1", "--verify", "--trusted-pem", str(pki.ca_cert), str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    path.write_bytes(signed(signers).replace(b"Art. 15(1)", b"Art. 16(1)"))
    bad = subprocess.run(
        ["xmlsec1", "--verify", "--trusted-pem", str(pki.ca_cert), str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode != 0


def test_the_pinned_certificate_checks_the_signature_not_the_key_the_document_carries(
    signers, resolve
) -> None:
    """BE-DU's signature with NL-DU's (pinned) certificate in KeyInfo: the signature is
    checked with NL-DU's key, the one the directory pins for that certificate, and fails."""
    root = etree.fromstring(signed(signers))
    nl = signers["NL-DU"].certificate.public_bytes(serialization.Encoding.DER)
    root.find(f".//{{{DS}}}X509Certificate").text = base64.b64encode(nl).decode()
    assert reason(etree.tostring(root), resolve) == Reason.SIGNATURE_INVALID


def test_a_transform_with_parameters_is_refused(signers, resolve) -> None:
    """Exclusive C14N with an InclusiveNamespaces list canonicalises other bytes than ours."""
    root = etree.fromstring(signed(signers))
    transform = root.findall(f".//{{{DS}}}Transform")[1]
    etree.SubElement(transform, "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces").set(
        "PrefixList", "gw"
    )
    assert reason(etree.tostring(root), resolve) == Reason.SIGNATURE_ALGORITHM


def _signxml_sign(signer: Signer, root: etree._Element) -> bytes:
    signed_root = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=SignatureMethod.ECDSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    ).sign(root, key=signer.key, cert=[signer.certificate])
    return etree.tostring(signed_root, xml_declaration=True, encoding="UTF-8")


def test_interoperates_with_a_second_xml_dsig_implementation(signers, resolve) -> None:
    """A transmission signed by signxml (another implementation, which lays the signature out
    with its own whitespace) verifies here, and ours verifies with signxml, pinned to the
    signer's certificate: a peer may use any conforming library."""
    theirs = _signxml_sign(signers["BE-DU"], document())
    result = verify(parse_untrusted(theirs), resolve)
    assert result.signer_authority == "BE-DU"
    assert read_header(result.root).reference == "BE1CASE-1"
    ours = signed(signers)
    checked = XMLVerifier().verify(
        ours,
        x509_cert=signers["BE-DU"].certificate,
        expect_config=SignatureConfiguration(
            location="./",
            expect_references=1,
            signature_methods=frozenset({SignatureMethod.ECDSA_SHA256}),
            digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
        ),
    )
    assert read_header(checked.signed_xml).reference == "BE1CASE-1"


def test_only_the_signed_bytes_come_out(signers, resolve) -> None:
    """The returned tree is parsed from the canonical bytes the digest covers: whitespace
    around the signature, namespace declarations and all, a new document."""
    data = signed(signers)
    received = parse_untrusted(data)
    result = verify(received, resolve)
    assert result.root is not received
    assert result.root.getroottree() is not received.getroottree()
    canonical = etree.tostring(result.root, method="c14n", exclusive=True)
    digest = received.findtext(f".//{{{DS}}}DigestValue").strip()
    assert base64.b64encode(hashlib.sha256(canonical).digest()).decode() == digest
