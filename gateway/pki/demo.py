"""A throw-away PKI for demonstrations and tests: one network CA, and for each Dublin unit a
TLS certificate and a separate signing certificate, plus the directory that pins them.

The TLS and signing identities are deliberately separate keys and certificates: the signing
certificate carries only the documentSigning purpose (RFC 9336), so a stolen signing key
cannot be used to open a mutual-TLS connection, and a TLS key cannot sign a standard form.
Nothing here is fit for production keys; it exists so the real code paths (pinning, EKU
checks, file modes) are exercised with realistic material.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.core.directory import AUTHORITY_CODE, Authority, Directory
from gateway.core.roles import ROLES
from gateway.pki.certs import fingerprint
from gateway.pki.directory_file import atomic_write, save_directory
from gateway.pki.purposes import (
    DIRECTORY_SIGNING,
    DOCUMENT_SIGNING,
    HEALTH_ENCRYPTION,
    Purpose,
)
from gateway.pki.signed_directory import publish_directory
from gateway.xml.signature import Signer

# Eurodac letters -> (English name of the State, IANA time zone of its capital).
# Eurodac uses GR for Greece where EU style uses EL; Denmark takes part by agreement, and
# Iceland, Norway, Switzerland and Liechtenstein are the associated States.
MEMBER_STATES: Mapping[str, tuple[str, str]] = {
    "AT": ("Austria", "Europe/Vienna"),
    "BE": ("Belgium", "Europe/Brussels"),
    "BG": ("Bulgaria", "Europe/Sofia"),
    "CY": ("Cyprus", "Asia/Nicosia"),
    "CZ": ("Czechia", "Europe/Prague"),
    "DE": ("Germany", "Europe/Berlin"),
    "DK": ("Denmark", "Europe/Copenhagen"),
    "EE": ("Estonia", "Europe/Tallinn"),
    "ES": ("Spain", "Europe/Madrid"),
    "FI": ("Finland", "Europe/Helsinki"),
    "FR": ("France", "Europe/Paris"),
    "GR": ("Greece", "Europe/Athens"),
    "HR": ("Croatia", "Europe/Zagreb"),
    "HU": ("Hungary", "Europe/Budapest"),
    "IE": ("Ireland", "Europe/Dublin"),
    "IT": ("Italy", "Europe/Rome"),
    "LT": ("Lithuania", "Europe/Vilnius"),
    "LU": ("Luxembourg", "Europe/Luxembourg"),
    "LV": ("Latvia", "Europe/Riga"),
    "MT": ("Malta", "Europe/Malta"),
    "NL": ("the Netherlands", "Europe/Amsterdam"),
    "PL": ("Poland", "Europe/Warsaw"),
    "PT": ("Portugal", "Europe/Lisbon"),
    "RO": ("Romania", "Europe/Bucharest"),
    "SE": ("Sweden", "Europe/Stockholm"),
    "SI": ("Slovenia", "Europe/Ljubljana"),
    "SK": ("Slovakia", "Europe/Bratislava"),
    # Associated States
    "CH": ("Switzerland", "Europe/Zurich"),
    "IS": ("Iceland", "Atlantic/Reykjavik"),
    "LI": ("Liechtenstein", "Europe/Vaduz"),
    "NO": ("Norway", "Europe/Oslo"),
}

# Letters people are likely to type for a State whose Eurodac letters differ.
_LETTER_HINTS: Mapping[str, str] = {"EL": "GR"}

__all__ = ["DOCUMENT_SIGNING", "create_demo_network", "issue_certificate"]

CA_COMMON_NAME = "Dublin network demo CA"
FIRST_DEMO_PORT = 8443
# A little slack so a certificate minted now is not "not yet valid" on a peer whose clock
# runs slightly behind.
CLOCK_SKEW = timedelta(minutes=5)

_CERT_MODE = 0o644
_KEY_MODE = 0o600
_SECRET_DIR_MODE = 0o700


@dataclass(frozen=True)
class AuthorityFiles:
    """Where one authority's credentials were written."""

    code: str
    tls_cert: Path
    tls_key: Path
    signing_cert: Path
    signing_key: Path
    health_cert: Path
    health_key: Path
    """The health practitioners' decryption key: theirs, never in a gateway's configuration."""


