"""Durable outbound delivery: claims due outbox rows, POSTs each over a pooled keep-alive mTLS
connection whose peer certificate must be the one the directory pins, and hands the answer to
the delivery use case (gateway/service/delivery.py), which verifies and records it. Failures
are retried with exponential backoff and jitter (and never before a peer's Retry-After) until
the retry policy gives up; messages given up on are reconciled later (the peer may yet prove
it received them)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

from gateway.context import GatewayContext
from gateway.core.policy import Rejection
from gateway.core.throttle import retry_after_seconds
from gateway.service.deadline_keeper import DeadlineKeeper
from gateway.service.delivery import (
    MAX_ACK_BYTES,
    AcknowledgementRefused,
    DeliveryError,
    Outcomes,
)
from gateway.store.leader import lead
from gateway.store.records import OutboxItem
from gateway.store.store import STORAGE_ERRORS
from gateway.transport.tls import peer_fingerprint
from gateway.waits import wait_set
from gateway.xml.envelope import (
    Acknowledgement,
)


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
        self.outcomes = Outcomes(ctx, keeper)
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
        # At most this many deliveries here at once, in flight or waiting for a slot: claimed
        # from the outbox, or handed over by a submission (reserved, then handed over).
        self._window = settings.concurrency * 2
        self._reserved = 0
        self._slot_freed = asyncio.Event()

    def reserve(self) -> timedelta | None:
        """A place for a fresh submission; its outbox row is stored leased for `lease`."""
        if self.ctx.handoff is not self or len(self._inflight) + self._reserved >= self._window:
            return None
        self._reserved += 1
        return self._lease

    def release(self) -> None:
        self._reserved -= 1
        self._slot_freed.set()

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
            loop = asyncio.get_running_loop()
            look, due = True, 0.0  # whether the outbox may hold rows due now; when to look
            while True:
                free = self._window - len(self._inflight) - self._reserved
                if free <= 0:
                    self._slot_freed.clear()
                    # Set as each delivery ends and as a reserved place is given back.
                    await wait_set(self._slot_freed, poll)
                    continue
                if ctx.wake_delivery.is_set():  # the outbox changed: a row may be due now
                    ctx.wake_delivery.clear()
                    look = True
                if not look:
                    # A delivery that ends frees a slot but adds nothing to claim: claiming
                    # at each one was a writer transaction per message (issue 20). Look
                    # again when the outbox changes, at the next due row, or after `poll`
                    # (what another node or a restart left behind).
                    await wait_set(ctx.wake_delivery, max(0.0, due - loop.time()))
                    look = True
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
                    next_due = await ctx.store.outbox.next_due(ctx.clock())
                except STORAGE_ERRORS:
                    next_due = None
                if next_due is not None:
                    wait = max(0.0, min(poll, (next_due - ctx.clock()).total_seconds()))
                if claimed and wait == 0:
                    wait = 0.01
                look, due = False, loop.time() + wait
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
        self._slot_freed.set()

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
        for item in await ctx.store.messages.undeliverable_since(since, 100):
            peer = ctx.directory.get(item.peer)
            if peer is None:
                continue
            url = f"{peer.endpoint.rstrip('/')}/v1/acknowledgements/{item.message_id}"
            try:
                async with self._session(item.peer).get(url) as resp:
                    if resp.status != 200:
                        continue
                    body = await resp.content.read(MAX_ACK_BYTES + 1)
                ack = self.outcomes.verify_ack(body, item)
            except (aiohttp.ClientError, TimeoutError, OSError, Rejection) as exc:
                ctx.log.info(
                    "reconciliation: no proof yet", message_id=item.message_id, error=str(exc)[:200]
                )
                continue
            refused = self.outcomes.refusal(item, ack)
            if refused is not None:
                # Still undeliverable; the next pass asks again.
                async with ctx.store.transaction() as tx:
                    await self.outcomes.register_refusal(
                        tx, item, 0, refused, ack, body, reconciled=True
                    )
                self.outcomes.alert(item, refused, reconciled=True)
                continue
            await self.outcomes.record_ack(item, 0, ack, body, reconciled=True)
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
                self.ctx.wake_delivery.set()  # its row is due again once its lease ends

    async def deliver(self, item: OutboxItem) -> None:
        ctx = self.ctx
        attempt = item.attempts + 1
        try:
            ack, ack_bytes = await self._attempt(item)
        except AcknowledgementRefused as exc:
            await self.outcomes.failed(item, attempt, str(exc), exc)
            self.outcomes.alert(item, exc.refused, reconciled=False)
            return
        except DeliveryError as exc:
            await self.outcomes.failed(item, attempt, str(exc), retry_after=exc.retry_after)
            return
        await self.outcomes.record_ack(item, attempt, ack, ack_bytes)
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
                retry_after = resp.headers.get("Retry-After")
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
        if status in (429, 503):
            # Throttled, or its storage is down: nothing was acknowledged; try again, not
            # before the time it gave.
            wait = retry_after_seconds(retry_after, self.ctx.clock())
            what = "too many requests" if status == 429 else "unavailable"
            raise DeliveryError(
                f"{url} answered HTTP {status} ({what})"
                + (f", retry after {wait:g} s" if wait is not None else ""),
                retry_after=wait,
            )
        try:
            ack = self.outcomes.verify_ack(body, item)
        except Rejection as exc:
            raise DeliveryError(
                f"{url} answered HTTP {status} without a valid acknowledgement: "
                f"{exc.reason.value}: {exc.text}"
            ) from exc
        refused = self.outcomes.refusal(item, ack)
        if refused is not None:
            raise AcknowledgementRefused(refused, ack, body)
        return ack, body
