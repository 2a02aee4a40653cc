"""What a gateway trusts, and changing it while running (Art. 41: the notified authorities).

A `TrustState` is one consistent snapshot of the network CA bundle, the CRL, the signed
directory and this gateway's own TLS and signing certificates, each checked against the
others: our certificates must be issued by the network CA for their purpose, unrevoked, and
pinned for us in the directory; the directory must be signed by the operator's publisher
certificate and not older than the one we accepted before.

`TrustManager` reloads that snapshot on SIGHUP, on an administrator's request and when one
of the files changes. A reload either applies completely (new connections use the new TLS
contexts at once, kept-alive connections are re-checked per request, deliveries re-pin) or
not at all, and every reload, applied or refused, is a register entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.config import Config, ConfigError
from gateway.core.directory import Authority, Directory, DirectoryError
from gateway.core.pins import PinSnapshot
from gateway.core.policy import Reason, Rejection
from gateway.core.register import Event
from gateway.pki.anchors import (
    TLS_PURPOSES,
    Revocations,
    TrustAnchors,
    describe,
    extended_key_usages,
)
from gateway.pki.certs import CertificateError, fingerprint, load_certificate, load_private_key
from gateway.pki.purposes import DOCUMENT_SIGNING
from gateway.pki.signed_directory import SignedDirectory, load_signed_directory
from gateway.pki.tls import client_context, server_context
from gateway.store.records import Checkpointer, TrustMark
from gateway.store.store import Store
from gateway.xml.signature import Signer

DIRECTORY_MARK = "directory"
EXPIRY_LOG_INTERVAL = 3600.0


class TrustError(ValueError):
    """Trust material that cannot be used; the message says which file and why."""


def trust_paths(config: Config) -> dict[str, Path | None]:
    return {
        "ca": config.ca_cert,
        "crl": config.crl,
        "directory": config.directory,
        "tls_cert": config.tls_cert,
        "tls_key": config.tls_key,
        "signing_cert": config.signing_cert,
        "signing_key": config.signing_key,
    }


def file_digests(config: Config) -> dict[str, str]:
    """SHA-256 of each trust file as it is now ("missing" when absent): what the watcher
    compares, and what a reload records."""
    out: dict[str, str] = {}
    for name, path in trust_paths(config).items():
        if path is None:
            out[name] = "not-configured"
            continue
        try:
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            out[name] = "missing"
    return out


@dataclass(frozen=True)
class TrustState:
    anchors: TrustAnchors
    revocations: Revocations | None
    published: SignedDirectory
    tls_certificate: x509.Certificate
    signer: Signer
    digests: Mapping[str, str] = field(default_factory=dict)

    @property
    def directory(self) -> Directory:
        return self.published.directory

    @property
    def pins(self) -> PinSnapshot:
        """This directory version's signing pins, as the store keeps them (gateway.core.pins)."""
        return PinSnapshot.of(self.directory, self.published.published)

    def peer_refusal(self, der: bytes | None) -> str | None:
        """Why a TLS peer's certificate is refused now (revoked since the connection was made,
        say), or None. Pinning is checked separately, against the directory."""
        if der is None or self.revocations is None:
            return None
        cert = x509.load_der_x509_certificate(der)
        if self.revocations.is_revoked(cert):
            return f"the TLS certificate {describe(cert)} is revoked"
        return None

    def signing_check(self, at: datetime) -> Callable[[x509.Certificate], None]:
        """The check a peer's pinned signing certificate passes before its signature counts."""

        def check(cert: x509.Certificate) -> None:
            if self.revocations is not None and self.revocations.is_revoked(cert):
                raise Rejection(
                    Reason.CERTIFICATE_REVOKED,
                    f"signing certificate {fingerprint(cert)[:16]}... is revoked",
                )
            if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
                raise Rejection(
                    Reason.CERTIFICATE_EXPIRED,
                    f"signing certificate {fingerprint(cert)[:16]}... is not valid now",
                )

        return check

    def summary(self) -> dict[str, Any]:
        """What the register and the admin API say of this state (no secrets)."""
        return {
            "directory_version": self.directory.version,
            "directory_sha256": self.published.sha256,
            "directory_published": self.published.published.isoformat(),
            "crl_number": None if self.revocations is None else self.revocations.number,
            "tls_certificate": fingerprint(self.tls_certificate),
            "signing_certificate": fingerprint(self.signer.certificate),
        }


