"""Art. 39 health certificates travel sealed: the form is encrypted (CMS EnvelopedData,
RFC 5652, via `cryptography`) for the health practitioners of the receiving authority, whose
encryption certificates the signed directory publishes. Gateways sign, store, acknowledge
and register the sealed form like any other, but only a practitioner's private key, which no
gateway holds, opens it (Art. 39(3)-(4): health data only for health practitioners).

The legal basis of the transfer (Art. 39(2): explicit consent, or the ground of
Art. 39(2) second subparagraph) is a signed field in clear so that a gateway can refuse a
certificate sent without one; the details of the consent stay inside the ciphertext.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from lxml import etree

from gateway.core.policy import Reason, Rejection
from gateway.pki.certs import fingerprint

HEALTH_NS = "urn:eu:dublin:forms:health-certificate:1"
SEALED_TAG = f"{{{HEALTH_NS}}}SealedHealthCertificate"
PLAIN_TAG = f"{{{HEALTH_NS}}}HealthCertificate"
CONSENT_BASES = {"explicitConsent": "explicit-consent", "legalGround": "legal-ground"}
OPTIONS = [pkcs7.PKCS7Options.Binary]


@dataclass(frozen=True)
class SealedForm:
    consent: str
    recipients: tuple[str, ...]
    """Fingerprints of the encryption certificates it was sealed for."""
    enveloped_data: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "sealed": {
                "consent": self.consent,
                "recipients": list(self.recipients),
                "envelopedData": base64.b64encode(self.enveloped_data).decode("ascii"),
            }
        }


def consent_basis(form: Mapping[str, Any]) -> str:
    """The Art. 39(2) basis a health certificate's JSON states; refuse one without."""
    consent = form.get("consent")
    if isinstance(consent, Mapping):
        for key, basis in CONSENT_BASES.items():
            if consent.get(key):
                return basis
    raise Rejection(
        Reason.CONSENT_MISSING,
        "a health certificate is sent only with the person's explicit consent or on the "
        "legal ground of Art. 39(2); state one in 'consent'",
    )


def is_sealed(element: etree._Element) -> bool:
    return element.tag == SEALED_TAG


def seal(
    form: etree._Element, consent: str, recipients: Sequence[x509.Certificate]
) -> etree._Element:
    """Encrypt a (schema-valid) HealthCertificate element for `recipients`."""
    if consent not in CONSENT_BASES.values():
        raise ValueError(f"unknown consent basis {consent!r}")
    if not recipients:
        raise ValueError("a sealed form needs at least one recipient")
    data = etree.tostring(form, encoding="UTF-8", xml_declaration=True)
    builder = (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(data)
        .set_content_encryption_algorithm(algorithms.AES256)
    )
    for cert in recipients:
        if not isinstance(cert.public_key(), rsa.RSAPublicKey):
            raise ValueError("health encryption certificates must hold RSA keys")
        builder = builder.add_recipient(cert)
    der = builder.encrypt(serialization.Encoding.DER, OPTIONS)
    root = etree.Element(SEALED_TAG, nsmap={"f": HEALTH_NS})
    etree.SubElement(root, f"{{{HEALTH_NS}}}consent").text = consent
    for cert in recipients:
        etree.SubElement(root, f"{{{HEALTH_NS}}}recipient").text = fingerprint(cert)
    etree.SubElement(root, f"{{{HEALTH_NS}}}envelopedData").text = base64.b64encode(der).decode()
    return root


def read_sealed(element: etree._Element) -> SealedForm:
    """The parts of a (schema-valid) SealedHealthCertificate element."""
    ns = f"{{{HEALTH_NS}}}"
    try:
        der = base64.b64decode(element.findtext(f"{ns}envelopedData") or "", validate=False)
    except ValueError as exc:
        raise Rejection(Reason.SCHEMA_INVALID, "envelopedData is not base64") from exc
    return SealedForm(
        consent=element.findtext(f"{ns}consent") or "",
        recipients=tuple(r.text or "" for r in element.iterfind(f"{ns}recipient")),
        enveloped_data=der,
    )
