"""Enveloped XML-DSig over the whole document (Reference URI ""), exclusive C14N 1.0,
ECDSA P-256 with SHA-256, via python-xmlsec (libxmlsec1, on lxml's own libxml2).

Verification makes "use the unsigned tree" impossible: it returns only a tree parsed from the
exact bytes the signature's digest covers, together with the signer certificate it resolved
from the directory's pins. Anything outside the allow-list is refused before any
cryptography runs, and libxmlsec1 is told to accept nothing else either.

Signing and verifying keys are built once and reused (building one costs milliseconds);
per 4 KB form this signs in about a third and verifies in about 40% of signxml's time."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import xmlsec
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree
from xmlsec import constants as C

from gateway.core.fingerprints import fingerprint
from gateway.core.policy import Reason, Rejection
from gateway.xml.parser import parse_trusted

DS = "http://www.w3.org/2000/09/xmldsig#"
_EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
_ALLOWED_C14N = frozenset({_EXC_C14N})
_ALLOWED_TRANSFORMS = (
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    _EXC_C14N,
)
_ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
_KEY_CACHE = 256


@dataclass(frozen=True)
class Signer:
    """Our signing identity; built once, reused for every document."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    _xmlsec_key: list[xmlsec.Key] = field(default_factory=list, repr=False, compare=False)
    _certificate_text: list[str] = field(default_factory=list, repr=False, compare=False)

    def _key(self) -> xmlsec.Key:
        """The private key alone: xmlsec copies the key into every signature context, and
        with the certificate loaded in it that copy was a fifth of a signature's time (issue
        20). The certificate goes into KeyInfo as text instead (_certificate)."""
        if not self._xmlsec_key:
            pem = self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            self._xmlsec_key.append(xmlsec.Key.from_memory(pem, C.KeyDataFormatPem))
        return self._xmlsec_key[0]

    def _certificate(self) -> str:
        """The certificate's base64 as xmlsec writes it in X509Certificate (lines of 64)."""
        if not self._certificate_text:
            b64 = base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER))
            text = b64.decode()
            lines = [text[i : i + 64] for i in range(0, len(text), 64)]
            self._certificate_text.append("\n".join(lines) + "\n")
        return self._certificate_text[0]

    def sign(self, root: etree._Element) -> bytes:
        """Sign `root` (enveloped, URI="") and return the serialized document, which is exactly
        what travels and what is stored."""
        if root.get("Id") is not None or root.get("ID") is not None:
            raise ValueError('root must not carry an Id attribute (the reference is URI="")')
        sig = xmlsec.template.create(root, C.TransformExclC14N, C.TransformEcdsaSha256, ns="ds")
        root.append(sig)
        ref = xmlsec.template.add_reference(sig, C.TransformSha256, uri="")
        xmlsec.template.add_transform(ref, C.TransformEnveloped)
        xmlsec.template.add_transform(ref, C.TransformExclC14N)
        data = xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(sig))
        data.text = "\n"
        certificate = etree.SubElement(data, f"{{{DS}}}X509Certificate")
        certificate.text = self._certificate()
        certificate.tail = "\n"
        ctx = xmlsec.SignatureContext()
        ctx.key = self._key()
        ctx.sign(sig)
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@dataclass(frozen=True)
class VerifiedDocument:
    """The signed content and who signed it. There is no way to reach the received tree."""

    root: etree._Element
    signer: x509.Certificate
    signer_authority: str


class _Keys:
    """Verification keys of pinned signing certificates, by the certificate's fingerprint
    (SHA-256 of its DER; bounded)."""

    def __init__(self) -> None:
        self._keys: OrderedDict[str, xmlsec.Key] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, cert: x509.Certificate, digest: str) -> xmlsec.Key:
        with self._lock:
            key = self._keys.get(digest)
            if key is not None:
                self._keys.move_to_end(digest)
                return key
        # The public key alone: a key carrying its certificate is copied into every
        # verification context at several times the cost (issue 20); the certificate itself
        # was checked by the caller and pinned by the directory.
        public = cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key = xmlsec.Key.from_memory(public, C.KeyDataFormatPem)
        with self._lock:
            self._keys[digest] = key
            while len(self._keys) > _KEY_CACHE:
                self._keys.popitem(last=False)
        return key


