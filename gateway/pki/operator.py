"""The network operator's certificate authority (Art. 41: the network of notified
authorities), built on `cryptography`.

Two tiers: a root whose key is used only to certify the issuing CA and is then taken
offline, and an issuing CA that certifies the authorities' keys and signs the CRL. Both keys
are stored encrypted with a passphrase. Authorities generate their own keys and send a
certificate signing request; the operator takes only the public key from it (subject and
extensions are decided here), so the operator never sees a private key and a request cannot
ask for more than its purpose.

    CA_DIR/root/root.pem, root.key       (move root/ offline after `init`)
    CA_DIR/issuing/issuing.pem, .key     (online, encrypted)
    CA_DIR/issuing/issued.json           (every certificate issued, revoked, and the CRL number)
    CA_DIR/ca.pem                        (issuing CA + root: what gateways configure as tls.ca)
    CA_DIR/crl.pem                       (the CRL gateways configure as tls.crl)
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import stat
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gateway.core.directory import AUTHORITY_CODE
from gateway.pki.certs import CertificateError, fingerprint, load_certificate
from gateway.pki.demo import (
    CLOCK_SKEW,
    MEMBER_STATES,
    DemoNetwork,
    create_ca_certificate,
    issue_certificate,
    write_certificate,
)
from gateway.pki.directory_file import atomic_write
from gateway.pki.purposes import PURPOSES, Purpose

MIN_PASSPHRASE = 12
HEALTH_KEY_BITS = 3072
REASONS = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key_compromise": x509.ReasonFlags.key_compromise,
    "superseded": x509.ReasonFlags.superseded,
    "cessation_of_operation": x509.ReasonFlags.cessation_of_operation,
}
_KEY_MODE, _PUBLIC_MODE = 0o600, 0o644


@dataclass(frozen=True)
class CaPaths:
    root: Path

    @property
    def root_cert(self) -> Path:
        return self.root / "root" / "root.pem"

    @property
    def root_key(self) -> Path:
        return self.root / "root" / "root.key"

    @property
    def issuing_cert(self) -> Path:
        return self.root / "issuing" / "issuing.pem"

    @property
    def issuing_key(self) -> Path:
        return self.root / "issuing" / "issuing.key"

    @property
    def database(self) -> Path:
        return self.root / "issuing" / "issued.json"

    @property
    def bundle(self) -> Path:
        return self.root / "ca.pem"

    @property
    def crl(self) -> Path:
        return self.root / "crl.pem"


@dataclass(frozen=True)
class IssuingCa:
    paths: CaPaths
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    root: x509.Certificate


def read_passphrase(file: Path | None, env: str | None, *, required: bool = True) -> bytes | None:
    """The passphrase protecting a key, from a file or an environment variable (never a
    command-line argument, which other users can see in the process list)."""
    if file is not None and env is not None:
        raise ValueError("give either --passphrase-file or --passphrase-env, not both")
    if file is not None:
        try:
            mode = file.stat().st_mode
            text = file.read_text(encoding="utf-8").removesuffix("\n")
        except OSError as exc:
            raise ValueError(f"cannot read passphrase file {file}: {exc.strerror}") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            print(f"warning: {file} is readable by others; chmod 600 it", file=sys.stderr)
        value = text
    elif env is not None:
        value = os.environ.get(env, "")
        if not value:
            raise ValueError(f"the environment variable {env} is not set or empty")
    elif required:
        raise ValueError("this key is encrypted: give --passphrase-file or --passphrase-env")
    else:
        return None
    if len(value) < MIN_PASSPHRASE:
        raise ValueError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")
    return value.encode("utf-8")


def _encrypted(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, passphrase: bytes | None
) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _load_key(path: Path, passphrase: bytes | None) -> Any:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=passphrase)
    except OSError as exc:
        raise CertificateError(f"cannot read {path}: {exc.strerror}") from exc
    except TypeError as exc:
        if passphrase is not None:  # a passphrase for a key stored in clear (a demo CA)
            raise CertificateError(
                f"{path} is not encrypted: run without --passphrase-file/--passphrase-env"
            ) from exc
        raise CertificateError(
            f"{path} is encrypted: give its passphrase (--passphrase-file or --passphrase-env)"
        ) from exc
    except ValueError as exc:
        raise CertificateError(f"wrong passphrase for {path} (or not a PEM key)") from exc


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )


def init_ca(
    out: Path,
    passphrase: bytes,
    *,
    name: str = "Dublin network",
    root_years: int = 20,
    issuing_years: int = 5,
    now: datetime | None = None,
) -> CaPaths:
    """Create the root and issuing CAs, the bundle, the database and an empty CRL. Nothing
    is written until everything is generated; an existing CA is never overwritten."""
    paths = CaPaths(out)
    existing = [p for p in (paths.root_cert, paths.issuing_cert, paths.database) if p.exists()]
    if existing:
        raise FileExistsError(f"{existing[0]} exists: {out} already holds a CA")
    if not 1 <= issuing_years < root_years:
        raise ValueError("the issuing CA must live at least a year and less than the root")
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    root_key, issuing_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    root = create_ca_certificate(
        root_key,
        subject=_name(f"{name} root CA", f"{name} operator"),
        path_length=1,
        not_before=now - CLOCK_SKEW,
        not_after=now + timedelta(days=365 * root_years),
    )
    issuing = create_ca_certificate(
        issuing_key,
        subject=_name(f"{name} issuing CA", f"{name} operator"),
        issuer=(root, root_key),
        not_before=now - CLOCK_SKEW,
        not_after=now + timedelta(days=365 * issuing_years),
    )
    for folder in (out, out / "root", out / "issuing"):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(paths.root_key, _encrypted(root_key, passphrase), mode=_KEY_MODE, overwrite=False)
    write_certificate(paths.root_cert, root)
    atomic_write(
        paths.issuing_key, _encrypted(issuing_key, passphrase), mode=_KEY_MODE, overwrite=False
    )
    write_certificate(paths.issuing_cert, issuing)
    pem = serialization.Encoding.PEM
    atomic_write(paths.bundle, issuing.public_bytes(pem) + root.public_bytes(pem), mode=0o644)
    _save_db(paths, {"crl_number": 0, "certificates": []})
    ca = IssuingCa(paths, issuing, issuing_key, root)
    publish_crl(ca, now=now)
    return paths


def load_ca(ca_dir: Path, passphrase: bytes | None) -> IssuingCa:
    paths = CaPaths(ca_dir)
    if not paths.issuing_cert.exists():
        raise CertificateError(f"{ca_dir} holds no CA (run `gateway pki init --out {ca_dir}`)")
    key = _load_key(paths.issuing_key, passphrase)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{paths.issuing_key} is not an ECDSA key")
    cert = load_certificate(paths.issuing_cert)
    if cert.public_key() != key.public_key():
        raise CertificateError(f"{paths.issuing_key} does not belong to {paths.issuing_cert}")
    return IssuingCa(paths, cert, key, load_certificate(paths.root_cert))


def _load_db(paths: CaPaths) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(paths.database.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CertificateError(f"cannot read {paths.database}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise CertificateError(f"{paths.database} is damaged: {exc.msg}") from exc
    return data


def _save_db(paths: CaPaths, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(paths.database, text.encode("utf-8"), mode=_KEY_MODE)


def create_request(
    out: Path,
    authority: str | None,
    purpose: Purpose,
    *,
    sans: list[str] | None = None,
    passphrase: bytes | None = None,
    now: datetime | None = None,
) -> tuple[Path, Path]:
    """On the authority's side: a new key (it never leaves `out`) and its CSR. A second
    request for the same purpose (a renewal) gets a time-stamped name."""
    _check_purpose(purpose, authority)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path, csr_path = out / f"{purpose}.key", out / f"{purpose}.csr"
    if key_path.exists():
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
        key_path, csr_path = out / f"{purpose}-{stamp}.key", out / f"{purpose}-{stamp}.csr"
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if purpose == "health-encryption":
        key = rsa.generate_private_key(public_exponent=65537, key_size=HEALTH_KEY_BITS)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    subject, _ = _subject(purpose, authority)
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if purpose == "tls":
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_general_names(sans or [])), critical=False
        )
    csr = builder.sign(key, hashes.SHA256())
    atomic_write(key_path, _encrypted(key, passphrase), mode=_KEY_MODE, overwrite=False)
    atomic_write(csr_path, csr.public_bytes(serialization.Encoding.PEM), mode=_PUBLIC_MODE)
    return key_path, csr_path


def load_csr(path: Path) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(path.read_bytes())
    except OSError as exc:
        raise CertificateError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise CertificateError(f"{path} is not a PEM certificate signing request") from exc
    if not csr.is_signature_valid:
        raise CertificateError(
            f"{path}: the request is not signed by its own key (damaged or forged)"
        )
    return csr


def issue_from_csr(
    ca: IssuingCa,
    csr: x509.CertificateSigningRequest,
    purpose: Purpose,
    authority: str | None,
    *,
    sans: list[str] | None = None,
    days: int = 365,
    replaces: str | None = None,
    now: datetime | None = None,
) -> x509.Certificate:
    """Certify the CSR's public key for `purpose`; subject and extensions are ours."""
    _check_purpose(purpose, authority)
    public = csr.public_key()
    if purpose == "health-encryption":
        if not isinstance(public, rsa.RSAPublicKey) or public.key_size < 2048:
            raise CertificateError("a health-encryption request must hold an RSA key (>= 2048)")
    elif not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise CertificateError(f"a {purpose} request must hold an ECDSA P-256 key")
    db = _load_db(ca.paths)
    spki = _spki(public)
    for record in db["certificates"]:
        if record["spki"] == spki and (
            record["purpose"] != purpose or record["authority"] != authority
        ):
            raise CertificateError(
                f"this key is already certified for {record['authority']} {record['purpose']} "
                f"(serial {record['serial']}); one key, one purpose and owner"
            )
    names = sans
    if purpose == "tls" and not names:
        try:
            ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = [str(n.value) for n in ext]
        except x509.ExtensionNotFound:
            names = []
        if not names:
            raise CertificateError(
                "a TLS certificate needs names: give --san (or put them in the CSR)"
            )
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    if days < 1:
        raise ValueError("--days must be at least 1")
    not_after = min(now + timedelta(days=days), ca.certificate.not_valid_after_utc)
    subject, _ = _subject(purpose, authority)
    cert = issue_certificate(
        ca.certificate,
        ca.key,
        public,
        subject,
        purpose=purpose,
        sans=_general_names(names or []) if purpose == "tls" else (),
        not_before=now - CLOCK_SKEW,
        not_after=not_after,
    )
    db["certificates"].append(_issued_record(cert, authority, purpose, names or [], now, replaces))
    _save_db(ca.paths, db)
    return cert