@dataclass(frozen=True)
class DemoNetwork:
    """Where a whole demo network was written."""

    root: Path
    ca_cert: Path
    ca_key: Path
    directory: Path
    """The signed, published directory that gateways load."""
    authorities: dict[str, AuthorityFiles]
    crl: Path
    publisher_cert: Path
    publisher_key: Path
    directory_source: Path
    """The operator's unsigned JSON from which `directory` was published."""


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key: the one curve every gateway accepts for both TLS and XML signatures."""
    return ec.generate_private_key(ec.SECP256R1())


def create_ca_certificate(
    key: ec.EllipticCurvePrivateKey,
    *,
    not_before: datetime,
    not_after: datetime,
    common_name: str = CA_COMMON_NAME,
    subject: x509.Name | None = None,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    path_length: int = 0,
) -> x509.Certificate:
    """A CA certificate: self-signed unless `issuer` (certificate and key) is given. The demo
    CA may issue leaves only (pathlen 0), so a leaf key can never mint further certificates
    the network would accept; the operator's root has pathlen 1 (it certifies the issuing
    CA)."""
    name = subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    issuer_name, signing_key = (name, key) if issuer is None else (issuer[0].subject, issuer[1])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
        .sign(signing_key, hashes.SHA256())
    )


def issue_certificate(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject_key_public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    subject: x509.Name,
    *,
    purpose: Purpose,
    sans: Sequence[x509.GeneralName] = (),
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """Issue a leaf whose extensions confine it to one `purpose`.

    A "tls" leaf is for both ends of mutual TLS (serverAuth + clientAuth) and needs at least
    one SAN, since clients check host names only there. A "signing" leaf carries only
    documentSigning and contentCommitment, which TLS stacks refuse for either end: that
    refusal is what keeps the two identities apart.
    """
    if _utc(not_after) <= _utc(not_before):
        raise ValueError("not_after must be later than not_before")
    if _utc(not_after) > ca_cert.not_valid_after_utc:
        raise ValueError("a certificate may not outlive the CA that issues it")
    if purpose != "health-encryption" and not isinstance(
        subject_key_public, ec.EllipticCurvePublicKey
    ):
        raise ValueError(f"a {purpose} certificate needs an ECDSA P-256 key")
    if purpose == "tls":
        if not sans:
            raise ValueError("a TLS certificate needs at least one subject alternative name")
        usage = _key_usage(content_commitment=False)
        eku = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    elif purpose == "signing":
        usage = _key_usage(content_commitment=True)
        eku = [DOCUMENT_SIGNING]
    elif purpose == "directory":
        usage = _key_usage(content_commitment=True)
        eku = [DIRECTORY_SIGNING]
    elif purpose == "health-encryption":
        if not isinstance(subject_key_public, rsa.RSAPublicKey):
            raise ValueError("a health encryption certificate needs an RSA key (CMS key transport)")
        usage = _key_usage(content_commitment=False, encipherment=True)
        eku = [HEALTH_ENCRYPTION]
    else:  # pragma: no cover - guarded by the Purpose type, kept for untyped callers
        raise ValueError(f"unknown certificate purpose {purpose!r}")
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(subject_key_public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(subject_key_public), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    """Write an unencrypted PKCS#8 key readable by its owner only, from the first byte on.

    An existing file is never replaced: overwriting a key would silently change an identity
    that the directory still pins.
    """
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomic_write(path, pem, mode=_KEY_MODE, overwrite=False)


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    """Write a PEM certificate; certificates are public, so they are world-readable."""
    atomic_write(path, cert.public_bytes(serialization.Encoding.PEM), mode=_CERT_MODE)


_Credentials = dict[str, tuple[ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, x509.Certificate]]


def _issue_authority(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    code: str,
    state: str,
    endpoint: str,
    not_before: datetime,
    not_after: datetime,
) -> tuple[Authority, _Credentials]:
    """One authority's TLS, signing and health encryption keys and certificates, and its
    directory entry pinning them (in memory: nothing is written here)."""
    state_name, time_zone = MEMBER_STATES[state]
    unit = f"Dublin unit of {state_name}"
    tls_key, signing_key = generate_key(), generate_key()
    health_key = generate_health_key()
    tls_cert = issue_certificate(
        ca_cert,
        ca_key,
        tls_key.public_key(),
        _name(code, unit),
        purpose="tls",
        sans=_tls_sans(code),
        not_before=not_before,
        not_after=not_after,
    )
    signing_cert = issue_certificate(
        ca_cert,
        ca_key,
        signing_key.public_key(),
        _name(f"{code} signing", unit),
        purpose="signing",
        not_before=not_before,
        not_after=not_after,
    )
    health_cert = issue_certificate(
        ca_cert,
        ca_key,
        health_key.public_key(),
        _name(f"{code} health practitioners", unit),
        purpose="health-encryption",
        not_before=not_before,
        not_after=not_after,
    )
    authority = Authority(
        code=code,
        member_state=state,
        name=unit,
        time_zone=time_zone,
        endpoint=endpoint,
        roles=frozenset(ROLES),
        tls_fingerprints=frozenset({fingerprint(tls_cert)}),
        signing_fingerprints=frozenset({fingerprint(signing_cert)}),
        health_encryption_certificates=(_pem(health_cert),),
        networks=DEMO_NETWORKS,
    )
    credentials: _Credentials = {
        "tls": (tls_key, tls_cert),
        "signing": (signing_key, signing_cert),
        "health": (health_key, health_cert),
    }
    return authority, credentials


DEMO_NETWORKS = frozenset({"dublin", "iconet", "ilo-network"})
"""Every demo authority is a Dublin unit that also takes part in ICONET (early warnings) and
the immigration liaison officers' network."""


