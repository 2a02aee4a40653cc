"""`gateway doctor --config FILE`: everything a gateway needs, checked one by one, each problem
said with how to fix it: configuration, key files, certificate chains and dates, the CRL,
the signed directory and our pins in it, and every peer's reachability and TLS identity.

Unlike start-up (which stops at the first problem), the doctor goes on after a failure
wherever the later checks still make sense, so one run lists everything that is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from gateway.config import Config, ConfigError, load_config
from gateway.core.directory import Authority, DirectoryError
from gateway.pki.anchors import Revocations, TrustAnchors, describe, extended_key_usages
from gateway.pki.certs import (
    CertificateError,
    fingerprint,
    load_certificate,
    load_private_key,
)
from gateway.pki.purposes import DOCUMENT_SIGNING
from gateway.pki.signed_directory import SignedDirectory, load_signed_directory
from gateway.pki.tls import client_context
from gateway.service.peers import Outcome, check_peer
from gateway.service.peers import computing_differences as computing_differences

Status = Literal["ok", "warning", "error"]
CRL_WARNING = timedelta(days=2)


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    message: str
    fix: str | None = None


class _Report:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def ok(self, check: str, message: str) -> None:
        self.findings.append(Finding(check, "ok", message))

    def warn(self, check: str, message: str, fix: str) -> None:
        self.findings.append(Finding(check, "warning", message, fix))

    def error(self, check: str, message: str, fix: str) -> None:
        self.findings.append(Finding(check, "error", message, fix))


async def diagnose(
    config_path: Path,
    *,
    call_peers: bool = True,
    peer_seconds: float = 5.0,
    expiry_warning_days: int | None = None,
    now: datetime | None = None,
) -> list[Finding]:
    report = _Report()
    now = now or datetime.now(UTC)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        report.error("configuration", str(exc), f"correct {config_path} and run doctor again")
        return report.findings
    report.ok("configuration", f"{config_path} is valid for {config.authority}")
    window = timedelta(days=expiry_warning_days or config.trust.expiry_warning_days)
    _files(report, config)
    anchors = _anchors(report, config, now, window)
    crl = _crl(report, config, anchors, now) if anchors is not None else None
    tls_ok = False
    if anchors is not None:
        tls_ok = _own_certificate(
            report, "TLS certificate", config.tls_cert, config.tls_key,
            config.tls_key_password, anchors, crl, now, window, None,
        )  # fmt: skip
        _own_certificate(
            report, "signing certificate", config.signing_cert, config.signing_key,
            config.signing_key_password, anchors, crl, now, window, DOCUMENT_SIGNING,
        )  # fmt: skip
    published = _directory(report, config, anchors, crl, now, window)
    if not call_peers:
        return report.findings
    if published is not None and tls_ok:
        peers = [a for a in published.directory.authorities.values() if a.code != config.authority]
        await asyncio.gather(*(_peer(report, config, peer, peer_seconds) for peer in peers))
    elif published is not None:
        report.warn(
            "peers",
            "peer checks skipped: our own TLS certificate or key is not usable",
            "fix the TLS certificate problems above first",
        )
    return report.findings


def _files(report: _Report, config: Config) -> None:
    paths: list[tuple[str, Path | None, bool]] = [
        ("CA bundle", config.ca_cert, False),
        ("CRL", config.crl, False),
        ("directory", config.directory, False),
        ("TLS certificate", config.tls_cert, False),
        ("TLS key", config.tls_key, True),
        ("signing certificate", config.signing_cert, False),
        ("signing key", config.signing_key, True),
        ("API tokens file", config.api.tokens_file, True),
        ("API TLS certificate", config.api.tls.cert, False),
        ("API TLS key", config.api.tls.key, True),
        ("API client CA", config.api.tls.client_ca, False),
    ]
    for what, path, secret in paths:
        if path is None:
            continue
        try:
            mode = path.stat().st_mode
            path.open("rb").close()
        except OSError as exc:
            report.error(
                f"file: {what}",
                f"{path} cannot be read: {exc.strerror}",
                f"put the {what} there or correct its path in the configuration",
            )
            continue
        if secret and mode & (stat.S_IRWXG | stat.S_IRWXO):
            report.warn(
                f"file: {what}",
                f"{path} can be read by other users (mode {stat.S_IMODE(mode):o})",
                f"chmod 600 {path}",
            )


def _dates(
    report: _Report, check: str, cert: x509.Certificate, now: datetime, window: timedelta
) -> bool:
    if now < cert.not_valid_before_utc:
        report.error(
            check,
            f"{describe(cert)} is not valid before {cert.not_valid_before_utc.isoformat()}",
            "check this machine's clock (and time zone); otherwise wait or reissue",
        )
        return False
    if now > cert.not_valid_after_utc:
        report.error(
            check,
            f"{describe(cert)} expired at {cert.not_valid_after_utc.isoformat()}",
            "ask the network operator to renew it (`gateway pki request` here, then "
            "`gateway pki renew` at the operator) and install the new certificate and key",
        )
        return False
    left = cert.not_valid_after_utc - now
    if left < window:
        report.warn(
            check,
            f"{describe(cert)} expires in {left.days} days ({cert.not_valid_after_utc.date()})",
            "renew it now, with an overlap (docs/operator.md, section 4)",
        )
    return True


def _anchors(
    report: _Report, config: Config, now: datetime, window: timedelta
) -> TrustAnchors | None:
    try:
        anchors = TrustAnchors.load(config.ca_cert)
    except CertificateError as exc:
        report.error(
            "CA bundle", str(exc), "install the network's ca.pem published by the operator"
        )
        return None
    good = all(_dates(report, "CA bundle", cert, now, window) for cert in anchors.certificates)
    if good:
        report.ok("CA bundle", f"{len(anchors.certificates)} CA certificate(s) in force")
    return anchors


def _crl(
    report: _Report, config: Config, anchors: TrustAnchors, now: datetime
) -> Revocations | None:
    if config.crl is None:
        report.warn(
            "CRL",
            "no CRL configured: revoked peers would still be accepted",
            "set tls.crl to the network CA's crl.pem",
        )
        return None
    try:
        crl = Revocations.load(config.crl, anchors, now)
    except CertificateError as exc:
        report.error("CRL", str(exc), "install a fresh CRL from the operator (`gateway pki crl`)")
        return None
    if crl.next_update is not None and crl.next_update - now < CRL_WARNING:
        report.warn(
            "CRL",
            f"the CRL must be replaced by {crl.next_update.isoformat()}",
            "ask the operator for a fresh CRL before then; an expired CRL stops all exchanges",
        )
    else:
        report.ok("CRL", f"CRL number {crl.number}, {len(crl.serials)} revoked")
    return crl


def _own_certificate(
    report: _Report,
    check: str,
    cert_path: Path,
    key_path: Path,
    password: Callable[[], bytes | None],
    anchors: TrustAnchors,
    crl: Revocations | None,
    now: datetime,
    window: timedelta,
    purpose: ObjectIdentifier | None,
) -> bool:
    try:
        cert = load_certificate(cert_path)
        key = load_private_key(key_path, password())
    except (CertificateError, ConfigError) as exc:
        report.error(check, str(exc), "install a readable certificate and key (PEM)")
        return False
    good = True
    if cert.public_key() != key.public_key():
        report.error(
            check,
            f"wrong key for certificate: {key_path} does not belong to {cert_path}",
            "install the key that matches the certificate (or the certificate issued for "
            "this key); keep both files of one pair",
        )
        good = False
    if anchors.issuer_of(cert) is None:
        report.error(
            check,
            f"unknown CA: {describe(cert)} was not issued by a CA of {anchors_name(anchors)} "
            f"(issuer {cert.issuer.rfc4514_string()})",
            "use a certificate issued by the network operator's CA, or install the network's "
            "current ca.pem",
        )
        good = False
    good = _dates(report, check, cert, now, window) and good
    usages = extended_key_usages(cert)
    wanted = (
        [purpose]
        if purpose is not None
        else [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    if not all(w in usages for w in wanted):
        report.error(
            check,
            f"{describe(cert)} is not issued for this purpose",
            "request a certificate with the right --purpose (docs/operator.md)",
        )
        good = False
    if crl is not None and crl.is_revoked(cert):
        report.error(
            check,
            f"{describe(cert)} is revoked",
            "request and install a new certificate; the operator must pin it",
        )
        good = False
    if good:
        report.ok(check, f"{describe(cert)} valid until {cert.not_valid_after_utc.date()}")
    return good


def anchors_name(anchors: TrustAnchors) -> str:
    return ", ".join(c.subject.rfc4514_string() for c in anchors.certificates)


def _directory(
    report: _Report,
    config: Config,
    anchors: TrustAnchors | None,
    crl: Revocations | None,
    now: datetime,
    window: timedelta,
) -> SignedDirectory | None:
    if anchors is None:
        return None
    try:
        published = load_signed_directory(config.directory, anchors, now, crl)
    except DirectoryError as exc:
        report.error(
            "directory",
            str(exc),
            "install the directory.xml the operator published (it must verify with ca.pem)",
        )
        return None
    own = published.directory.get(config.authority)
    if own is None:
        report.error(
            "directory",
            f"{config.authority} is not in the directory (version {published.version})",
            "check the setting 'authority', or ask the operator to add this authority",
        )
        return published
    report.ok("directory", f"version {published.version}, {len(published.directory.authorities)}"
              " authorities, signature verified")  # fmt: skip
    for what, path, pins in (
        ("TLS", config.tls_cert, own.tls_fingerprints),
        ("signing", config.signing_cert, own.signing_fingerprints),
    ):
        try:
            fp = fingerprint(load_certificate(path))
        except CertificateError:
            continue
        if fp not in pins:
            report.error(
                "directory",
                f"our {what} certificate {fp[:16]}... is not pinned for {config.authority}",
                "send the certificate's fingerprint to the operator to publish it, or install "
                "the certificate the directory pins",
            )
    for auth in published.directory.authorities.values():
        for pem in auth.health_encryption_certificates:
            try:
                cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
            except ValueError:
                report.error("directory", f"{auth.code}: an unreadable health certificate",
                             "ask the operator to correct the directory")  # fmt: skip
                continue
            _dates(report, f"health encryption certificate of {auth.code}", cert, now, window)
    return published


_PEER_FIXES: dict[Outcome, str] = {
    "unverified": "the peer's certificate is not from the network CA (unknown CA), expired, "
    "revoked or not issued for this address: tell the peer's administrators, or update ca.pem "
    "/ crl.pem here, or correct the endpoint in the directory",
    "unreachable": "check that the peer is up, the endpoint in the directory, and firewalls "
    "between",
    "unpinned": "the peer may run a renewed certificate the directory does not pin yet (ask "
    "the operator), or something else answers at that address",
    "no-health": "the peer's gateway may be overloaded or misconfigured; tell its administrators",
    "wrong-authority": "the directory's endpoint points at another gateway: ask the operator",
    "computes-differently": "both gateways of a case must count the same days: upgrade the "
    "gateway that runs the older release (or both to the same one)",
}
"""What to do about each thing a peer check can find (gateway.service.peers)."""


async def _peer(report: _Report, config: Config, peer: Authority, seconds: float) -> None:
    check = f"peer {peer.code}"
    try:
        context = client_context(config)
    except (ssl.SSLError, ConfigError, OSError) as exc:
        report.error(check, f"cannot build our TLS client: {exc}", "fix our TLS key first")
        return
    found = await check_peer(peer, context, seconds)
    if found.outcome == "ok":
        report.ok(check, found.text)
    elif found.outcome == "computes-differently":
        report.warn(check, found.text, _PEER_FIXES[found.outcome])
    else:
        report.error(check, found.text, _PEER_FIXES[found.outcome])


_MARK = {"ok": "OK  ", "warning": "WARN", "error": "FAIL"}


def run(args: argparse.Namespace) -> int:
    findings = asyncio.run(diagnose(args.config, peer_seconds=args.timeout))
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        for f in findings:
            print(f"{_MARK[f.status]} {f.check}: {f.message}")
            if f.fix:
                print(f"     fix: {f.fix}")
        errors = sum(f.status == "error" for f in findings)
        warnings = sum(f.status == "warning" for f in findings)
        print(f"\n{errors} error(s), {warnings} warning(s)")
    return 1 if any(f.status == "error" for f in findings) else 0


def add_doctor_command(sub: Any) -> None:
    doctor = sub.add_parser(
        "doctor", help="check configuration, keys, certificates, directory and every peer"
    )
    doctor.add_argument("--config", type=Path, required=True, help="gateway TOML file")
    doctor.add_argument("--timeout", type=float, default=5.0, help="per peer, in seconds")
    doctor.add_argument("--json", action="store_true", help="findings as JSON")
    doctor.set_defaults(func=run)
