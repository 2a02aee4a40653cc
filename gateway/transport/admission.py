"""Who may make a request of the peer listener, and how much (issue 14, items 5 and 6), decided
before any handler runs:

- a client whose TLS certificate (issued by the network CA) no authority of the directory pins
  gets a bare 403 that says nothing;
- a pinned peer past one of its limits (requests per second with a burst, concurrent
  requests, bytes of bodies in flight: `[peer]`) gets 429 with Retry-After;
- refused TLS handshakes are recorded too (`TlsAudit`, called by the TLS context).

No refusal here can flood the register: the first of a kind (client, or peer and limit) in an
interval of `peer.refusal_summary_seconds` is recorded at once, the others of the interval as
one entry with their count when it ends, or when the gateway stops."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.context import GatewayContext
from gateway.core.directory import Authority
from gateway.core.policy import Reason
from gateway.core.register import Event
from gateway.core.throttle import PeerQuotas
from gateway.pki.certs import fingerprint_der
from gateway.service.trust import TrustState
from gateway.transport.tls import peer_certificate

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NOT_PINNED = "not a pinned peer\n"
PINNED: web.RequestKey[tuple[Authority, bytes | None]] = web.RequestKey("pinned-peer", tuple)
"""The (authority, certificate DER) the admission middleware identified."""


def pinned_peer(state: TrustState, transport: Any) -> tuple[Authority | None, bytes | None]:
    """The authority whose pinned TLS certificate the other end presented (or None), and
    that certificate's DER, for the revocation check."""
    der = peer_certificate(transport)
    return (state.directory.by_tls_fingerprint(fingerprint_der(der)) if der else None), der


class RefusalRecorder:
    """Writes refusal register entries off the request path (a flood must not wait on the
    database), keeping each write task alive until it is done."""

    def __init__(self, ctx: GatewayContext, reason: Reason, event: str) -> None:
        self.ctx = ctx
        self.reason = reason
        self.event = event
        """The log line of each entry written."""
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, details: dict[str, object], peer: str | None = None, **log: object) -> None:
        task = asyncio.get_running_loop().create_task(self._write(details, peer, log))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the entries being written."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _write(
        self, details: dict[str, object], peer: str | None, log: dict[str, object]
    ) -> None:
        try:
            async with self.ctx.store.transaction() as tx:
                await tx.register.append(
                    time=self.ctx.clock(),
                    event=Event.REJECTED,
                    direction="in",
                    peer=peer,
                    status="rejected",
                    reason=self.reason.value,
                    details=details,
                )
        except Exception:
            self.ctx.log.exception("could not record a refusal", reason=self.reason.value)
        self.ctx.log.warning(self.event, **log, **({"peer": peer} if peer else {}))


class IntervalSummary:
    """Counts refusals per key; the first of a key in an interval of `seconds` is recorded at
    once, the others as one record with their count when the interval ends (or at `flush`).
    `record(key, count, first)` writes the entry."""

    def __init__(self, seconds: float, record: Callable[[str, int, bool], None]) -> None:
        self.seconds = seconds
        self._record = record
        self._counts: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def refused(self, key: str) -> None:
        if key in self._counts:
            self._counts[key] += 1
            return
        self._counts[key] = 0
        self._record(key, 1, True)
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(self.seconds, self._close, key)

    def _close(self, key: str) -> None:
        self._timers.pop(key, None)
        more = self._counts.pop(key, 0)
        if more:
            self._record(key, more, False)

    def flush(self) -> None:
        """End every open interval now (the gateway is stopping): no count is lost."""
        for key in list(self._timers):
            self._timers.pop(key).cancel()
            self._close(key)