def create_demo_network(
    out: Path,
    codes: Sequence[str],
    endpoints: Mapping[str, str] | None = None,
    *,
    valid_days: int = 365,
    now: datetime | None = None,
) -> DemoNetwork:
    """Create a CA, per-authority TLS and signing credentials, and a directory pinning them.

    Everything is checked and generated in memory before the first file is written, and the
    CA certificate is written last: its presence marks a complete network, which is why an
    `out` that already has one is refused rather than overwritten.
    """
    state_of = _check_codes(codes)
    endpoints = dict(endpoints or {})
    stray = sorted(set(endpoints) - set(codes))
    if stray:
        raise ValueError(f"endpoints given for authorities not being created: {stray}")
    if valid_days < 1:
        raise ValueError("valid_days must be at least 1")
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    # Certificates hold whole seconds; truncating here keeps CA and leaves exactly aligned.
    now = now.replace(microsecond=0)
    not_before = now - CLOCK_SKEW
    not_after = now + timedelta(days=valid_days)

    ca_dir = out / "ca"
    ca_cert_path, ca_key_path = ca_dir / "ca.pem", ca_dir / "ca.key"
    if ca_cert_path.exists():
        raise FileExistsError(
            f"{out} already holds a demo network ({ca_cert_path} exists); "
            "choose another --out folder or delete this one first"
        )
    files = {
        code: AuthorityFiles(
            code=code,
            tls_cert=out / code / "tls.pem",
            tls_key=out / code / "tls.key",
            signing_cert=out / code / "signing.pem",
            signing_key=out / code / "signing.key",
            health_cert=out / code / "health" / "health-encryption.pem",
            health_key=out / code / "health" / "health-encryption.key",
        )
        for code in codes
    }
    source_path, directory_path = out / "directory.json", out / "directory.xml"
    crl_path = ca_dir / "crl.pem"
    publisher_cert_path = out / "operator" / "directory-publisher.pem"
    publisher_key_path = out / "operator" / "directory-publisher.key"
    targets = [
        ca_key_path,
        source_path,
        directory_path,
        crl_path,
        publisher_cert_path,
        publisher_key_path,
    ]
    for f in files.values():
        targets += [
            f.tls_cert,
            f.tls_key,
            f.signing_cert,
            f.signing_key,
            f.health_cert,
            f.health_key,
        ]
    existing = [str(p) for p in targets if p.exists()]
    if existing:
        raise FileExistsError(
            f"{out} holds files of an earlier, unfinished network ({', '.join(existing)}); "
            "delete the folder and try again"
        )

    ca_key = generate_key()
    ca_cert = create_ca_certificate(ca_key, not_before=not_before, not_after=not_after)
    publisher_key = generate_key()
    publisher_cert = issue_certificate(
        ca_cert,
        ca_key,
        publisher_key.public_key(),
        _name("Dublin network directory publisher", "Dublin network operator"),
        purpose="directory",
        not_before=not_before,
        not_after=not_after,
    )
    crl = empty_crl(ca_cert, ca_key, now, not_after)
    issued: _Credentials = {}
    authorities: list[Authority] = []
    for index, code in enumerate(codes):
        authority, credentials = _issue_authority(
            ca_cert,
            ca_key,
            code,
            state_of[code],
            endpoints.get(code, f"https://localhost:{FIRST_DEMO_PORT + index}"),
            not_before,
            not_after,
        )
        authorities.append(authority)
        issued.update({f"{code}/{kind}": pair for kind, pair in credentials.items()})
    for authority in authorities:
        authority.check()
    directory = Directory.of(authorities)

    out.mkdir(parents=True, exist_ok=True)
    _make_private_dir(ca_dir)
    _make_private_dir(out / "operator")
    for code, f in files.items():
        _make_private_dir(out / code)
        _make_private_dir(out / code / "health")
        for kind, key_path, cert_path in (
            ("tls", f.tls_key, f.tls_cert),
            ("signing", f.signing_key, f.signing_cert),
            ("health", f.health_key, f.health_cert),
        ):
            key, cert = issued[f"{code}/{kind}"]
            write_private_key(key_path, key)
            write_certificate(cert_path, cert)
    write_private_key(publisher_key_path, publisher_key)
    write_certificate(publisher_cert_path, publisher_cert)
    atomic_write(crl_path, crl.public_bytes(serialization.Encoding.PEM), mode=_CERT_MODE)
    save_directory(source_path, directory)
    publish_directory(directory_path, directory, Signer(publisher_key, publisher_cert), now)
    write_private_key(ca_key_path, ca_key)
    write_certificate(ca_cert_path, ca_cert)
    return DemoNetwork(
        root=out,
        ca_cert=ca_cert_path,
        ca_key=ca_key_path,
        directory=directory_path,
        authorities=files,
        crl=crl_path,
        publisher_cert=publisher_cert_path,
        publisher_key=publisher_key_path,
        directory_source=source_path,
    )


