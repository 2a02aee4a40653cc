"""Enveloped XML-DSig over the whole document (Reference URI ""), exclusive C14N 1.0,
ECDSA P-256 with SHA-256, via signxml.

Verification makes "use the unsigned tree" impossible: it returns only the tree signxml
rebuilt from the signed bytes, together with the signer certificate it resolved from the
directory's pins. Anything outside the allow-list is refused before any cryptography runs."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import InvalidCertificate, InvalidInput, InvalidSignature
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from gateway.core.policy import Reason, Rejection
from gateway.pki.certs import fingerprint

DS = "http://www.w3.org/2000/09/xmldsig#"
_EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
_ALLOWED_C14N = frozenset({_EXC_C14N.value})
_ALLOWED_TRANSFORMS = (
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    _EXC_C14N.value,
)
_ALLOWED_SIGNATURE = SignatureMethod.ECDSA_SHA256
_ALLOWED_DIGEST = DigestAlgorithm.SHA256
_CONFIG = SignatureConfiguration(
    require_x509=True,
    location="./",
    expect_references=1,
    signature_methods=frozenset({_ALLOWED_SIGNATURE}),
    digest_algorithms=frozenset({_ALLOWED_DIGEST}),
)


@dataclass(frozen=True)
class Signer:
    """Our signing identity; built once, reused for every document."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    def sign(self, root: etree._Element) -> bytes:
        """Sign `root` (enveloped, URI="") and return the serialized document, which is exactly
        what travels and what is stored."""
        if root.get("Id") is not None or root.get("ID") is not None:
            raise ValueError("root must not carry an Id attribute (signxml would sign #id)")
        signer = XMLSigner(
            method=SignatureConstructionMethod.enveloped,
            signature_algorithm=_ALLOWED_SIGNATURE,
            digest_algorithm=_ALLOWED_DIGEST,
            c14n_algorithm=_EXC_C14N,
        )
        signed = signer.sign(root, key=self.key, cert=[self.certificate])
        return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


@dataclass(frozen=True)
class VerifiedDocument:
    """The signed content and who signed it. There is no way to reach the received tree."""

    root: etree._Element
    signer: x509.Certificate
    signer_authority: str


def verify(
    root: etree._Element,
    resolve_signer: Callable[[str], str | None],
    check_certificate: Callable[[x509.Certificate], None] | None = None,
) -> VerifiedDocument:
    """Verify the single enveloped signature of `root`. `resolve_signer` maps the fingerprint
    of the certificate in KeyInfo to the authority that pinned it (else None); the signature
    is then checked with that certificate alone, never with a chain found in the document.
    `check_certificate` may refuse the pinned certificate itself (revoked, expired, wrong
    purpose) by raising a `Rejection`, before any signature arithmetic runs."""
    signatures = list(root.iter(f"{{{DS}}}Signature"))
    if not signatures:
        raise Rejection(Reason.SIGNATURE_MISSING, "the document carries no XML signature")
    if len(signatures) > 1:
        raise Rejection(Reason.SIGNATURE_MULTIPLE, "the document carries more than one signature")
    sig = signatures[0]
    if sig.getparent() is not root:
        raise Rejection(
            Reason.SIGNATURE_LOCATION, "the signature must be a direct child of the root element"
        )
    _check_signed_info(sig)
    cert = _key_info_certificate(sig)
    fp = fingerprint(cert)
    authority = resolve_signer(fp)
    if authority is None:
        raise Rejection(
            Reason.SIGNER_UNKNOWN,
            f"signing certificate {fp[:16]}... is not pinned in the directory",
        )
    if check_certificate is not None:
        check_certificate(cert)
    try:
        result = XMLVerifier().verify(root, x509_cert=cert, expect_config=_CONFIG)
    except InvalidCertificate as exc:
        raise Rejection(Reason.SIGNATURE_INVALID, f"signing certificate refused: {exc}") from exc
    except (InvalidSignature, InvalidInput) as exc:
        raise Rejection(Reason.SIGNATURE_INVALID, f"signature does not verify: {exc}") from exc
    except (etree.DocumentInvalid, ValueError, TypeError) as exc:
        # signxml checks the Signature element against the XML-DSig schema and decodes its
        # values; malformed ones (found by fuzzing) must be a refusal, not a server error.
        raise Rejection(
            Reason.SIGNATURE_INVALID, "the Signature element is malformed (XML-DSig schema)"
        ) from exc
    if isinstance(result, list) or result.signed_xml is None:
        raise Rejection(Reason.SIGNATURE_REFERENCE, "signature must have exactly one reference")
    return VerifiedDocument(result.signed_xml, cert, authority)


def _one(parent: etree._Element, path: str, what: str, reason: Reason) -> etree._Element:
    found = parent.findall(path, {"ds": DS})
    if len(found) != 1:
        raise Rejection(reason, f"signature must contain exactly one {what}")
    return found[0]


def _check_signed_info(sig: etree._Element) -> None:
    si = _one(sig, "ds:SignedInfo", "SignedInfo", Reason.SIGNATURE_REFERENCE)
    c14n = _one(si, "ds:CanonicalizationMethod", "C14N method", Reason.SIGNATURE_ALGORITHM)
    if c14n.get("Algorithm") not in _ALLOWED_C14N or len(c14n):
        raise Rejection(Reason.SIGNATURE_ALGORITHM, "canonicalization must be exclusive C14N 1.0")
    method = _one(si, "ds:SignatureMethod", "SignatureMethod", Reason.SIGNATURE_ALGORITHM)
    if method.get("Algorithm") != _ALLOWED_SIGNATURE.value:
        raise Rejection(Reason.SIGNATURE_ALGORITHM, "signature method must be ECDSA-SHA256")
    ref = _one(si, "ds:Reference", "Reference", Reason.SIGNATURE_REFERENCE)
    if ref.get("URI") != "":
        raise Rejection(
            Reason.SIGNATURE_REFERENCE, 'the reference must cover the whole document (URI="")'
        )
    transforms = [t.get("Algorithm") for t in ref.findall("ds:Transforms/ds:Transform", {"ds": DS})]
    if tuple(transforms) != _ALLOWED_TRANSFORMS:
        raise Rejection(
            Reason.SIGNATURE_ALGORITHM,
            "transforms must be exactly enveloped-signature then exclusive C14N",
        )
    digest = _one(ref, "ds:DigestMethod", "DigestMethod", Reason.SIGNATURE_ALGORITHM)
    if digest.get("Algorithm") != _ALLOWED_DIGEST.value:
        raise Rejection(Reason.SIGNATURE_ALGORITHM, "digest method must be SHA-256")


def _key_info_certificate(sig: etree._Element) -> x509.Certificate:
    certs = sig.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", {"ds": DS})
    if len(certs) != 1 or not certs[0].text:
        raise Rejection(
            Reason.SIGNER_UNKNOWN, "KeyInfo must carry exactly one X509Certificate (the signer's)"
        )
    try:
        return x509.load_der_x509_certificate(base64.b64decode(certs[0].text, validate=False))
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion: found by fuzzing
        raise Rejection(Reason.SIGNER_UNKNOWN, "KeyInfo certificate is not a valid X.509") from exc