_KEYS = _Keys()


@dataclass(frozen=True)
class _Signer:
    """A KeyInfo certificate as verification needs it, read once per distinct text."""

    certificate: x509.Certificate
    fingerprint: str
    ecdsa: bool


class _Certificates:
    """KeyInfo certificates by their base64 text (bounded): every transmission of a peer
    carries the same one, and reading and fingerprinting it was a good part of a
    verification's own time (issue 20). The text alone is the key: nothing else is reused."""

    def __init__(self) -> None:
        self._found: OrderedDict[str, _Signer] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> _Signer:
        with self._lock:
            found = self._found.get(text)
            if found is not None:
                self._found.move_to_end(text)
                return found
        try:
            cert = x509.load_der_x509_certificate(base64.b64decode(text, validate=False))
        except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion: found by fuzzing
            raise Rejection(
                Reason.SIGNER_UNKNOWN, "KeyInfo certificate is not a valid X.509"
            ) from exc
        try:
            ecdsa = isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        except (ValueError, UnsupportedAlgorithm):  # a key no one reads: not ECDSA, refused
            ecdsa = False
        found = _Signer(cert, fingerprint(cert), ecdsa)
        with self._lock:
            self._found[text] = found
            while len(self._found) > _KEY_CACHE:
                self._found.popitem(last=False)
        return found


_CERTIFICATES = _Certificates()


@dataclass(frozen=True)
class SignedContent:
    """The bytes a verified signature covers (exclusive canonical form) and who signed them,
    apart from the received tree, so that a caller can drop that tree (megabytes for a large
    transmission) before the signed bytes are parsed."""

    content: bytes
    signer: x509.Certificate
    signer_authority: str

    def read(self) -> VerifiedDocument:
        return VerifiedDocument(parse_trusted(self.content), self.signer, self.signer_authority)


def verify(
    root: etree._Element,
    resolve_signer: Callable[[str], str | None],
    check_certificate: Callable[[x509.Certificate], None] | None = None,
) -> VerifiedDocument:
    """Verify the single enveloped signature of `root` (`signed_content`) and read the
    signed bytes."""
    return signed_content(root, resolve_signer, check_certificate).read()


def signed_content(
    root: etree._Element,
    resolve_signer: Callable[[str], str | None],
    check_certificate: Callable[[x509.Certificate], None] | None = None,
) -> SignedContent:
    """Verify the single enveloped signature of `root`. `resolve_signer` maps the fingerprint
    of the certificate in KeyInfo to the authority that pinned it (else None); the signature
    is then checked with that certificate's key alone, never with a chain found in the
    document. `check_certificate` may refuse the pinned certificate itself (revoked, expired,
    wrong purpose) by raising a `Rejection`, before any signature arithmetic runs."""
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
    digest_value = _check_signed_info(sig)
    signer = _key_info_signer(sig)
    cert, fp = signer.certificate, signer.fingerprint
    authority = resolve_signer(fp)
    if authority is None:
        raise Rejection(
            Reason.SIGNER_UNKNOWN,
            f"signing certificate {fp[:16]}... is not pinned in the directory",
        )
    if check_certificate is not None:
        check_certificate(cert)
    if not signer.ecdsa:
        raise Rejection(Reason.SIGNATURE_ALGORITHM, "the signing key must be an ECDSA key")
    ctx = xmlsec.SignatureContext()
    # Nothing but the allow-listed algorithms, whatever the document asks for.
    ctx.enable_signature_transform(C.TransformExclC14N)
    ctx.enable_signature_transform(C.TransformEcdsaSha256)
    ctx.enable_reference_transform(C.TransformEnveloped)
    ctx.enable_reference_transform(C.TransformExclC14N)
    ctx.enable_reference_transform(C.TransformSha256)
    try:
        ctx.key = _KEYS.get(cert, fp)
        ctx.verify(sig)
    except xmlsec.VerificationError as exc:
        raise Rejection(Reason.SIGNATURE_INVALID, "signature does not verify") from exc
    except (xmlsec.Error, ValueError, TypeError) as exc:
        raise Rejection(
            Reason.SIGNATURE_INVALID, "the Signature element is malformed (XML-DSig)"
        ) from exc
    signed = _signed_bytes(root, sig)
    # The SignedInfo is authentic now, and with it the digest: the bytes read below are the
    # bytes the signer signed, or nothing is read at all.
    if base64.b64encode(hashlib.sha256(signed).digest()).decode() != digest_value:
        raise Rejection(Reason.SIGNATURE_INVALID, "the signed content could not be isolated")
    return SignedContent(signed, cert, authority)


