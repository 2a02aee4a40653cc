"""Certificates the network CA issued but the directory does not pin: the tests' impostors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.pki.certs import load_certificate, load_private_key
from gateway.pki.demo import DemoNetwork, issue_certificate


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
