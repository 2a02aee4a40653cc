"""Art. 39 health certificates travel sealed: the form is encrypted (CMS EnvelopedData,
RFC 5652, via `cryptography`) for the health practitioners of the receiving authority, whose
encryption certificates the signed directory publishes. Gateways sign, store, acknowledge
and register the sealed form like any other, but only a practitioner's private key, which no
gateway holds, opens it (Art. 39(3)-(4): health data only for health practitioners).

The legal basis of the transfer (Art. 39(2): explicit consent, or the ground of
Art. 39(2) second subparagraph) is a signed field in clear so that a gateway can refuse a
certificate sent without one; the details of the consent stay inside the ciphertext.

A receiving gateway cannot decrypt, and `cryptography` cannot inspect an EnvelopedData without
a recipient's key, so `check_envelope` reads its structure with `asn1crypto`: enough to
refuse, before anything is stored, a form sent readable under the sealed tag, bytes nobody can
open, or a form sealed for others than the practitioners it names.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from lxml import etree

from gateway.core.directory import Authority
from gateway.core.fingerprints import fingerprint
from gateway.core.policy import Reason, Rejection

HEALTH_NS = "urn:eu:dublin:forms:health-certificate:1"
SEALED_TAG = f"{{{HEALTH_NS}}}SealedHealthCertificate"
PLAIN_TAG = f"{{{HEALTH_NS}}}HealthCertificate"
CONSENT_BASES = {"explicitConsent": "explicit-consent", "legalGround": "legal-ground"}
OPTIONS = [pkcs7.PKCS7Options.Binary]
KEY_TRANSPORT = frozenset({"rsaes_pkcs1v15"})
"""Key transport of a sealed form: RSA (RFC 5652 ktri), as `seal` writes it and as the
practitioners' `gateway health open` (cryptography's pkcs7_decrypt) opens it."""
CONTENT_ENCRYPTION = frozenset({"aes128_cbc", "aes256_cbc"})
"""Content encryption of a sealed form: the AES-CBC sizes cryptography both writes and opens;
anything older (3DES, RC2) or that no practitioner's tool opens is refused."""
_AES_BLOCK = 16


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


def pinned_certificates(*authorities: Authority) -> dict[str, x509.Certificate]:
    """The health encryption certificates the directory publishes for `authorities`, by
    fingerprint."""
    certs = (
        x509.load_pem_x509_certificate(pem.encode("ascii"))
        for auth in authorities
        for pem in auth.health_encryption_certificates
    )
    return {fingerprint(cert): cert for cert in certs}


@dataclass(frozen=True)
class _Recipient:
    issuer: str | None
    """asn1crypto's comparable form of the issuer name; None when the recipient info does not
    name its certificate by issuer and serial number (RFC 5652 6.2.1)."""
    serial: int | None
    key_transport: str
    encrypted_key_bytes: int


@dataclass(frozen=True)
class _Envelope:
    recipients: tuple[_Recipient, ...]
    content_type: str
    content_encryption: str
    iv_bytes: int
    ciphertext_bytes: int


def _invalid(text: str) -> Rejection:
    return Rejection(Reason.SEALED_FORM_INVALID, f"sealed health certificate: {text}")


def _read_envelope(der: bytes) -> _Envelope:
    """The parts of a DER CMS EnvelopedData that can be checked without a key. asn1crypto
    parses lazily: `native` makes it read every byte, so a malformed part anywhere fails here."""
    info = cms.ContentInfo.load(der, strict=True)
    if info["content_type"].native != "enveloped_data":
        raise _invalid("envelopedData is not a CMS EnvelopedData (RFC 5652)")
    info.native  # noqa: B018 - parse everything, now, inside the caller's error handling
    enveloped = info["content"]
    recipients = []
    for choice in enveloped["recipient_infos"]:
        if choice.name != "ktri":
            recipients.append(_Recipient(None, None, choice.name, 0))
            continue
        ktri = choice.chosen
        rid = ktri["rid"]
        by_issuer = rid.name == "issuer_and_serial_number"
        recipients.append(
            _Recipient(
                rid.chosen["issuer"].hashable if by_issuer else None,
                rid.chosen["serial_number"].native if by_issuer else None,
                str(ktri["key_encryption_algorithm"]["algorithm"].native),
                len(ktri["encrypted_key"].native),
            )
        )
    content = enveloped["encrypted_content_info"]
    algorithm = content["content_encryption_algorithm"]
    name = str(algorithm["algorithm"].native)
    iv = algorithm["parameters"].native if name in CONTENT_ENCRYPTION else b""
    ciphertext = content["encrypted_content"].native
    return _Envelope(
        recipients=tuple(recipients),
        content_type=str(content["content_type"].native),
        content_encryption=name,
        iv_bytes=len(iv) if isinstance(iv, bytes) else 0,
        ciphertext_bytes=len(ciphertext) if isinstance(ciphertext, bytes) else 0,
    )


