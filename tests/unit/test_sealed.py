"""Art. 39(3)-(4): what a receiving gateway can check of a sealed health certificate without a
practitioner's key (gateway.xml.sealed.check_envelope): each rule, and that no damaged
envelope gets past it or out of it as anything but a refusal."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asn1crypto import algos, cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.core.policy import Reason, Rejection
from gateway.pki.certs import fingerprint
from gateway.xml.sealed import HEALTH_NS, SealedForm, check_envelope, read_sealed, seal


def _certificate(name: str, serial: int, key: Any = None) -> x509.Certificate:
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "health CA")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


NL, BE, GR = (
    _certificate(f"{code} health", serial) for code, serial in [("NL", 7), ("BE", 8), ("GR", 9)]
)
PINNED = {fingerprint(c): c for c in (NL, BE)}
FORM = etree.Element(f"{{{HEALTH_NS}}}HealthCertificate")


def _der(*recipients: x509.Certificate) -> bytes:
    return read_sealed(seal(FORM, "explicit-consent", list(recipients))).enveloped_data


HONEST = _der(NL, BE)
IV8 = cms.OctetString(os.urandom(8))
RC2 = algos.Rc2Params({"rc2_parameter_version": 58, "iv": os.urandom(8)})


def _sealed(der: bytes, *listed: x509.Certificate) -> SealedForm:
    return SealedForm("explicit-consent", tuple(fingerprint(c) for c in listed or (NL, BE)), der)


def _edit(der: bytes, change: Callable[[Any], None]) -> bytes:
    info = cms.ContentInfo.load(der)
    change(info["content"])
    return bytes(info.dump(force=True))


def _algorithm(name: str, parameters: Any) -> Callable[[Any], None]:
    def change(enveloped: Any) -> None:
        enveloped["encrypted_content_info"]["content_encryption_algorithm"] = (
            cms.EncryptionAlgorithm({"algorithm": name, "parameters": parameters})
        )

    return change


def _key_transport(name: str) -> Callable[[Any], None]:
    def change(enveloped: Any) -> None:
        for info in enveloped["recipient_infos"]:
            info.chosen["key_encryption_algorithm"] = cms.KeyEncryptionAlgorithm(
                {"algorithm": name}
            )

    return change


def _ciphertext(value: bytes | None) -> Callable[[Any], None]:
    def change(enveloped: Any) -> None:
        enveloped["encrypted_content_info"]["encrypted_content"] = value

    return change


def test_an_honest_seal_for_the_listed_recipients_passes() -> None:
    check_envelope(_sealed(HONEST), PINNED)


@pytest.mark.parametrize(
    ("sealed", "fragment"),
    [
        (_sealed(b"<f:HealthCertificate/>"), "not a DER-encoded CMS EnvelopedData"),
        (_sealed(HONEST + b"\x00"), "not a DER-encoded CMS EnvelopedData"),
        (_sealed(HONEST[:-1]), "not a DER-encoded CMS EnvelopedData"),
        (_sealed(_der(GR, BE)), "for a certificate that is not listed"),
        (_sealed(_der(NL)), "a listed recipient has no recipient info"),
        (_sealed(_der(NL, BE, GR)), "for a certificate that is not listed"),
        (_sealed(_der(NL, BE, NL)), "two recipient infos are for the same certificate"),
        (_sealed(HONEST, NL, BE, GR), "not a health encryption certificate the directory"),
        (_sealed(HONEST, NL, NL), "listed twice"),
        (
            _sealed(_edit(HONEST, _algorithm("tripledes_3key", IV8))),
            "AES-128-CBC",
        ),
        (_sealed(_edit(HONEST, _algorithm("rc2", RC2))), "AES-128-CBC"),
        (
            _sealed(_edit(HONEST, _algorithm("aes256_cbc", IV8))),
            "16 bytes",
        ),
        (_sealed(_edit(HONEST, _key_transport("rsaes_oaep"))), "RSA key transport"),
        (_sealed(_edit(HONEST, _ciphertext(None))), "absent"),
        (_sealed(_edit(HONEST, _ciphertext(os.urandom(15)))), "whole AES blocks"),
    ],
    ids=[
        "plain-form",
        "trailing-byte",
        "truncated",
        "wrong-recipient",
        "missing-recipient",
        "extra-recipient",
        "recipient-twice",
        "listed-but-not-pinned",
        "listed-twice",
        "triple-des",
        "rc2",
        "short-iv",
        "oaep-key-transport",
        "no-ciphertext",
        "partial-block",
    ],
)
def test_a_sealed_form_that_is_not_an_envelope_for_exactly_its_listed_recipients_is_refused(
    sealed: SealedForm, fragment: str
) -> None:
    with pytest.raises(Rejection) as caught:
        check_envelope(sealed, PINNED)
    assert caught.value.reason is Reason.SEALED_FORM_INVALID
    assert fragment in caught.value.text


def test_a_listed_certificate_without_an_rsa_key_is_refused() -> None:
    ec_cert = _certificate("EC", 10, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(Rejection, match="not a health encryption certificate"):
        check_envelope(_sealed(HONEST, NL, ec_cert), PINNED | {fingerprint(ec_cert): ec_cert})


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_damaged_envelope_is_refused_or_passes_but_never_raises_anything_else(
    data: st.DataObject,
) -> None:
    der = bytearray(HONEST)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(der) - 1))
        der[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(der)))
    try:
        check_envelope(_sealed(bytes(der[:cut])), PINNED)
    except Rejection as exc:
        assert exc.reason is Reason.SEALED_FORM_INVALID
