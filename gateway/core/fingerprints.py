"""The one way a certificate is named: the SHA-256 of its DER encoding, in lowercase hex, as
the directory pins it. Pure (no I/O); below `xml` and `pki`, which both name certificates."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def fingerprint_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def fingerprint(cert: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the DER encoding, as pinned in the directory."""
    return fingerprint_der(cert.public_bytes(serialization.Encoding.DER))