def _issued_record(
    cert: x509.Certificate,
    authority: str | None,
    purpose: str,
    names: list[str],
    now: datetime,
    replaces: str | None = None,
) -> dict[str, Any]:
    """One certificate in the CA's issuance record (its serial in decimal, as it always was
    stored; shown in hex, see `serial_hex`)."""
    return {
        "serial": str(cert.serial_number),
        "fingerprint": fingerprint(cert),
        "spki": _spki(cert.public_key()),
        "subject": cert.subject.rfc4514_string(),
        "authority": authority,
        "purpose": purpose,
        "sans": names if purpose == "tls" else [],
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "issued_at": now.isoformat(),
        "replaces": replaces,
        "revoked_at": None,
        "revocation_reason": None,
    }


def serial_hex(serial: int | str) -> str:
    """A serial number as `openssl x509 -serial` and the CRL tools show it: hexadecimal."""
    return format(int(serial), "X")


def parse_serial(text: str) -> int:
    """A serial number given in hexadecimal (with or without `0x`, colons allowed)."""
    cleaned = text.strip().removeprefix("0x").removeprefix("0X").replace(":", "")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise ValueError(f"--serial {text!r} is not a hexadecimal serial number") from None


def adopt_ca(
    ca_dir: Path,
    certificate: Path,
    key: Path,
    issued: list[tuple[x509.Certificate, str | None, str]],
    crl_number: int,
) -> CaPaths:
    """Give a single self-signed CA (the demo network's, its key in clear) the operator's
    layout in `ca_dir`, so `gateway pki list / revoke / renew / crl` work on it: the CA as
    both root and issuer, and the issuance record of `issued` (certificate, authority,
    purpose) with the CRL number already published. Its existing bundle and CRL stay."""
    paths = CaPaths(ca_dir)
    if paths.database.exists():
        raise FileExistsError(f"{paths.database} exists: {ca_dir} already has the layout")
    for folder in (ca_dir / "root", ca_dir / "issuing"):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_certificate(paths.root_cert, load_certificate(certificate))
    write_certificate(paths.issuing_cert, load_certificate(certificate))
    atomic_write(paths.issuing_key, key.read_bytes(), mode=_KEY_MODE, overwrite=False)
    now = datetime.now(UTC).replace(microsecond=0)
    records = []
    for cert, authority, purpose in issued:
        try:
            names = [
                str(n.value)
                for n in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            ]
        except x509.ExtensionNotFound:
            names = []
        records.append(_issued_record(cert, authority, purpose, names, now))
    _save_db(paths, {"crl_number": crl_number, "certificates": records})
    return paths