def load_trust(config: Config, at: datetime, mark: TrustMark | None = None) -> TrustState:
    """Read and cross-check every trust file; raise `TrustError` naming the first problem."""
    digests = file_digests(config)
    try:
        anchors = TrustAnchors.load(config.ca_cert)
        revocations = None if config.crl is None else Revocations.load(config.crl, anchors, at)
        published = load_signed_directory(config.directory, anchors, at, revocations)
        _check_not_older(published, mark, config.directory)
        own = published.directory.get(config.authority)
        if own is None:
            raise TrustError(
                f"authority {config.authority} (setting 'authority') is not in the directory "
                f"{config.directory}"
            )
        tls_cert = _own_tls(config, anchors, revocations, own, at)
        signer = _own_signer(config, anchors, revocations, own, at)
    except (CertificateError, DirectoryError, ConfigError) as exc:
        raise TrustError(str(exc)) from exc
    return TrustState(anchors, revocations, published, tls_cert, signer, digests)


def _check_not_older(published: SignedDirectory, mark: TrustMark | None, path: Path) -> None:
    if mark is None:
        return
    if published.version < mark.version:
        raise TrustError(
            f"directory {path} has version {published.version}, older than version "
            f"{mark.version} this gateway accepted on {mark.accepted_at.isoformat()}; "
            "an older directory is refused (it may re-admit revoked authorities)"
        )
    if published.version == mark.version and published.sha256 != mark.sha256:
        raise TrustError(
            f"directory {path} has version {published.version}, which this gateway already "
            "accepted with other content; the operator must publish changes as a new version"
        )


def _own_tls(
    config: Config,
    anchors: TrustAnchors,
    revocations: Revocations | None,
    own: Authority,
    at: datetime,
) -> x509.Certificate:
    cert = load_certificate(config.tls_cert)
    key = load_private_key(config.tls_key, config.tls_key_password())
    if cert.public_key() != key.public_key():
        raise CertificateError(
            f"{config.tls_cert} does not belong to the key {config.tls_key} (wrong key for "
            "certificate); install the matching pair"
        )
    anchors.check(cert, at, what=f"TLS certificate {config.tls_cert}")
    usages = extended_key_usages(cert)
    if not all(p in usages for p in TLS_PURPOSES):
        raise CertificateError(
            f"{config.tls_cert} is not a TLS certificate (needs serverAuth and clientAuth)"
        )
    if revocations is not None:
        revocations.check(cert, f"our TLS certificate {config.tls_cert}")
    if fingerprint(cert) not in own.tls_fingerprints:
        raise CertificateError(
            f"{config.tls_cert} is not pinned as a TLS certificate of {config.authority} in the "
            "directory; peers would refuse our connections (ask the operator to publish it)"
        )
    return cert


def _own_signer(
    config: Config,
    anchors: TrustAnchors,
    revocations: Revocations | None,
    own: Authority,
    at: datetime,
) -> Signer:
    signer = load_signer_files(
        config.signing_cert, config.signing_key, config.signing_key_password()
    )
    cert = signer.certificate
    anchors.check(
        cert, at, purpose=DOCUMENT_SIGNING, what=f"signing certificate {config.signing_cert}"
    )
    if revocations is not None:
        revocations.check(cert, f"our signing certificate {config.signing_cert}")
    if fingerprint(cert) not in own.signing_fingerprints:
        raise CertificateError(
            f"{config.signing_cert} is not pinned as a signing certificate of {config.authority}"
            " in the directory; peers would refuse our signatures"
        )
    return signer


def load_signer_files(cert_path: Path, key_path: Path, password: bytes | None = None) -> Signer:
    """A signing identity from its files: an ECDSA P-256 key and the certificate of that key."""
    key = load_private_key(key_path, password)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise CertificateError(f"{key_path}: the signing key must be ECDSA P-256")
    cert = load_certificate(cert_path)
    if cert.public_key() != key.public_key():
        raise CertificateError(
            f"{cert_path} does not belong to the key {key_path} (wrong key for certificate); "
            "install the matching pair"
        )
    return Signer(key, cert)


def checkpointer_for(config: Config, signer: Signer) -> Checkpointer:
    return Checkpointer(
        authority=config.authority,
        every=config.register.checkpoint_every,
        signer_pem=signer.certificate.public_bytes(serialization.Encoding.PEM).decode(),
        signer_fingerprint=fingerprint(signer.certificate),
        sign=lambda payload: signer.key.sign(payload, ec.ECDSA(hashes.SHA256())),
    )


