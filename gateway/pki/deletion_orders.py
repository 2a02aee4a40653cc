"""The network operator's deletion orders: items of the operational family that breach the
rules (Council Decision 2005/267/EC for ICONET early warnings) are to be deleted wherever they
are held. The operator runs no gateway, so an order travels like the directory: a file signed
(XML-DSig, enveloped) with the directory publisher's key, dropped where gateways pick it up or
uploaded by an administrator.

    <o:DeletionOrder xmlns:o="urn:eu:operational:deletion-order:1"
                     orderId="6f1c...-..." issued="2026-11-24T09:30:00Z">
      <o:Reason>The warning names a person.</o:Reason>
      <o:Item>2b7e...-...</o:Item>
      <ds:Signature>...</ds:Signature>
    </o:DeletionOrder>

An order counts only if the publisher of the directory in force signed it: a certificate the
network CA issued for directory signing, valid, not revoked, and the very one that signed the
directory (a second publisher certificate, however well issued, orders nothing). Only the
signed bytes are read, and they must be valid against gateway/schemas/deletion-order.xsd.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from cryptography import x509
from lxml import etree

from gateway.core.policy import Rejection
from gateway.pki.anchors import Revocations, TrustAnchors
from gateway.pki.certs import CertificateError, fingerprint
from gateway.pki.purposes import DIRECTORY_SIGNING
from gateway.xml.parser import parse_untrusted
from gateway.xml.schemas import compile_schema
from gateway.xml.signature import Signer, verify

__all__ = [
    "NS",
    "DeletionOrder",
    "DeletionOrderError",
    "read_deletion_order",
    "sign_deletion_order",
]

NS = "urn:eu:operational:deletion-order:1"
MAX_ORDER_BYTES = 256 * 1024
"""A thousand item ids, a reason and a signature fit in a tenth of this."""
MAX_DEPTH = 8
"""The signature's KeyInfo/X509Data/X509Certificate is the deepest: 5 below the root."""
FUTURE_SKEW = timedelta(minutes=5)
_TIME = "%Y-%m-%dT%H:%M:%SZ"
_PUBLISHER = "directory publisher"


class DeletionOrderError(ValueError):
    """An order refused, with what is wrong with it (said to the administrator and written in
    the register)."""


@dataclass(frozen=True)
class DeletionOrder:
    order_id: str
    issued: datetime
    reason: str
    items: tuple[str, ...]
    publisher: x509.Certificate
    sha256: str
    """Of the file's bytes, as recorded in the register."""


@cache
def _schema() -> etree.XMLSchema:
    return compile_schema("deletion-order.xsd")


def _validate(root: etree._Element, what: str) -> None:
    schema = _schema()
    if not schema.validate(root):
        # The place and the rule, never the value: the text goes into the register.
        log: Any = schema.error_log  # lxml-stubs leave _ErrorLog opaque
        first = log[0] if len(log) else None
        where = f" at {first.path}: {first.type_name}" if first else ""
        raise DeletionOrderError(f"{what} is not valid (deletion-order.xsd){where}")


def sign_deletion_order(
    items: Sequence[str],
    reason: str,
    signer: Signer,
    issued: datetime,
    order_id: str | None = None,
) -> bytes:
    """The publishable bytes of an order to delete `items`, signed by the publisher's key;
    refused (`DeletionOrderError`) before signing if the schema would refuse it."""
    if issued.tzinfo is None:
        raise ValueError("issued must be timezone-aware")
    root = etree.Element(f"{{{NS}}}DeletionOrder", nsmap={"o": NS})
    root.set("orderId", order_id or str(uuid.uuid4()))
    root.set("issued", issued.astimezone(UTC).strftime(_TIME))
    etree.SubElement(root, f"{{{NS}}}Reason").text = reason
    for item in items:
        etree.SubElement(root, f"{{{NS}}}Item").text = item
    _validate(root, "the deletion order")
    return signer.sign(root)


def read_deletion_order(
    data: bytes,
    anchors: TrustAnchors,
    at: datetime,
    revocations: Revocations | None,
    publisher_fingerprint: str,
    *,
    where: str = "deletion order",
) -> DeletionOrder:
    """Verify and read an order; every failure is a `DeletionOrderError` saying why.
    `publisher_fingerprint`: the publisher of the directory in force at `at`."""
    try:
        root = parse_untrusted(data, max_bytes=MAX_ORDER_BYTES, max_depth=MAX_DEPTH)
    except Rejection as exc:
        raise DeletionOrderError(f"{where}: not a readable signed order: {exc}") from exc
    if root.tag != f"{{{NS}}}DeletionOrder":
        raise DeletionOrderError(f"{where}: not a deletion order (root element {root.tag!r})")

    def publisher_only(cert: x509.Certificate) -> None:
        try:
            anchors.check(cert, at, purpose=DIRECTORY_SIGNING, what="the order's signer")
            if revocations is not None:
                revocations.check(cert, "the order's signer")
        except CertificateError as exc:
            raise DeletionOrderError(f"{where}: {exc}") from exc
        if fingerprint(cert) != publisher_fingerprint:
            raise DeletionOrderError(
                f"{where}: signed by {cert.subject.rfc4514_string()}, which is not the "
                "publisher of the directory in force: only it orders deletions"
            )

    try:
        verified = verify(root, lambda _fp: _PUBLISHER, publisher_only)
    except Rejection as exc:
        raise DeletionOrderError(f"{where}: the signature does not verify: {exc}") from exc
    signed = verified.root
    _validate(signed, where)
    issued = datetime.strptime(signed.get("issued", ""), _TIME).replace(tzinfo=UTC)
    if issued > at + FUTURE_SKEW:
        raise DeletionOrderError(f"{where}: issued {signed.get('issued')}, in the future")
    return DeletionOrder(
        order_id=signed.get("orderId", ""),
        issued=issued,
        reason=signed.findtext(f"{{{NS}}}Reason") or "",
        items=tuple(e.text or "" for e in signed.findall(f"{{{NS}}}Item")),
        publisher=verified.signer,
        sha256=hashlib.sha256(data).hexdigest(),
    )