def _signed_bytes(root: etree._Element, sig: etree._Element) -> bytes:
    """What the reference covers: the document without its Signature element (the
    enveloped-signature transform: the element goes, the text around it stays), in
    exclusive canonical form. The element is taken out of `root` for the canonicalisation
    and put back as it was: no copy of a document that may be megabytes long."""
    index = root.index(sig)
    tail = sig.tail
    previous = sig.getprevious()
    saved = (root.text, previous.tail if previous is not None else None)
    root.remove(sig)  # lxml moves the tail with the element; the transform keeps it
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            root.text = (root.text or "") + tail
    try:
        return bytes(etree.tostring(root, method="c14n", exclusive=True, with_comments=False))
    finally:
        root.text = saved[0]
        if previous is not None:
            previous.tail = saved[1]
        root.insert(index, sig)
        sig.tail = tail


def _children(parent: etree._Element, name: str) -> list[etree._Element]:
    """The ds:`name` children of `parent` (a direct walk: an ElementPath search per part of
    SignedInfo was most of this check's time, issue 20)."""
    return list(parent.iterchildren(f"{{{DS}}}{name}"))


def _one(parent: etree._Element, name: str, what: str, reason: Reason) -> etree._Element:
    found = _children(parent, name)
    if len(found) != 1:
        raise Rejection(reason, f"signature must contain exactly one {what}")
    return found[0]


def _check_signed_info(sig: etree._Element) -> str:
    """Refuse anything but our one construction; return the reference's DigestValue."""
    si = _one(sig, "SignedInfo", "SignedInfo", Reason.SIGNATURE_REFERENCE)
    c14n = _one(si, "CanonicalizationMethod", "C14N method", Reason.SIGNATURE_ALGORITHM)
    if c14n.get("Algorithm") not in _ALLOWED_C14N or len(c14n):
        raise Rejection(Reason.SIGNATURE_ALGORITHM, "canonicalization must be exclusive C14N 1.0")
    method = _one(si, "SignatureMethod", "SignatureMethod", Reason.SIGNATURE_ALGORITHM)
    if method.get("Algorithm") != _ECDSA_SHA256 or len(method):
        raise Rejection(Reason.SIGNATURE_ALGORITHM, "signature method must be ECDSA-SHA256")
    ref = _one(si, "Reference", "Reference", Reason.SIGNATURE_REFERENCE)
    if ref.get("URI") != "":
        raise Rejection(
            Reason.SIGNATURE_REFERENCE, 'the reference must cover the whole document (URI="")'
        )
    found = [t for ts in _children(ref, "Transforms") for t in _children(ts, "Transform")]
    transforms = [t.get("Algorithm") for t in found]
    if tuple(transforms) != _ALLOWED_TRANSFORMS or any(len(t) for t in found):
        raise Rejection(
            Reason.SIGNATURE_ALGORITHM,
            "transforms must be exactly enveloped-signature then exclusive C14N",
        )
    digest = _one(ref, "DigestMethod", "DigestMethod", Reason.SIGNATURE_ALGORITHM)
    if digest.get("Algorithm") != _SHA256:
        raise Rejection(Reason.SIGNATURE_ALGORITHM, "digest method must be SHA-256")
    value = _one(ref, "DigestValue", "DigestValue", Reason.SIGNATURE_REFERENCE)
    _one(sig, "SignatureValue", "SignatureValue", Reason.SIGNATURE_REFERENCE)
    return "".join((value.text or "").split())


def _key_info_signer(sig: etree._Element) -> _Signer:
    certs = [
        c
        for info in _children(sig, "KeyInfo")
        for data in _children(info, "X509Data")
        for c in _children(data, "X509Certificate")
    ]
    if len(certs) != 1 or not certs[0].text:
        raise Rejection(
            Reason.SIGNER_UNKNOWN, "KeyInfo must carry exactly one X509Certificate (the signer's)"
        )
    return _CERTIFICATES.get(certs[0].text)