def _recipient_key(cert: x509.Certificate) -> tuple[str, int]:
    """(issuer, serial number) of `cert` in the form a recipient info names it."""
    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    return parsed.issuer.hashable, parsed.serial_number


def _listed_keys(
    sealed: SealedForm, pinned: Mapping[str, x509.Certificate]
) -> dict[tuple[str, int], int]:
    """(issuer, serial) -> RSA key size in bytes, of each listed recipient's pinned
    certificate; each listed once, each a pinned health encryption certificate."""
    if len(set(sealed.recipients)) != len(sealed.recipients):
        raise _invalid("a recipient is listed twice")
    wanted: dict[tuple[str, int], int] = {}
    for listed in sealed.recipients:
        cert = pinned.get(listed)
        key = cert.public_key() if cert is not None else None
        if cert is None or not isinstance(key, rsa.RSAPublicKey):
            raise _invalid(
                "a listed recipient is not a health encryption certificate the directory "
                "publishes for the sender's or the receiver's health practitioners"
            )
        wanted[_recipient_key(cert)] = (key.key_size + 7) // 8
    if len(wanted) != len(sealed.recipients):
        raise _invalid("two listed recipients have the same issuer and serial number")
    return wanted


def _check_recipients(envelope: _Envelope, wanted: dict[tuple[str, int], int]) -> None:
    """Exactly one RSA key transport recipient info per listed recipient, each naming its
    certificate by issuer and serial, with an encrypted key of its key's size."""
    seen: set[tuple[str, int]] = set()
    for r in envelope.recipients:
        if r.key_transport not in KEY_TRANSPORT:
            raise _invalid("a recipient info does not use RSA key transport (PKCS #1 v1.5)")
        if r.issuer is None or r.serial is None:
            raise _invalid("a recipient info does not name its certificate by issuer and serial")
        key_id = (r.issuer, r.serial)
        if key_id not in wanted:
            raise _invalid("a recipient info is for a certificate that is not listed")
        if key_id in seen:
            raise _invalid("two recipient infos are for the same certificate")
        if r.encrypted_key_bytes != wanted[key_id]:
            raise _invalid("an encrypted key does not fit its recipient's RSA key")
        seen.add(key_id)
    if len(seen) != len(wanted):
        raise _invalid("a listed recipient has no recipient info")


def check_envelope(sealed: SealedForm, pinned: Mapping[str, x509.Certificate]) -> None:
    """Art. 39(3)-(4): refuse (SEALED_FORM_INVALID) a sealed form whose envelopedData is not a
    DER CMS EnvelopedData (RFC 5652) holding exactly one RSA key transport recipient info per
    listed recipient, named by the issuer and serial number of the certificate `pinned` maps
    the listed fingerprint to, with an allowed content encryption and ciphertext present.
    Texts name the rule broken, never a value."""
    wanted = _listed_keys(sealed, pinned)
    try:
        envelope = _read_envelope(sealed.enveloped_data)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise _invalid("envelopedData is not a DER-encoded CMS EnvelopedData (RFC 5652)") from exc
    _check_recipients(envelope, wanted)
    if envelope.content_type != "data":
        raise _invalid("the encrypted content is not of type id-data")
    if envelope.content_encryption not in CONTENT_ENCRYPTION:
        raise _invalid("the content encryption is not AES-128-CBC or AES-256-CBC")
    if envelope.iv_bytes != _AES_BLOCK:
        raise _invalid("the content encryption's initialisation vector is not 16 bytes")
    if envelope.ciphertext_bytes == 0 or envelope.ciphertext_bytes % _AES_BLOCK:
        raise _invalid("the encrypted content is absent or not whole AES blocks")