@dataclass(frozen=True)
class CertificateStatus:
    """One certificate the gateway depends on, and how long it has left."""

    owner: str
    purpose: str
    certificate: x509.Certificate
    status: str
    """ok, expiring (within the warning window), expired, not-yet-valid or revoked."""
    seconds_left: float

    def to_dict(self) -> dict[str, Any]:
        cert = self.certificate
        return {
            "owner": self.owner,
            "purpose": self.purpose,
            "subject": cert.subject.rfc4514_string(),
            "fingerprint": fingerprint(cert),
            "serial": format(cert.serial_number, "x"),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "days_left": round(self.seconds_left / 86400, 2),
            "status": self.status,
        }


def certificate_report(
    state: TrustState, authority: str, now: datetime, window_days: int
) -> list[CertificateStatus]:
    """Every certificate this gateway relies on: ours, the network CAs, the directory
    publisher and the health practitioners' encryption certificates of the directory."""
    items: list[tuple[str, str, x509.Certificate]] = [
        (authority, "tls", state.tls_certificate),
        (authority, "signing", state.signer.certificate),
        ("operator", "directory", state.published.publisher),
    ]
    items += [("network", "ca", cert) for cert in state.anchors.certificates]
    for auth in sorted(state.directory.authorities.values(), key=lambda a: a.code):
        for pem in auth.health_encryption_certificates:
            try:
                cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
            except ValueError:
                continue
            items.append((auth.code, "health-encryption", cert))
    out: list[CertificateStatus] = []
    for owner, purpose, cert in items:
        left = (cert.not_valid_after_utc - now).total_seconds()
        if state.revocations is not None and state.revocations.is_revoked(cert):
            status = "revoked"
        elif now < cert.not_valid_before_utc:
            status = "not-yet-valid"
        elif left <= 0:
            status = "expired"
        elif left <= window_days * 86400:
            status = "expiring"
        else:
            status = "ok"
        out.append(CertificateStatus(owner, purpose, cert, status, left))
    return out


def changes_between(old: TrustState, new: TrustState) -> list[str]:
    """What a reload changes, in words for the register and the logs."""
    out: list[str] = []
    if old.directory.version != new.directory.version:
        out.append(f"directory version {old.directory.version} -> {new.directory.version}")
    old_crl = None if old.revocations is None else old.revocations.number
    new_crl = None if new.revocations is None else new.revocations.number
    if old_crl != new_crl:
        out.append(f"CRL number {old_crl} -> {new_crl}")
    if fingerprint(old.tls_certificate) != fingerprint(new.tls_certificate):
        out.append("own TLS certificate renewed")
    if fingerprint(old.signer.certificate) != fingerprint(new.signer.certificate):
        out.append("own signing certificate renewed")
    if [fingerprint(c) for c in old.anchors.certificates] != [
        fingerprint(c) for c in new.anchors.certificates
    ]:
        out.append("network CA bundle changed")
    return out


@dataclass(frozen=True)
class ReloadResult:
    applied: bool
    trigger: str
    changes: list[str]
    error: str | None
    register_sequence: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "trigger": self.trigger,
            "changes": self.changes,
            "error": self.error,
            "register_sequence": self.register_sequence,
        }


