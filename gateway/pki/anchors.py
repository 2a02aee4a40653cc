"""The network's trust anchors (the CA bundle every gateway configures as `tls.ca`) and its
certificate revocation list: the two things that decide whether a certificate is one of the
network's, and whether it still is.

Checks use `cryptography` only; the TLS layer gets the same files through the `ssl` module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from gateway.pki.certs import CertificateError, fingerprint, load_certificates


@dataclass(frozen=True)
class TrustAnchors:
    """The CA certificates of the network (an issuing CA and its root, or a single CA)."""

    certificates: tuple[x509.Certificate, ...]

    @classmethod
    def load(cls, path: Path) -> TrustAnchors:
        certs = load_certificates(path)
        for cert in certs:
            constraints = _basic_constraints(cert)
            if constraints is None or not constraints.ca:
                raise CertificateError(
                    f"{path}: {cert.subject.rfc4514_string()} is not a CA certificate; "
                    "tls.ca must hold only the network's CA certificates"
                )
        return cls(tuple(certs))

    def issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        """The anchor that signed `cert`, checked by signature (names alone prove nothing)."""
        for anchor in self.certificates:
            if anchor.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(anchor)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return anchor
        return None

    def check(
        self,
        cert: x509.Certificate,
        at: datetime,
        *,
        purpose: ObjectIdentifier | None = None,
        what: str = "certificate",
    ) -> x509.Certificate:
        """Refuse `cert` unless a network CA issued it, it is valid at `at` and (if given) it
        carries the extended key usage `purpose`. Returns the issuing anchor."""
        issuer = self.issuer_of(cert)
        if issuer is None:
            raise CertificateError(
                f"{what} {describe(cert)} was not issued by a CA of the network (unknown CA: "
                f"issuer {cert.issuer.rfc4514_string()})"
            )
        check_dates(cert, at, what)
        check_dates(issuer, at, f"the CA of the {what}")
        if purpose is not None and purpose not in extended_key_usages(cert):
            raise CertificateError(
                f"{what} {describe(cert)} is not issued for this purpose "
                f"(extended key usage {purpose.dotted_string} missing)"
            )
        return issuer


@dataclass(frozen=True)
class Revocations:
    """A verified CRL: which serials of which issuer are revoked, and until when it holds."""

    issuer: x509.Name
    serials: frozenset[int]
    number: int | None
    last_update: datetime
    next_update: datetime | None
    sha256: str = field(default="", compare=False)
    revoked_at: Mapping[int, datetime] = field(default_factory=dict, compare=False)
    """When each serial was revoked, as the CRL says."""
    compromised: frozenset[int] = field(default=frozenset(), compare=False)
    """Serials revoked for key or CA compromise: nothing their keys signed can be trusted,
    whatever time it claims (a signing time is the signer's own statement)."""

    @classmethod
    def load(cls, path: Path, anchors: TrustAnchors, at: datetime) -> Revocations:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CertificateError(f"cannot read CRL {path}: {exc.strerror or exc}") from exc
        try:
            crl = x509.load_pem_x509_crl(data)
        except ValueError as exc:
            raise CertificateError(f"{path} is not a PEM certificate revocation list") from exc
        issuer = next((a for a in anchors.certificates if a.subject == crl.issuer), None)
        if issuer is None:
            raise CertificateError(
                f"{path}: the CRL's issuer {crl.issuer.rfc4514_string()} is not a network CA"
            )
        if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            raise CertificateError(f"{path}: the CRL's signature does not verify")
        next_update = crl.next_update_utc
        if next_update is not None and next_update <= at:
            raise CertificateError(
                f"{path}: the CRL expired at {next_update.isoformat()} (its next update); "
                "the operator must publish a fresh one (`gateway pki crl`)"
            )
        try:
            number: int | None = crl.extensions.get_extension_for_class(
                x509.CRLNumber
            ).value.crl_number
        except x509.ExtensionNotFound:
            number = None
        return cls(
            issuer=crl.issuer,
            serials=frozenset(r.serial_number for r in crl),
            number=number,
            last_update=crl.last_update_utc,
            next_update=next_update,
            sha256=hashlib.sha256(data).hexdigest(),
            revoked_at={r.serial_number: r.revocation_date_utc for r in crl},
            compromised=frozenset(r.serial_number for r in crl if _compromise(r)),
        )

    def is_revoked(self, cert: x509.Certificate) -> bool:
        return cert.issuer == self.issuer and cert.serial_number in self.serials

    def check(self, cert: x509.Certificate, what: str = "certificate") -> None:
        if self.is_revoked(cert):
            raise CertificateError(f"{what} {describe(cert)} is revoked (CRL {self.number})")

    def refusal_at(self, cert: x509.Certificate, at: datetime) -> str | None:
        """Why what `cert`'s key signed at `at` cannot be trusted, or None: a certificate
        revoked as superseded still vouches for what it signed before its revocation."""
        if not self.is_revoked(cert):
            return None
        if cert.serial_number in self.compromised:
            return f"{describe(cert)} is revoked for key compromise (CRL {self.number})"
        revoked = self.revoked_at.get(cert.serial_number)
        if revoked is None or at >= revoked:
            return f"{describe(cert)} was revoked before then (CRL {self.number})"
        return None


def _compromise(entry: x509.RevokedCertificate) -> bool:
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return False
    return reason in (x509.ReasonFlags.key_compromise, x509.ReasonFlags.ca_compromise)


def describe(cert: x509.Certificate) -> str:
    """How messages name a certificate: its subject and the start of its fingerprint."""
    return f"'{cert.subject.rfc4514_string()}' ({fingerprint(cert)[:16]}...)"


def check_dates(cert: x509.Certificate, at: datetime, what: str = "certificate") -> None:
    if at < cert.not_valid_before_utc:
        raise CertificateError(
            f"{what} {describe(cert)} is not valid before {cert.not_valid_before_utc.isoformat()}"
        )
    if at > cert.not_valid_after_utc:
        raise CertificateError(
            f"{what} {describe(cert)} expired at {cert.not_valid_after_utc.isoformat()}"
        )


def extended_key_usages(cert: x509.Certificate) -> Sequence[ObjectIdentifier]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return []


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


TLS_PURPOSES = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
