"""Durable outbound delivery: claims due outbox rows, POSTs each over a pooled keep-alive mTLS
connection, verifies the peer's signed acknowledgement (signature, digest of what we sent,
receiver identity) and stores it as proof of transmission and time of receipt. Failures are
retried with exponential backoff and jitter until the retry policy gives up.

A validly signed acknowledgement can still say what its signer cannot know: a receipt time
outside the transmission's lifetime moves the legal time limits (gateway.core.acknowledgements).
Such an acknowledgement is refused like a failed attempt (retried, then reconciled) and an
administrator is told: an `acknowledgement-refused` register entry, a log warning, a metric."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

from gateway.context import GatewayContext
from gateway.core.acknowledgements import Refusal, refusal
from gateway.core.conversations import outcome_of
from gateway.core.policy import Reason, Rejection
from gateway.deadlines import DeadlineKeeper
from gateway.store.leader import lead
from gateway.store.store import STORAGE_ERRORS, OutboxItem, Transaction
from gateway.transport.tls import peer_fingerprint
from gateway.xml.envelope import (
    Acknowledgement,
    read_acknowledgement,
    read_form,
    read_header,
    validate_envelope,
)
from gateway.xml.forms import form_from_element
from gateway.xml.parser import parse_trusted, parse_untrusted
from gateway.xml.signature import verify

MAX_ACK_BYTES = 256 * 1024


class DeliveryError(Exception):
    """One attempt failed for a reason worth retrying."""


class AcknowledgementRefused(DeliveryError):
    """The peer's acknowledgement is validly signed but states what we do not accept."""

    def __init__(self, refused: Refusal, ack: Acknowledgement, ack_bytes: bytes) -> None:
        super().__init__(f"acknowledgement refused: {refused.reason.value}: {refused.text}")
        self.refused = refused
        self.ack = ack
        self.ack_bytes = ack_bytes


class PinMismatch(aiohttp.ClientError):
    """The server's TLS certificate is from the network CA but not pinned for the peer."""


