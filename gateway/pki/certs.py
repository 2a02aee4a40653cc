"""Loading certificates and keys. The one way we name a certificate, its SHA-256 fingerprint,
is `gateway.core.fingerprints` (re-exported here for the shell's callers)."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from gateway.core.fingerprints import fingerprint, fingerprint_der

__all__ = [
    "CertificateError",
    "ecdsa_key",
    "fingerprint",
    "fingerprint_der",
    "load_certificate",
    "load_certificates",
    "load_private_key",
]


class CertificateError(ValueError):
    """A certificate or key file is missing, unreadable or of the wrong kind."""


def ecdsa_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey | None:
    """The certificate's ECDSA public key, or None when it holds another kind of key or one
    this build cannot read (an unknown curve, a damaged key): an untrusted certificate's key
    is data, and reading it must never raise anything but a refusal."""
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return None
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None


def load_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise CertificateError(f"cannot read certificate {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise CertificateError(f"{path} is not a PEM certificate: {exc}") from exc


def load_certificates(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise CertificateError(f"cannot read certificates {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise CertificateError(f"{path} holds no PEM certificate: {exc}") from exc


def load_private_key(path: Path, password: bytes | None = None) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=password)
    except OSError as exc:
        raise CertificateError(f"cannot read private key {path}: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"{path} is not a usable PEM private key: {exc}") from exc
