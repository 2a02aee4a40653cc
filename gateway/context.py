"""What every part of a running gateway shares: configuration, the trust state (directory,
CRL, signing identity; replaced by reloads), the store and the one clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from gateway.config import Config
from gateway.core.directory import Authority, Directory
from gateway.metrics import GatewayMetrics
from gateway.pki.certs import CertificateError
from gateway.service.principals import Principals
from gateway.service.trust import (
    DIRECTORY_MARK,
    TrustManager,
    TrustState,
    checkpointer_for,
    load_signer_files,
    load_trust,
)
from gateway.store.records import OutboxItem
from gateway.store.store import Store
from gateway.xml.signature import Signer


def utc_now() -> datetime:
    return datetime.now(UTC)


class Clock:
    """The one clock: the system's, plus an offset that only demonstrations and tests move."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


class Handoff(Protocol):
    """How a submission reaches the delivery worker without a claim: `reserve` a place before
    the submission's transaction (the lease its outbox row is stored with, or None: the
    worker is full or stopped, and the row waits to be claimed), then `hand_over` the stored
    item once the transaction is durable, or `release` the place if it was not."""

    def reserve(self) -> timedelta | None: ...

    def release(self) -> None: ...

    def hand_over(self, item: OutboxItem) -> None: ...


@dataclass
class GatewayContext:
    config: Config
    trust: TrustManager
    store: Store
    principals: Principals
    """Who may call the internal API (named users, re-read when their file changes)."""
    clock: Callable[[], datetime] = utc_now
    wake_delivery: asyncio.Event = field(default_factory=asyncio.Event)
    handoff: Handoff | None = None
    """The running delivery worker, which takes fresh submissions directly (no claim)."""
    log: structlog.stdlib.BoundLogger = field(default_factory=lambda: structlog.get_logger())
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)

    @property
    def directory(self) -> Directory:
        """The directory in force now; a reload replaces it between two requests."""
        return self.trust.state.directory

    @property
    def signer(self) -> Signer:
        return self.trust.state.signer

    @property
    def local(self) -> Authority:
        auth = self.directory.get(self.config.authority)
        if auth is None:
            raise CertificateError(f"{self.config.authority} is not in the directory")
        return auth

    def signer_authority(self, fingerprint: str) -> str | None:
        auth = self.directory.by_signing_fingerprint(fingerprint)
        return None if auth is None else auth.code


def load_signer(config: Config) -> Signer:
    return load_signer_files(config.signing_cert, config.signing_key, config.signing_key_password())


async def open_context(config: Config) -> GatewayContext:
    """Load and check everything a gateway needs before it listens; fail with a clear error."""
    clock = Clock(timedelta(seconds=config.clock.offset_seconds))
    log: structlog.stdlib.BoundLogger = structlog.get_logger()
    principals = Principals.from_config(config, log)
    store = await Store.open(config.database_url)
    try:
        mark = await store.trust.mark(DIRECTORY_MARK)
        state = await asyncio.to_thread(load_trust, config, clock(), mark)
        async with store.transaction() as tx:
            if mark is None or mark.version < state.directory.version:
                await tx.trust.set_mark(
                    DIRECTORY_MARK, state.directory.version, state.published.sha256, clock()
                )
            # Every start: a store from a release that kept no pin history gets one here.
            await tx.trust.record_pins(state.pins)
    except BaseException:
        await store.close()
        raise
    store.checkpointer = checkpointer_for(config, state.signer)
    trust = TrustManager(config, store, state, clock, log)

    def new_signer(new: TrustState) -> None:
        store.checkpointer = checkpointer_for(config, new.signer)

    trust.on_change(new_signer)
    return GatewayContext(
        config=config, trust=trust, store=store, principals=principals, clock=clock, log=log
    )