def record_of(ca: IssuingCa, cert: x509.Certificate) -> dict[str, Any]:
    for record in _load_db(ca.paths)["certificates"]:
        if record["serial"] == str(cert.serial_number):
            return dict(record)
    raise LookupError(f"serial {cert.serial_number} was not issued by {ca.paths.root}")


def renew(
    ca: IssuingCa,
    csr: x509.CertificateSigningRequest,
    old: x509.Certificate,
    *,
    days: int = 365,
    now: datetime | None = None,
) -> x509.Certificate:
    """A successor for `old` (same authority, purpose and names) on a NEW key. The old
    certificate stays valid until revoked or expired: the overlap in which peers accept
    both (the directory must pin both meanwhile)."""
    record = record_of(ca, old)
    if _spki(csr.public_key()) == record["spki"]:
        raise CertificateError(
            "the renewal request holds the old key: renewing rotates the key, so create a new "
            "request (`gateway pki request`)"
        )
    return issue_from_csr(
        ca,
        csr,
        record["purpose"],
        record["authority"],
        sans=record["sans"] or None,
        days=days,
        replaces=record["serial"],
        now=now,
    )


def revoke(
    ca: IssuingCa, serial: int, reason: str = "unspecified", *, now: datetime | None = None
) -> x509.CertificateRevocationList:
    """Mark a certificate revoked and publish the CRL at once."""
    if reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}; one of {', '.join(sorted(REASONS))}")
    db = _load_db(ca.paths)
    record = next((r for r in db["certificates"] if r["serial"] == str(serial)), None)
    if record is None:
        raise LookupError(f"no certificate with serial {serial} was issued by this CA")
    if record["revoked_at"] is not None:
        raise ValueError(f"serial {serial} is already revoked (since {record['revoked_at']})")
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    record["revoked_at"] = now.isoformat()
    record["revocation_reason"] = reason
    _save_db(ca.paths, db)
    return publish_crl(ca, now=now)


