"""The health practitioner's side of Art. 39: opening a sealed health certificate with the
practitioner's own key (never a gateway's), and the command that does it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from gateway.core.forms import FORM_TYPES
from gateway.core.policy import Rejection
from gateway.pki.certs import CertificateError, fingerprint, load_certificate, load_private_key
from gateway.xml.envelope import read_form
from gateway.xml.forms import FormError, form_from_element, validate_form
from gateway.xml.parser import parse_trusted, parse_untrusted
from gateway.xml.sealed import PLAIN_TAG, SealedForm, consent_basis, is_sealed, read_sealed

MAX_SEALED_FORM_BYTES = 2 * 1024 * 1024


class SealError(ValueError):
    """A sealed form that cannot be opened with the key given (not a recipient, or damaged)."""


def open_sealed(
    sealed: SealedForm, certificate: x509.Certificate, key: rsa.RSAPrivateKey
) -> dict[str, Any]:
    """Decrypt with a health practitioner's key and return the form as case-system JSON.
    The plaintext is parsed as untrusted XML and checked against the form's schema: a sender
    could have sealed anything."""
    if fingerprint(certificate) not in sealed.recipients:
        raise SealError(
            "this health certificate was not sealed for the certificate "
            f"{fingerprint(certificate)[:16]}..."
        )
    if certificate.public_key() != key.public_key():
        raise SealError("the private key does not belong to the certificate")
    try:
        data = pkcs7.pkcs7_decrypt_der(sealed.enveloped_data, certificate, key, [])
    except ValueError as exc:
        raise SealError(f"cannot open the sealed health certificate: {exc}") from exc
    try:
        root = parse_untrusted(data, max_bytes=MAX_SEALED_FORM_BYTES)
        if root.tag != PLAIN_TAG:
            raise SealError("the sealed content is not a HealthCertificate")
        validate_form(FORM_TYPES["health-certificate"], root)
        _, form = form_from_element(root)
        if consent_basis(form) != sealed.consent:
            raise SealError("the consent inside the sealed form differs from the signed one")
    except (Rejection, FormError) as exc:
        raise SealError(f"the sealed content is not a valid health certificate: {exc}") from exc
    return form


def open_transmission(signed_xml: bytes, cert_path: Path, key_path: Path) -> dict[str, Any]:
    """Open the health certificate in a stored (already verified) transmission."""
    form_el = read_form(parse_trusted(signed_xml))
    if not is_sealed(form_el):
        raise SealError("this transmission does not carry a sealed health certificate")
    key = load_private_key(key_path)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CertificateError(f"{key_path}: a health practitioner's key is an RSA key")
    return open_sealed(read_sealed(form_el), load_certificate(cert_path), key)


def print_opened(form: dict[str, Any]) -> str:
    return json.dumps(form, indent=2, ensure_ascii=False)
