"""What every part of a running gateway shares: configuration, the directory snapshot, the
signing identity, the store and the one clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.config import Config
from gateway.core.directory import Authority, Directory
from gateway.pki.certs import CertificateError, fingerprint, load_certificate, load_private_key
from gateway.pki.directory_file import load_directory
from gateway.store.store import Checkpointer, Store
from gateway.xml.signature import Signer


def utc_now() -> datetime:
    return datetime.now(UTC)


class Clock:
    """The one clock: the system's, plus an offset that only demonstrations and tests move."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class GatewayContext:
    config: Config
    directory: Directory
    signer: Signer
    store: Store
    clock: Callable[[], datetime] = utc_now
    wake_delivery: asyncio.Event = field(default_factory=asyncio.Event)
    log: structlog.stdlib.BoundLogger = field(default_factory=lambda: structlog.get_logger())

    @property
    def local(self) -> Authority:
        auth = self.directory.get(self.config.authority)
        if auth is None:
            raise CertificateError(f"{self.config.authority} is not in the directory")
        return auth

    def signer_authority(self, fingerprint: str) -> str | None:
        auth = self.directory.by_signing_fingerprint(fingerprint)
        return None if auth is None else auth.code


def load_signer_files(cert_path: Path, key_path: Path) -> Signer:
    key = load_private_key(key_path)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise CertificateError(f"{key_path}: the signing key must be ECDSA P-256")
    cert = load_certificate(cert_path)
    if cert.public_key() != key.public_key():
        raise CertificateError(f"{cert_path} does not belong to the key {key_path}")
    return Signer(key, cert)


def load_signer(config: Config) -> Signer:
    return load_signer_files(config.signing_cert, config.signing_key)


async def open_context(config: Config) -> GatewayContext:
    """Load and check everything a gateway needs before it listens; fail with a clear error."""
    directory = load_directory(config.directory)
    if directory.get(config.authority) is None:
        raise CertificateError(
            f"authority {config.authority} (setting 'authority') is not in {config.directory}"
        )
    signer = load_signer(config)
    own = directory.get(config.authority)
    assert own is not None
    if fingerprint(signer.certificate) not in own.signing_fingerprints:
        raise CertificateError(
            f"{config.signing_cert} is not pinned as a signing certificate of {config.authority}"
            " in the directory; peers would refuse our signatures"
        )
    store = await Store.open(config.database_url)
    store.checkpointer = Checkpointer(
        authority=config.authority,
        every=config.register.checkpoint_every,
        signer_pem=signer.certificate.public_bytes(serialization.Encoding.PEM).decode(),
        sign=lambda payload: signer.key.sign(payload, ec.ECDSA(hashes.SHA256())),
    )
    return GatewayContext(
        config=config,
        directory=directory,
        signer=signer,
        store=store,
        clock=Clock(timedelta(seconds=config.clock.offset_seconds)),
    )