class TrustManager:
    """Holds the current `TrustState` of a running gateway and replaces it safely.

    The listening socket keeps one TLS context whose SNI callback hands every new handshake
    to the current context, so a reload needs no restart and drops no connection.
    Listeners (the deliverer, say) are told after a reload applied.
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        state: TrustState,
        clock: Callable[[], datetime],
        log: Any,
    ) -> None:
        self.config = config
        self.store = store
        self.state = state
        self.clock = clock
        self.log = log
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[TrustState], None]] = []
        self._refused_digests: Mapping[str, str] | None = None
        # Built by base_server_context when a listener is opened (not every context has one).
        self.server_context: ssl.SSLContext | None = None
        self.client_context = client_context(config)
        self.reloads = 0
        self.refusals = 0

    def base_server_context(self, on_handshake_failure: Callable[[str], None]) -> ssl.SSLContext:
        """The context the listening socket is created with: it audits refused handshakes and
        switches each handshake to the context of the current trust state."""
        base = server_context(self.config, on_handshake_failure)

        def switch(ssl_object: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
            current = self.server_context
            if current is not None and current is not base:
                ssl_object.context = current

        base.sni_callback = switch
        self.server_context = base
        return base

    def on_change(self, listener: Callable[[TrustState], None]) -> None:
        self._listeners.append(listener)

    async def reload(
        self, trigger: str, actor: str | None = None, principal: str | None = None
    ) -> ReloadResult:
        """Load the files again and apply them if they hold together; record the outcome
        (naming `principal`, the named user who asked, if one did)."""
        async with self._lock:
            mark = await self.store.trust.mark(DIRECTORY_MARK)
            now = self.clock()
            try:
                new = await asyncio.to_thread(load_trust, self.config, now, mark)
                server = await asyncio.to_thread(server_context, self.config)
                client = await asyncio.to_thread(client_context, self.config)
            except (TrustError, ConfigError, ssl.SSLError, OSError) as exc:
                return await self._refused(trigger, actor, principal, str(exc))
            changes = changes_between(self.state, new)
            async with self.store.transaction() as tx:
                entry = await tx.register.append(
                    time=now,
                    event=Event.TRUST_RELOADED,
                    direction="in",
                    status="applied",
                    details={"trigger": trigger, "actor": actor, "changes": changes}
                    | new.summary(),
                    principal=principal,
                )
                if mark is None or mark.version != new.directory.version:
                    await tx.trust.set_mark(
                        DIRECTORY_MARK, new.directory.version, new.published.sha256, now
                    )
                await tx.trust.record_pins(new.pins)
            self.state = new
            self.server_context = server
            self.client_context = client
            self._refused_digests = None
            self.reloads += 1
            for listener in self._listeners:
                listener(new)
            self.warn_expiring()
            self.log.info(
                "trust reloaded",
                trigger=trigger,
                changes=changes,
                directory_version=new.directory.version,
                register_seq=entry.sequence,
            )
            return ReloadResult(True, trigger, changes, None, entry.sequence)

    async def _refused(
        self, trigger: str, actor: str | None, principal: str | None, error: str
    ) -> ReloadResult:
        self.refusals += 1
        self._refused_digests = await asyncio.to_thread(file_digests, self.config)
        async with self.store.transaction() as tx:
            entry = await tx.register.append(
                time=self.clock(),
                event=Event.TRUST_RELOAD_REFUSED,
                direction="in",
                status="refused",
                details={"trigger": trigger, "actor": actor, "text": error[:500]},
                principal=principal,
            )
        self.log.error(
            "trust reload refused; the previous directory, CRL and certificates stay in force",
            trigger=trigger,
            error=error,
            register_seq=entry.sequence,
        )
        return ReloadResult(False, trigger, [], error, entry.sequence)

    async def watch(self) -> None:
        """Reload when a trust file changes (checked every `trust.reload_check_seconds`). A
        refused set of files is not retried until one of them changes again."""
        interval = self.config.trust.reload_check_seconds
        self.warn_expiring()
        last_warning = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(interval)
            if asyncio.get_running_loop().time() - last_warning > EXPIRY_LOG_INTERVAL:
                self.warn_expiring()
                last_warning = asyncio.get_running_loop().time()
            try:
                digests = await asyncio.to_thread(file_digests, self.config)
                if digests != dict(self.state.digests) and digests != self._refused_digests:
                    await self.reload("file-change")
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("trust file watch failed; retrying")

    def warn_expiring(self) -> list[CertificateStatus]:
        """Log every certificate that is expiring, expired or revoked (at start, after each
        reload and hourly), so an operator's log alerting sees it weeks ahead."""
        report = certificate_report(
            self.state, self.config.authority, self.clock(), self.config.trust.expiry_warning_days
        )
        bad = [c for c in report if c.status != "ok"]
        for item in bad:
            self.log.warning(
                "certificate needs attention",
                owner=item.owner,
                purpose=item.purpose,
                status=item.status,
                fingerprint=fingerprint(item.certificate),
                not_after=item.certificate.not_valid_after_utc.isoformat(),
                days_left=round(item.seconds_left / 86400, 1),
            )
        return bad

    def install_sighup(
        self, loop: asyncio.AbstractEventLoop, *also: Callable[[str], object]
    ) -> None:
        """Reload on SIGHUP; `also` are called first with the trigger (other files the same
        signal reloads, such as the API's tokens file)."""
        tasks: set[asyncio.Task[ReloadResult]] = set()

        def on_hup() -> None:
            for reload in also:
                reload("SIGHUP")
            task = loop.create_task(self.reload("SIGHUP"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, on_hup)