def publish_crl(
    ca: IssuingCa, *, days: int = 7, out: Path | None = None, now: datetime | None = None
) -> x509.CertificateRevocationList:
    """Sign and write the CRL: every revoked serial with its reason, a CRL number one higher
    than the last, valid `days` (gateways refuse an expired CRL, so publish well before)."""
    if days < 1:
        raise ValueError("--days must be at least 1")
    db = _load_db(ca.paths)
    number = int(db.get("crl_number", 0)) + 1
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(now + timedelta(days=days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    for record in db["certificates"]:
        if record["revoked_at"] is None:
            continue
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(int(record["serial"]))
            .revocation_date(datetime.fromisoformat(record["revoked_at"]))
            .add_extension(x509.CRLReason(REASONS[record["revocation_reason"]]), critical=False)
            .build()
        )
    crl = builder.sign(ca.key, hashes.SHA256())
    db["crl_number"] = number
    atomic_write(
        out or ca.paths.crl, crl.public_bytes(serialization.Encoding.PEM), mode=_PUBLIC_MODE
    )
    _save_db(ca.paths, db)
    return crl


def issued(ca_dir: Path, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every certificate issued, with its state now: valid, expired or revoked."""
    now = now or datetime.now(UTC)
    out = []
    for record in _load_db(CaPaths(ca_dir))["certificates"]:
        not_after = datetime.fromisoformat(record["not_after"])
        state = "revoked" if record["revoked_at"] else "expired" if not_after < now else "valid"
        out.append(record | {"state": state, "days_left": (not_after - now).days})
    return out


def _check_purpose(purpose: str, authority: str | None) -> None:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; one of {', '.join(PURPOSES)}")
    if purpose == "directory":
        if authority is not None:
            raise ValueError("the directory publisher certificate belongs to no authority")
    elif authority is None or not AUTHORITY_CODE.match(authority):
        raise ValueError(f"a {purpose} certificate needs --authority CODE (e.g. BE-DU)")
    elif authority[:2] not in MEMBER_STATES:
        raise ValueError(f"{authority}: {authority[:2]!r} is not a Member State's Eurodac letters")


def _subject(purpose: str, authority: str | None) -> tuple[x509.Name, str]:
    if purpose == "directory" or authority is None:
        return _name("Dublin network directory publisher", "Dublin network operator"), ""
    unit = f"Dublin unit of {MEMBER_STATES[authority[:2]][0]}"
    cn = {
        "tls": authority,
        "signing": f"{authority} signing",
        "health-encryption": f"{authority} health practitioners",
    }[purpose]
    return _name(cn, unit), unit


def _general_names(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _spki(public: Any) -> str:
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def rehearsable(network: DemoNetwork) -> CaPaths:
    """The demo network's CA in the operator's layout (`adopt_ca`): a revocation, a renewal
    or a fresh CRL can be rehearsed on it with the operator's own commands."""
    issued: list[tuple[x509.Certificate, str | None, str]] = [
        (load_certificate(network.publisher_cert), None, "directory")
    ]
    for code, files in network.authorities.items():
        issued += [
            (load_certificate(files.tls_cert), code, "tls"),
            (load_certificate(files.signing_cert), code, "signing"),
            (load_certificate(files.health_cert), code, "health-encryption"),
        ]
    return adopt_ca(network.ca_cert.parent, network.ca_cert, network.ca_key, issued, 1)
