"""The network operator's hand in tests: certificates the network CA issued but the directory
does not pin (impostors), new directory versions, revocations and renewals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.core.directory import Directory
from gateway.pki.anchors import TrustAnchors
from gateway.pki.certs import load_certificate, load_private_key
from gateway.pki.demo import (
    DemoNetwork,
    issue_certificate,
    write_certificate,
    write_private_key,
)
from gateway.pki.directory_file import atomic_write
from gateway.pki.signed_directory import publish_directory, read_signed_directory
from gateway.xml.signature import Signer


def unpinned_certificate(
    pki: DemoNetwork, purpose: Literal["tls", "signing"], common_name: str = "BE-DU"
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_cert, ca_key = load_certificate(pki.ca_cert), load_private_key(pki.ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = issue_certificate(
        ca_cert,
        ca_key,  # type: ignore[arg-type]
        key.public_key(),
        x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, common_name)]),
        purpose=purpose,
        sans=[x509.DNSName("localhost")] if purpose == "tls" else (),
        not_before=now - timedelta(minutes=1),
        not_after=now + timedelta(days=1),
    )
    return key, cert


# --- the operator's side of a demo network, as tests need it -------------------------------


def read_source(pki: DemoNetwork) -> Directory:
    """The directory as the operator last published it (the signed file's content)."""
    anchors = TrustAnchors.load(pki.ca_cert)
    return read_signed_directory(pki.directory.read_bytes(), anchors, datetime.now(UTC)).directory


def publish(
    pki: DemoNetwork, change: Callable[[dict[str, Any]], None], *, version: int | None = None
) -> Directory:
    """Publish the next version of the directory with `change` applied to its JSON form."""
    data = read_source(pki).to_dict()
    change(data)
    data["version"] = data["version"] + 1 if version is None else version
    directory = Directory.from_dict(data)
    publisher = Signer(
        load_private_key(pki.publisher_key),  # type: ignore[arg-type]
        load_certificate(pki.publisher_cert),
    )
    publish_directory(pki.directory, directory, publisher, datetime.now(UTC))
    return directory


def revoke(
    pki: DemoNetwork,
    *certs: x509.Certificate,
    reason: x509.ReasonFlags | None = None,
    at: datetime | None = None,
) -> int:
    """Add `certs` to the network CA's CRL (revoked a minute ago, or `at`, for `reason` if
    given) and publish it; returns the new CRL number."""
    current = x509.load_pem_x509_crl(pki.crl.read_bytes())
    number = current.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
    ca_cert, ca_key = load_certificate(pki.ca_cert), load_private_key(pki.ca_key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - timedelta(minutes=1))
        .next_update(now + timedelta(days=7))
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for entry in current:
        builder = builder.add_revoked_certificate(entry)
    for cert in certs:
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(at or now - timedelta(minutes=1))
        )
        if reason is not None:
            revoked = revoked.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(revoked.build())
    crl = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    atomic_write(pki.crl, crl.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return number


def renew(
    pki: DemoNetwork, code: str, purpose: Literal["tls", "signing"], out: Path
) -> tuple[Path, Path, x509.Certificate]:
    """A new key and certificate for `code`, written under `out` (not yet installed)."""
    old = load_certificate(
        pki.authorities[code].tls_cert if purpose == "tls" else pki.authorities[code].signing_cert
    )
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    sans: list[x509.GeneralName] = []
    if purpose == "tls":
        sans = list(old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    cert = issue_certificate(
        load_certificate(pki.ca_cert),
        load_private_key(pki.ca_key),  # type: ignore[arg-type]
        key.public_key(),
        old.subject,
        purpose=purpose,
        sans=sans,
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=30),
    )
    out.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = out / f"{purpose}.key", out / f"{purpose}.pem"
    write_private_key(key_path, key)
    write_certificate(cert_path, cert)
    return key_path, cert_path, cert