def generate_health_key() -> rsa.RSAPrivateKey:
    """CMS key transport as `cryptography` builds it needs RSA; 2048 bits keeps demo networks
    quick to create (the operator tooling issues 3072-bit keys)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def empty_crl(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: datetime,
    next_update: datetime,
    revoked: Sequence[x509.Certificate] = (),
    number: int = 1,
) -> x509.CertificateRevocationList:
    """A CRL of `ca_cert` listing `revoked` (the demo starts with none)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - CLOCK_SKEW)
            .build()
        )
    return builder.sign(ca_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _check_codes(codes: Sequence[str]) -> dict[str, str]:
    """Map each code to its Member State letters, refusing anything the directory would."""
    if isinstance(codes, str):
        raise ValueError("codes must be a sequence of codes such as ['BE-DU'], not one string")
    if not codes:
        raise ValueError("at least one authority code is needed, e.g. BE-DU")
    seen: dict[str, str] = {}
    for code in codes:
        if not AUTHORITY_CODE.match(code):
            raise ValueError(
                f"authority code {code!r} must look like 'BE-DU': two capital Member State "
                "letters, a dash, then 1 to 10 capital letters or digits"
            )
        state = code[:2]
        if state not in MEMBER_STATES:
            hint = _LETTER_HINTS.get(state)
            extra = f" (Eurodac writes {hint} for that State)" if hint else ""
            raise ValueError(
                f"authority code {code!r}: {state!r} is not the Eurodac letters of a Member "
                f"State or associated State{extra}; known: {', '.join(sorted(MEMBER_STATES))}"
            )
        if code in seen:
            raise ValueError(f"authority code {code!r} is listed twice")
        seen[code] = state
    return seen


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )


def _tls_sans(code: str) -> list[x509.GeneralName]:
    """Names a demo peer can be reached by: locally by loopback, or by a per-unit test name."""
    return [
        x509.DNSName("localhost"),
        x509.DNSName(f"{code.lower()}.dublin.test"),
        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
        x509.IPAddress(ipaddress.IPv6Address("::1")),
    ]


def _key_usage(*, content_commitment: bool, encipherment: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not encipherment,
        content_commitment=content_commitment,
        key_encipherment=encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _utc(moment: datetime) -> datetime:
    """cryptography reads a naive datetime as UTC; compare the same way."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _make_private_dir(path: Path) -> None:
    """A folder holding private keys: owner-only, whatever the umask or an earlier mode."""
    path.mkdir(mode=_SECRET_DIR_MODE, exist_ok=True)
    os.chmod(path, _SECRET_DIR_MODE)
