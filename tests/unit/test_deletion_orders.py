"""The network operator's deletion orders for operational items (Council Decision 2005/267/EC:
ICONET early warnings that breach the rules are deleted wherever they are held): only the
publisher of the directory in force orders, and only what its signature covers is read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from gateway.pki.anchors import Revocations, TrustAnchors
from gateway.pki.certs import fingerprint, load_certificate, load_private_key
from gateway.pki.deletion_orders import (
    NS,
    DeletionOrder,
    DeletionOrderError,
    read_deletion_order,
    sign_deletion_order,
)
from gateway.pki.demo import DemoNetwork, create_demo_network, issue_certificate
from gateway.xml.signature import Signer
from tests.pki_helpers import revoke

ITEMS = (str(uuid.uuid4()), str(uuid.uuid4()))


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> DemoNetwork:
    return create_demo_network(tmp_path_factory.mktemp("orders") / "demo", ["BE-DU", "NL-DU"])


def publisher(pki: DemoNetwork) -> Signer:
    return Signer(load_private_key(pki.publisher_key), load_certificate(pki.publisher_cert))  # type: ignore[arg-type]


def read(
    pki: DemoNetwork,
    data: bytes,
    at: datetime | None = None,
    revocations: Revocations | None = None,
) -> DeletionOrder:
    return read_deletion_order(
        data,
        TrustAnchors.load(pki.ca_cert),
        at or datetime.now(UTC),
        revocations,
        fingerprint(load_certificate(pki.publisher_cert)),
    )


def another_publisher(pki: DemoNetwork) -> Signer:
    """A directory-signing certificate the network CA issued, but not the one in force."""
    new_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = issue_certificate(
        load_certificate(pki.ca_cert),
        load_private_key(pki.ca_key),  # type: ignore[arg-type]
        new_key.public_key(),
        x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "second publisher")]),
        purpose="directory",
        not_before=now - timedelta(minutes=1),
        not_after=now + timedelta(days=30),
    )
    return Signer(new_key, cert)


def test_an_order_signed_by_the_directory_publisher_is_read_with_its_items(
    net: DemoNetwork,
) -> None:
    """Council Decision 2005/267/EC: the operator names the items to delete and why."""
    issued = datetime.now(UTC).replace(microsecond=0)
    data = sign_deletion_order(ITEMS, "The warning names a person.", publisher(net), issued)
    order = read(net, data)
    assert order.items == ITEMS
    assert order.reason == "The warning names a person."
    assert order.issued == issued
    uuid.UUID(order.order_id)
    assert etree.fromstring(data).tag == f"{{{NS}}}DeletionOrder"


def test_a_tampered_byte_is_refused(net: DemoNetwork) -> None:
    data = sign_deletion_order(ITEMS, "Breach.", publisher(net), datetime.now(UTC))
    # The item id's last digit changed (to "1" when it is "0": the ids are random).
    last = "1" if ITEMS[0][-1] == "0" else "0"
    tampered = data.replace(ITEMS[0].encode(), (ITEMS[0][:-1] + last).encode())
    assert tampered != data
    with pytest.raises(DeletionOrderError, match="does not verify"):
        read(net, tampered)


def test_an_order_signed_with_an_authority_signing_key_is_refused(net: DemoNetwork) -> None:
    """A form-signing key of a member (BE-DU) was not issued for directory signing: it
    orders nothing, however valid."""
    files = net.authorities["BE-DU"]
    be = Signer(load_private_key(files.signing_key), load_certificate(files.signing_cert))  # type: ignore[arg-type]
    data = sign_deletion_order(ITEMS, "Breach.", be, datetime.now(UTC))
    with pytest.raises(DeletionOrderError, match="not issued for this purpose"):
        read(net, data)


def test_a_directory_signing_certificate_that_is_not_the_publisher_in_force_is_refused(
    net: DemoNetwork,
) -> None:
    data = sign_deletion_order(ITEMS, "Breach.", another_publisher(net), datetime.now(UTC))
    with pytest.raises(DeletionOrderError, match="not the publisher of the directory"):
        read(net, data)


def test_an_expired_publisher_certificate_is_refused(net: DemoNetwork) -> None:
    data = sign_deletion_order(ITEMS, "Breach.", publisher(net), datetime.now(UTC))
    with pytest.raises(DeletionOrderError, match=r"expired|not valid"):
        read(net, data, at=datetime.now(UTC) + timedelta(days=3 * 365))


def test_a_publisher_of_another_network_ca_is_refused(net: DemoNetwork, tmp_path: Path) -> None:
    other = create_demo_network(tmp_path / "other", ["BE-DU"])
    data = sign_deletion_order(ITEMS, "Breach.", publisher(other), datetime.now(UTC))
    with pytest.raises(DeletionOrderError, match="not issued by a CA of the network"):
        read(net, data)


def test_a_revoked_publisher_certificate_is_refused(tmp_path: Path) -> None:
    pki = create_demo_network(tmp_path / "revoking", ["BE-DU"])
    data = sign_deletion_order(ITEMS, "Breach.", publisher(pki), datetime.now(UTC))
    revoke(pki, load_certificate(pki.publisher_cert))
    now = datetime.now(UTC)
    crl = Revocations.load(pki.crl, TrustAnchors.load(pki.ca_cert), now)
    with pytest.raises(DeletionOrderError, match="revoked"):
        read(pki, data, revocations=crl)


def test_an_unsigned_order_is_refused(net: DemoNetwork) -> None:
    data = sign_deletion_order(ITEMS, "Breach.", publisher(net), datetime.now(UTC))
    root = etree.fromstring(data)
    root.remove(root[-1])
    with pytest.raises(DeletionOrderError, match="no XML signature"):
        read(net, etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def test_an_item_id_that_is_not_a_uuid_is_refused_before_signing(net: DemoNetwork) -> None:
    with pytest.raises(DeletionOrderError, match=r"deletion-order\.xsd"):
        sign_deletion_order(["BE-EW-000017"], "Breach.", publisher(net), datetime.now(UTC))
    with pytest.raises(DeletionOrderError, match=r"deletion-order\.xsd"):
        sign_deletion_order([], "Breach.", publisher(net), datetime.now(UTC))
    with pytest.raises(DeletionOrderError, match=r"deletion-order\.xsd"):
        sign_deletion_order([ITEMS[0], ITEMS[0]], "Breach.", publisher(net), datetime.now(UTC))


def test_a_signed_document_outside_the_schema_is_refused_on_reading(net: DemoNetwork) -> None:
    """The publisher's signature is not enough: what is read must be a valid order."""
    root = etree.Element(f"{{{NS}}}DeletionOrder", nsmap={"o": NS})
    root.set("orderId", str(uuid.uuid4()))
    root.set("issued", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    etree.SubElement(root, f"{{{NS}}}Reason").text = "Breach."
    etree.SubElement(root, f"{{{NS}}}Everything")
    data = publisher(net).sign(root)
    with pytest.raises(DeletionOrderError, match=r"deletion-order\.xsd"):
        read(net, data)


def test_an_order_issued_in_the_future_is_refused(net: DemoNetwork) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    data = sign_deletion_order(ITEMS, "Breach.", publisher(net), later)
    with pytest.raises(DeletionOrderError, match="in the future"):
        read(net, data)


def test_a_doctype_or_an_oversized_file_is_refused_before_any_cryptography(
    net: DemoNetwork,
) -> None:
    data = sign_deletion_order(ITEMS, "Breach.", publisher(net), datetime.now(UTC))
    doctype = data.replace(b"?>", b'?><!DOCTYPE o [<!ENTITY x "y">]>', 1)
    with pytest.raises(DeletionOrderError, match="not a readable"):
        read(net, doctype)
    with pytest.raises(DeletionOrderError, match="exceeds"):
        read(net, data + b" " * 300_000)