class Admission:
    """The peer listener's first middleware: pinned identity, then the peer's limits."""

    def __init__(self, ctx: GatewayContext) -> None:
        self.ctx = ctx
        peer = ctx.config.peer
        self.quotas = PeerQuotas(peer.limits())
        self._unpinned_recorder = RefusalRecorder(
            ctx, Reason.UNKNOWN_PEER, "unpinned client refused"
        )
        self._throttled_recorder = RefusalRecorder(ctx, Reason.THROTTLED, "peer throttled")
        self._unpinned = IntervalSummary(peer.refusal_summary_seconds, self._record_unpinned)
        self._throttled = IntervalSummary(peer.refusal_summary_seconds, self._record_throttled)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        peer, der = pinned_peer(self.ctx.trust.state, request.transport)
        if peer is None:
            self.ctx.metrics.unpinned_refusals.inc()
            self._unpinned.refused(fingerprint_der(der) if der else "none")
            return web.Response(status=403, text=NOT_PINNED)
        size = self._size(request)
        throttled = self.quotas.admit(peer.code, size, time.monotonic())
        if throttled is not None:
            self.ctx.metrics.peer_requests_throttled.labels(peer.code, throttled.limit).inc()
            self._throttled.refused(f"{peer.code} {throttled.limit.value}")
            return web.Response(
                status=429,
                text=throttled.text(self.quotas.limits) + "\n",
                headers={"Retry-After": str(throttled.retry_after)},
            )
        request[PINNED] = (peer, der)
        try:
            return await handler(request)
        finally:
            self.quotas.release(peer.code, size)

    def _size(self, request: web.Request) -> int:
        """The body bytes a request may bring: its declared length, or the largest body
        when it declares none (chunked)."""
        if request.content_length is not None:
            return request.content_length
        return self.ctx.config.peer.max_body_bytes if request.body_exists else 0

    async def close(self, _app: web.Application | None = None) -> None:
        """Write the counts of intervals still open, then wait for every entry."""
        self._unpinned.flush()
        self._throttled.flush()
        await self._unpinned_recorder.drain()
        await self._throttled_recorder.drain()

    def _record_unpinned(self, fingerprint: str, count: int, first: bool) -> None:
        what = (
            "first refusal of this client in the interval"
            if first
            else "further refusals of this client in the interval"
        )
        details: dict[str, object] = {
            "text": "the TLS client certificate is not pinned for any authority of the "
            f"directory ({what})",
            "client_certificate_sha256": fingerprint,
            "count": count,
            "interval_seconds": self.ctx.config.peer.refusal_summary_seconds,
        }
        self._unpinned_recorder.record(details, client=fingerprint, count=count)

    def _record_throttled(self, key: str, count: int, first: bool) -> None:
        peer, limit = key.split(" ", 1)
        what = "first request refused" if first else "further requests refused"
        details: dict[str, object] = {
            "text": f"429: the per-peer limit of {limit} was reached ({what} in the interval)",
            "limit": limit,
            "count": count,
            "interval_seconds": self.ctx.config.peer.refusal_summary_seconds,
        }
        self._throttled_recorder.record(details, peer=peer, limit=limit, count=count)


ADMISSION: web.AppKey[Admission] = web.AppKey("admission", Admission)
"""The peer application's Admission (its quotas, for inspection)."""


class TlsAudit:
    """Records refused TLS handshakes (no client certificate, another CA, an old protocol) in
    the register. Bounded: beyond `per_minute` entries a minute, refusals are counted and the
    count is carried by the next entry, so a flood cannot bloat the register."""

    def __init__(self, ctx: GatewayContext, per_minute: int = 30) -> None:
        self.ctx = ctx
        self.per_minute = per_minute
        self._recent: deque[float] = deque()
        self._suppressed = 0
        self._recorder = RefusalRecorder(ctx, Reason.TLS_REFUSED, "tls handshake refused")

    def refused(self, detail: str) -> None:
        now = time.monotonic()
        while self._recent and now - self._recent[0] > 60:
            self._recent.popleft()
        if len(self._recent) >= self.per_minute:
            self._suppressed += 1
            return
        self._recent.append(now)
        details: dict[str, object] = {"text": f"TLS handshake refused: {detail}"[:300]}
        if self._suppressed:
            details["suppressed_since_last"] = self._suppressed
            self._suppressed = 0
        self._recorder.record(details, detail=details["text"])

    async def close(self) -> None:
        """Record the refusals not yet carried by an entry, then wait for every entry."""
        if self._suppressed:
            self._recorder.record(
                {
                    "text": "TLS handshakes refused and not yet recorded when the gateway stopped",
                    "suppressed_since_last": self._suppressed,
                }
            )
            self._suppressed = 0
        await self._recorder.drain()
