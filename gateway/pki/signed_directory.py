"""The published directory (Art. 41(1)-(2)): the operator's JSON list of notified authorities,
carried inside an XML document signed (XML-DSig, enveloped) by the operator's directory
publisher certificate.

    <d:Directory xmlns:d="urn:eu:dublin:directory:1" published="2026-11-24T02:00:00Z">
      <d:Content mediaType="application/json">{ "version": 7, "authorities": [...] }</d:Content>
      <ds:Signature>...</ds:Signature>
    </d:Directory>

A gateway reads only what the signature covers (the re-parsed signed bytes), only if
the publisher certificate was issued by the network CA for directory publishing, is valid
and is not revoked. Whether a version is newer than the one a gateway holds is the caller's
decision (`gateway.service.trust`), since only it knows what it accepted before.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from lxml import etree

from gateway.core.directory import Directory, DirectoryError
from gateway.core.pins import PinSnapshot
from gateway.core.policy import Rejection
from gateway.pki.anchors import Revocations, TrustAnchors
from gateway.pki.certs import CertificateError
from gateway.pki.directory_file import atomic_write, parse_directory_json
from gateway.pki.purposes import DIRECTORY_SIGNING
from gateway.xml.parser import parse_untrusted
from gateway.xml.signature import Signer, verify

NS = "urn:eu:dublin:directory:1"
MAX_DIRECTORY_BYTES = 8 * 1024 * 1024
_PUBLISHER = "directory publisher"


@dataclass(frozen=True)
class SignedDirectory:
    directory: Directory
    published: datetime
    publisher: x509.Certificate
    sha256: str
    """Of the file's bytes, as recorded in the register."""

    @property
    def version(self) -> int:
        return self.directory.version


def sign_directory(directory: Directory, signer: Signer, published: datetime) -> bytes:
    """The publishable bytes of `directory`, signed by the operator's publisher key."""
    if published.tzinfo is None:
        raise ValueError("published must be timezone-aware")
    root = etree.Element(f"{{{NS}}}Directory", nsmap={"d": NS})
    root.set("published", published.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    content = etree.SubElement(root, f"{{{NS}}}Content")
    content.set("mediaType", "application/json")
    content.text = json.dumps(directory.to_dict(), indent=2, ensure_ascii=False, sort_keys=True)
    return signer.sign(root)


def publish_directory(
    path: Path, directory: Directory, signer: Signer, published: datetime
) -> bytes:
    """Sign and write atomically: a gateway watching `path` sees the old file or the new one."""
    data = sign_directory(directory, signer, published)
    atomic_write(path, data, mode=0o644)
    return data


def read_signed_directory(
    data: bytes,
    anchors: TrustAnchors,
    at: datetime,
    revocations: Revocations | None = None,
    *,
    where: str = "directory",
) -> SignedDirectory:
    """Verify and read a published directory; every failure is a `DirectoryError` saying what
    is wrong with which file."""
    try:
        root = parse_untrusted(data, max_bytes=MAX_DIRECTORY_BYTES, max_depth=8)
    except Rejection as exc:
        raise DirectoryError(f"{where}: not a readable signed directory: {exc}") from exc
    if root.tag != f"{{{NS}}}Directory":
        raise DirectoryError(
            f"{where}: not a signed directory (root element {root.tag!r}); an unsigned "
            "directory.json must be published with `gateway pki directory publish`"
        )

    def publisher_only(cert: x509.Certificate) -> None:
        try:
            anchors.check(cert, at, purpose=DIRECTORY_SIGNING, what="directory publisher")
            if revocations is not None:
                revocations.check(cert, "directory publisher")
        except CertificateError as exc:
            raise DirectoryError(f"{where}: {exc}") from exc

    try:
        verified = verify(root, lambda _fp: _PUBLISHER, publisher_only)
    except Rejection as exc:
        raise DirectoryError(f"{where}: the signature does not verify: {exc}") from exc
    signed = verified.root
    contents = signed.findall(f"{{{NS}}}Content")
    if len(contents) != 1 or contents[0].get("mediaType") != "application/json":
        raise DirectoryError(f"{where}: the signed document must hold one JSON Content element")
    published_text = signed.get("published") or ""
    try:
        published = datetime.strptime(published_text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise DirectoryError(f"{where}: 'published' is not a UTC time") from exc
    directory = parse_directory_json((contents[0].text or "").encode("utf-8"), where)
    return SignedDirectory(
        directory=directory,
        published=published,
        publisher=verified.signer,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def load_signed_directory(
    path: Path, anchors: TrustAnchors, at: datetime, revocations: Revocations | None = None
) -> SignedDirectory:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DirectoryError(f"cannot read directory {path}: {exc.strerror or exc}") from exc
    return read_signed_directory(data, anchors, at, revocations, where=f"directory {path}")


def directory_pins(path: Path, anchors: TrustAnchors) -> PinSnapshot:
    """The signing pins of a published directory, old or current, for checking what was signed
    while it was in force: its publisher certificate must have been valid when it says it was
    published (the signature covers that time), not necessarily now."""
    try:
        data = path.read_bytes()
        claimed = parse_untrusted(data, max_bytes=MAX_DIRECTORY_BYTES, max_depth=8).get("published")
        at = datetime.strptime(claimed or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except OSError as exc:
        raise DirectoryError(f"cannot read directory {path}: {exc.strerror or exc}") from exc
    except (Rejection, ValueError) as exc:
        raise DirectoryError(f"directory {path}: not a readable signed directory") from exc
    signed = read_signed_directory(data, anchors, at, where=f"directory {path}")
    return PinSnapshot.of(signed.directory, signed.published)