class PinnedConnector(aiohttp.TCPConnector):
    """Checks each new connection's server certificate against the peer's pins (read from
    the current directory, so a rotation applies to the next connection). Kept-alive
    connections were checked when they were made."""

    def __init__(self, pins: Callable[[], frozenset[str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pins = pins

    async def _wrap_create_connection(
        self, *args: Any, **kwargs: Any
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        transport, protocol = await super()._wrap_create_connection(*args, **kwargs)
        fp = peer_fingerprint(transport)
        if fp is None or fp not in self._pins():
            transport.close()
            raise PinMismatch(
                f"server certificate {(fp or 'none')[:16]}... is not pinned for this peer"
            )
        return transport, protocol


class Deliverer:
    def __init__(self, ctx: GatewayContext, keeper: DeadlineKeeper) -> None:
        self.ctx = ctx
        self.keeper = keeper
        settings = ctx.config.delivery
        ctx.trust.on_change(self._retire_sessions)
        self._retired: set[asyncio.Task[None]] = set()
        self._timeout = aiohttp.ClientTimeout(
            total=settings.request_timeout_seconds,
            sock_connect=settings.connect_timeout_seconds,
        )
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._semaphore = asyncio.Semaphore(settings.concurrency)
        self._lease = settings.lease
        self._inflight: set[asyncio.Task[None]] = set()
        self._random = random.SystemRandom()
        # At most this many deliveries here at once, in flight or waiting for a slot: claimed
        # from the outbox, or handed over by a submission (reserved, then handed over).
        self._window = settings.concurrency * 2
        self._reserved = 0

    def reserve(self) -> timedelta | None:
        """A place for a fresh submission; its outbox row is stored leased for `lease`."""
        if self.ctx.handoff is not self or len(self._inflight) + self._reserved >= self._window:
            return None
        self._reserved += 1
        return self._lease

    def release(self) -> None:
        self._reserved -= 1

    def hand_over(self, item: OutboxItem) -> None:
        """Deliver a durable, leased submission now (see gateway.context.Handoff)."""
        self._reserved -= 1
        if self.ctx.handoff is self:
            self._start(item)
        # else the worker stopped meanwhile: the row keeps its lease until a restart releases
        # it (SQLite) or it runs out (PostgreSQL), then it is claimed like any other

    def _start(self, item: OutboxItem) -> None:
        task = asyncio.create_task(self._deliver_guarded(item))
        self._inflight.add(task)
        task.add_done_callback(self._delivery_ended)

    def _session(self, peer: str) -> aiohttp.ClientSession:
        """One pool per peer keeps connections alive (a handshake costs far more than a POST)."""
        session = self._sessions.get(peer)
        if session is None or session.closed:

            def pins() -> frozenset[str]:
                auth = self.ctx.directory.get(peer)
                return frozenset() if auth is None else auth.tls_fingerprints

            connector = PinnedConnector(
                pins, ssl=self.ctx.trust.client_context, limit_per_host=8, keepalive_timeout=60
            )
            session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
            self._sessions[peer] = session
        return session

    async def run(self) -> None:
        ctx = self.ctx
        await ctx.store.release_leases()
        poll = ctx.config.delivery.poll_interval_seconds
        reconciler = asyncio.create_task(
            lead(ctx.store, "reconcile", self._reconcile_forever, ctx.log), name="reconcile"
        )
        try:
            # Claim only what can be sent now (plus one round ahead): the rest stays in the
            # outbox, visible to the other nodes sharing it, and no claim fetches rows that
            # would only wait here while their lease runs down. Fresh submissions come in
            # directly (hand_over); claims bring retries and what a restart or another node
            # left behind.
            ctx.handoff = self
            while True:
                ctx.wake_delivery.clear()
                free = self._window - len(self._inflight) - self._reserved
                if free <= 0:
                    await ctx.wake_delivery.wait()  # set as each delivery ends
                    continue
                try:
                    claimed = await ctx.store.claim_due(ctx.clock(), free, self._lease)
                except STORAGE_ERRORS as exc:
                    # The database refuses writes for now (full, read-only, down): keep the
                    # worker alive and try again; the outbox is still there.
                    ctx.log.error("delivery cannot claim from the outbox", error=str(exc))
                    await asyncio.sleep(poll)
                    continue
                for item in claimed:
                    self._start(item)
                if len(claimed) == free:
                    continue  # more may be due: claim again as soon as a slot frees
                wait = poll
                try:
                    next_due = await ctx.store.next_due(ctx.clock())
                except STORAGE_ERRORS:
                    next_due = None
                if next_due is not None:
                    wait = max(0.0, min(poll, (next_due - ctx.clock()).total_seconds()))
                if claimed and wait == 0:
                    wait = 0.01
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ctx.wake_delivery.wait(), timeout=wait)
        finally:
            # Submissions from now on wait in the outbox (a restart releases their leases on
            # SQLite; on PostgreSQL another node takes them once the lease ends).
            if ctx.handoff is self:
                ctx.handoff = None
            reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciler
            await self.close()

    def _delivery_ended(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self.ctx.wake_delivery.set()

    async def _reconcile_forever(self) -> None:
        interval = self.ctx.config.delivery.reconcile_interval_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.ctx.log.exception("reconciliation pass failed; retrying later")

    async def reconcile(self) -> int:
        """Ask peers for the acknowledgement of each message we gave up on. An answer is
        verified like any acknowledgement (signed by the receiver, our digest, our message
        id); then it is recorded as the proof of receipt it is, with the receipt time it
        states, and the message's state is corrected. Returns how many were corrected."""
        ctx = self.ctx
        since = ctx.clock() - timedelta(days=ctx.config.delivery.reconcile_window_days)
        corrected = 0
        for item in await ctx.store.undeliverable_since(since, 100):
            peer = ctx.directory.get(item.peer)
            if peer is None:
                continue
            url = f"{peer.endpoint.rstrip('/')}/v1/acknowledgements/{item.message_id}"
            try:
                async with self._session(item.peer).get(url) as resp:
                    if resp.status != 200:
                        continue
                    body = await resp.content.read(MAX_ACK_BYTES + 1)
                ack = self._verify_ack(body, item)
            except (aiohttp.ClientError, TimeoutError, OSError, Rejection) as exc:
                ctx.log.info(
                    "reconciliation: no proof yet", message_id=item.message_id, error=str(exc)[:200]
                )
                continue
            refused = self._refusal(item, ack)
            if refused is not None:
                # Still undeliverable; the next pass asks again.
                async with ctx.store.transaction() as tx:
                    await self._register_refusal(tx, item, 0, refused, ack, body, reconciled=True)
                self._alert(item, refused, reconciled=True)
                continue
            await self._record_ack(item, 0, ack, body, reconciled=True)
            corrected += 1
            ctx.log.warning(
                "undeliverable message was received after all; state corrected",
                message_id=item.message_id,
                peer=item.peer,
                receipt_time=ack.receipt_time.isoformat(),
            )
        return corrected

    def _retire_sessions(self, _state: object) -> None:
        """After a trust reload, new deliveries open new connections (new TLS context, new
        pins, CRL applied); the old pools close once requests in flight had time to end."""
        old = list(self._sessions.values())
        self._sessions.clear()
        if not old:
            return
        grace = self.ctx.config.delivery.request_timeout_seconds

        async def close_later() -> None:
            await asyncio.sleep(grace)
            for session in old:
                await session.close()

        task = asyncio.get_running_loop().create_task(close_later())
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def close(self) -> None:
        for task in list(self._retired):
            task.cancel()
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    async def _deliver_guarded(self, item: OutboxItem) -> None:
        async with self._semaphore:
            try:
                await self.deliver(item)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.ctx.log.exception("delivery crashed", message_id=item.message_id)

    async def deliver(self, item: OutboxItem) -> None:
        ctx = self.ctx
        attempt = item.attempts + 1
        try:
            ack, ack_bytes = await self._attempt(item)
        except AcknowledgementRefused as exc:
            await self._failed(item, attempt, str(exc), exc)
            self._alert(item, exc.refused, reconciled=False)
            return
        except DeliveryError as exc:
            await self._failed(item, attempt, str(exc))
            return
        await self._record_ack(item, attempt, ack, ack_bytes)
        ctx.log.info(
            "transmission acknowledged",
            message_id=item.message_id,
            peer=item.peer,
            status=ack.status,
            receipt_time=ack.receipt_time.isoformat(),
            attempt=attempt,
        )

    async def _attempt(self, item: OutboxItem) -> tuple[Acknowledgement, bytes]:
        peer = self.ctx.directory.get(item.peer)
        if peer is None:
            raise DeliveryError(f"{item.peer} is no longer in the directory")
        url = peer.endpoint.rstrip("/") + "/v1/transmissions"
        try:
            async with self._session(item.peer).post(
                url, data=item.signed_xml, headers={"Content-Type": "application/xml"}
            ) as resp:
                body = await resp.content.read(MAX_ACK_BYTES + 1)
                status = resp.status
        except PinMismatch as exc:
            raise DeliveryError(f"{url}: {exc}") from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise DeliveryError(
                f"{url} closed the connection (if at the TLS handshake: our client "
                "certificate was probably refused)"
            ) from exc
        except aiohttp.ClientSSLError as exc:
            raise DeliveryError(f"TLS with {url} failed: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"{url}: {type(exc).__name__}: {exc}") from exc
        if len(body) > MAX_ACK_BYTES:
            raise DeliveryError(f"{url} answered with an oversized body (HTTP {status})")
        try:
            ack = self._verify_ack(body, item)
        except Rejection as exc:
            raise DeliveryError(
                f"{url} answered HTTP {status} without a valid acknowledgement: "
                f"{exc.reason.value}: {exc.text}"
            ) from exc
        refused = self._refusal(item, ack)
        if refused is not None:
            raise AcknowledgementRefused(refused, ack, body)
        return ack, body

    def _verify_ack(self, body: bytes, item: OutboxItem) -> Acknowledgement:
        root = parse_untrusted(body, max_bytes=MAX_ACK_BYTES, max_depth=16)
        validate_envelope(root)
        verified = verify(
            root, self.ctx.signer_authority, self.ctx.trust.state.signing_check(self.ctx.clock())
        )
        ack = read_acknowledgement(verified.root)
        if verified.signer_authority != item.peer or ack.sender != item.peer:
            raise Rejection(
                Reason.SIGNER_MISMATCH,
                f"acknowledgement signed by {verified.signer_authority} for {ack.sender}, "
                f"expected {item.peer}",
            )
        if ack.digest != item.digest:
            raise Rejection(Reason.SIGNATURE_INVALID, "acknowledgement digest is not ours")
        if ack.accepted and ack.message_id != item.message_id:
            raise Rejection(Reason.SIGNATURE_INVALID, "acknowledgement names another message")
        return ack

    def _refusal(self, item: OutboxItem, ack: Acknowledgement) -> Refusal | None:
        """Whether a verified acknowledgement states what its signer can know (see
        gateway.core.acknowledgements): checked before anything of it is recorded."""
        return refusal(
            receipt_time=ack.receipt_time,
            receiver=ack.receiver,
            status=ack.status,
            reason_code=ack.reason_code,
            created=item.created_at,
            now=self.ctx.clock(),
            max_skew=timedelta(seconds=self.ctx.config.peer.max_clock_skew_seconds),
            local=self.ctx.config.authority,
        )

    async def _register_refusal(
        self,
        tx: Transaction,
        item: OutboxItem,
        attempt: int,
        refused: Refusal,
        ack: Acknowledgement,
        ack_bytes: bytes,
        *,
        reconciled: bool,
    ) -> None:
        """The evidence of a refused acknowledgement: what it claimed, why it was refused.
        The acknowledgement itself is not stored (nothing it says is recorded as fact)."""
        await tx.append_register(
            time=self.ctx.clock(),
            event="acknowledgement-refused",
            direction="out",
            peer=item.peer,
            message_id=item.message_id,
            message_type=item.message_type,
            reference=item.reference,
            digest=item.digest,
            status="refused",
            reason=refused.reason.value,
            details={
                "attempt": attempt,
                "text": refused.text,
                "acknowledgement_id": ack.acknowledgement_id[:64],
                "acknowledgement_sha256": hashlib.sha256(ack_bytes).hexdigest(),
                "stated_receipt_time": ack.receipt_time.isoformat(),
                "stated_status": ack.status,
            }
            | ({"reconciliation": True} if reconciled else {}),
        )

    def _alert(self, item: OutboxItem, refused: Refusal, *, reconciled: bool) -> None:
        self.ctx.metrics.acknowledgements_refused.labels(
            peer=item.peer, reason=refused.reason.value
        ).inc()
        self.ctx.log.warning(
            "acknowledgement refused: the peer signed what it cannot know",
            message_id=item.message_id,
            peer=item.peer,
            reason=refused.reason.value,
            detail=refused.text,
            reconciliation=reconciled,
        )

    async def _record_ack(
        self,
        item: OutboxItem,
        attempt: int,
        ack: Acknowledgement,
        ack_bytes: bytes,
        *,
        reconciled: bool = False,
    ) -> None:
        state = "delivered" if ack.accepted else "refused"
        async with self.ctx.store.transaction() as tx:
            # The outbox row is this delivery's claim. Gone means the outcome is recorded
            # already: by another node whose claim outlived ours (several nodes on one
            # database), or by us on an earlier attempt. Record nothing twice; only a proof
            # arriving after we gave up corrects the state, as reconciliation does.
            if not await tx.finish_outbox(item.message_id) and not reconciled:
                current = await tx.get_message(item.message_id)
                if current is None or current.state != "undeliverable":
                    self.ctx.log.info(
                        "acknowledgement already recorded", message_id=item.message_id
                    )
                    return
                reconciled = True
            await tx.update_message(
                item.message_id,
                state=state,
                ack_xml=ack_bytes,
                receipt_time=ack.receipt_time,
                reason_code=ack.reason_code,
                reason_text=ack.reason_text,
            )
            if ack.accepted:
                await self._start_deadlines(tx, item, ack)
            await tx.append_register(
                time=self.ctx.clock(),
                event="delivered" if ack.accepted else "refused-by-peer",
                direction="out",
                peer=item.peer,
                message_id=item.message_id,
                message_type=item.message_type,
                reference=item.reference,
                digest=item.digest,
                status=ack.status,
                reason=ack.reason_code,
                details={
                    "attempt": attempt,
                    "acknowledgement_id": ack.acknowledgement_id,
                    "receipt_time": ack.receipt_time.isoformat(),
                    "peer_register_head": {"sequence": ack.head_sequence, "hash": ack.head_hash},
                }
                | ({"reconciled_after": "undeliverable"} if reconciled else {}),
            )

    async def _start_deadlines(
        self, tx: Transaction, item: OutboxItem, ack: Acknowledgement
    ) -> None:
        """Time limits run from the receipt time in the acknowledgement, on both sides."""
        root = parse_trusted(item.signed_xml)
        header = read_header(root)
        _, form = form_from_element(read_form(root))
        conv = await tx.get_conversation(header.case)
        if conv is not None:
            outcome = outcome_of(header.message_type, form)
            await self.keeper.on_message(tx, header, form, outcome, conv, ack.receipt_time)

    async def _failed(
        self,
        item: OutboxItem,
        attempt: int,
        error: str,
        refused: AcknowledgementRefused | None = None,
    ) -> None:
        """Record a failed attempt and schedule the next (or give up); a refused
        acknowledgement's register entry goes in the same transaction."""
        ctx = self.ctx
        policy = ctx.config.delivery.retry
        now = ctx.clock()
        give_up = policy.exhausted(attempt)
        next_at: datetime | None = None
        if not give_up:
            next_at = now + timedelta(seconds=policy.delay(attempt, self._random.random()))
        async with ctx.store.transaction() as tx:
            # As in _record_ack: no claim left, nothing to record (the outcome is known).
            if give_up:
                claimed = await tx.finish_outbox(item.message_id)
            else:
                assert next_at is not None
                claimed = await tx.reschedule(item.message_id, attempt, next_at, error)
            if not claimed:
                return
            if refused is not None:
                await self._register_refusal(
                    tx,
                    item,
                    attempt,
                    refused.refused,
                    refused.ack,
                    refused.ack_bytes,
                    reconciled=False,
                )
            if give_up:
                await tx.update_message(item.message_id, state="undeliverable", reason_text=error)
            await tx.append_register(
                time=now,
                event="undeliverable" if give_up else "delivery-failed",
                direction="out",
                peer=item.peer,
                message_id=item.message_id,
                message_type=item.message_type,
                reference=item.reference,
                digest=item.digest,
                status="undeliverable" if give_up else "retrying",
                details={"attempt": attempt, "error": error[:500]}
                | ({"next_attempt_at": next_at.isoformat()} if next_at else {}),
            )
        ctx.log.warning(
            "delivery attempt failed",
            message_id=item.message_id,
            peer=item.peer,
            attempt=attempt,
            error=error,
            gave_up=give_up,
        )
