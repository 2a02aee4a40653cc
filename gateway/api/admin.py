"""Administrator endpoints: the directory, certificates and CRL in force, a reload on demand,
and Prometheus metrics. Reads change nothing; every action that changes something (a reload,
a clock move) is a register entry naming the administrator role as its actor and the named
user (principal) who acted."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from aiohttp import web
from cryptography import x509
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.api.auth import CONTEXT, KEEPER, PRINCIPAL, ROLE, requires
from gateway.api.bodies import BadBody, read_json
from gateway.api.problems import problem
from gateway.context import Clock, GatewayContext
from gateway.core.register import Event
from gateway.core.times import utc_text
from gateway.pki.certs import fingerprint
from gateway.service.readiness import own_certificates
from gateway.service.trust import certificate_report

METRICS_TYPE = "text/plain; version=0.0.4"
OUTBOX_STATES = ("queued", "undeliverable")


def _directory_view(ctx: GatewayContext) -> dict[str, Any]:
    published = ctx.trust.state.published
    authorities = []
    for auth in sorted(published.directory.authorities.values(), key=lambda a: a.code):
        view = auth.to_dict()
        view["health_encryption_certificates"] = [
            _health_cert_view(pem) for pem in auth.health_encryption_certificates
        ]
        authorities.append(view)
    return {
        "version": published.version,
        "published": published.published.isoformat(),
        "sha256": published.sha256,
        "publisher": {
            "subject": published.publisher.subject.rfc4514_string(),
            "fingerprint": fingerprint(published.publisher),
        },
        "authorities": authorities,
    }


def _health_cert_view(pem: str) -> dict[str, Any]:
    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    return {
        "fingerprint": fingerprint(cert),
        "subject": cert.subject.rfc4514_string(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


@requires("administer")
async def get_directory(request: web.Request) -> web.StreamResponse:
    return web.json_response(_directory_view(request.app[CONTEXT]))


@requires("administer")
async def get_certificates(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    window = ctx.config.trust.expiry_warning_days
    report = certificate_report(ctx.trust.state, ctx.config.authority, ctx.clock(), window)
    return web.json_response(
        {
            "expiry_warning_days": window,
            "attention": sum(1 for c in report if c.status != "ok"),
            "certificates": [c.to_dict() for c in report],
        }
    )


@requires("administer")
async def get_crl(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    crl = ctx.trust.state.revocations
    if crl is None:
        return web.json_response({"configured": False})
    return web.json_response(
        {
            "configured": True,
            "issuer": crl.issuer.rfc4514_string(),
            "number": crl.number,
            "last_update": crl.last_update.isoformat(),
            "next_update": None if crl.next_update is None else crl.next_update.isoformat(),
            "revoked_serials": sorted(format(s, "x") for s in crl.serials),
            "sha256": crl.sha256,
        }
    )


@requires("administer")
async def post_reload(request: web.Request) -> web.StreamResponse:
    """Apply a new directory, CRL or own certificate, and the API's tokens file, now (as
    SIGHUP would)."""
    ctx = request.app[CONTEXT]
    ctx.principals.reload("admin-api")
    result = await ctx.trust.reload("admin-api", actor=request[ROLE], principal=request[PRINCIPAL])
    if not result.applied:
        return problem(
            409,
            "Reload Refused",
            f"{result.error}; the previous directory, CRL and certificates stay in force",
            rule="trust-reload",
            extra={"register_sequence": result.register_sequence},
        )
    return web.json_response(result.to_dict() | {"state": ctx.trust.state.summary()})


class _TrustCollector(Collector):
    def __init__(self, ctx: GatewayContext, register_sequence: int) -> None:
        self.ctx = ctx
        self.register_sequence = register_sequence

    def collect(self) -> Any:
        ctx = self.ctx
        now = ctx.clock()
        window = ctx.config.trust.expiry_warning_days
        labels = ["owner", "purpose", "fingerprint"]
        left = GaugeMetricFamily(
            "gateway_certificate_expiry_seconds",
            "Seconds until a certificate the gateway relies on expires (negative: expired)",
            labels=labels,
        )
        attention = GaugeMetricFamily(
            "gateway_certificate_attention",
            f"1 when a certificate expires within {window} days, has expired or is revoked",
            labels=labels,
        )
        report = certificate_report(ctx.trust.state, ctx.config.authority, now, window)
        for item in report:
            values = [item.owner, item.purpose, fingerprint(item.certificate)]
            left.add_metric(values, item.seconds_left)
            attention.add_metric(values, 0.0 if item.status == "ok" else 1.0)
        yield left
        yield attention
        own = GaugeMetricFamily(
            "gateway_own_certificate_status",
            "1 while this gateway's own certificate of the purpose (tls, signing) is valid now "
            "and not revoked, else 0 (the readiness check `certificates`)",
            labels=["purpose"],
        )
        for purpose, usable in own_certificates(report, ctx.config.authority).items():
            own.add_metric([purpose], 1.0 if usable else 0.0)
        yield own
        crl = ctx.trust.state.revocations
        if crl is not None and crl.next_update is not None:
            yield GaugeMetricFamily(
                "gateway_crl_next_update_seconds",
                "Seconds until the CRL in force must be replaced by a fresh one",
                value=(crl.next_update - now).total_seconds(),
            )
        yield GaugeMetricFamily(
            "gateway_directory_version",
            "Version of the signed directory in force",
            value=ctx.trust.state.directory.version,
        )
        yield GaugeMetricFamily(
            "gateway_trust_reloads", "Trust reloads applied since start", value=ctx.trust.reloads
        )
        yield CounterMetricFamily(
            "gateway_trust_reloads_refused",
            "Trust reloads refused since start (the previous trust stays in force)",
            value=ctx.trust.refusals,
        )
        yield GaugeMetricFamily(
            "gateway_register_sequence",
            "Sequence number of the register head",
            value=self.register_sequence,
        )


class _StoreCollector(Collector):
    """What the store holds now, read before the scrape is rendered (collectors are not
    async)."""

    def __init__(self, outbox: dict[str, int], open_deadlines: int) -> None:
        self.outbox = outbox
        self.open_deadlines = open_deadlines

    def collect(self) -> Any:
        family = GaugeMetricFamily(
            "gateway_outbox_messages",
            "Outgoing messages waiting for delivery (queued) or given up on (undeliverable)",
            labels=["state"],
        )
        for state, count in self.outbox.items():
            family.add_metric([state], count)
        yield family
        yield GaugeMetricFamily(
            "gateway_deadlines_open", "Time limits open now", value=self.open_deadlines
        )


@requires("administer")
async def get_metrics(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    sequence, _ = await ctx.store.register.head()
    outbox = await ctx.store.messages.outgoing_in(OUTBOX_STATES)
    open_deadlines = await ctx.store.deadlines.count_open()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_TrustCollector(ctx, sequence))
    registry.register(_StoreCollector(outbox, open_deadlines))
    body = generate_latest(registry) + generate_latest(ctx.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": METRICS_TYPE})


@requires("adjust-clock")
async def post_clock(request: web.Request) -> web.StreamResponse:
    """Move this gateway's clock forward: demonstrations and tests of time limits only. The
    register entry naming the administrator is written first, dated at the new time; the
    clock moves only once it is durable (a database that refuses it leaves the clock as it
    was, and the caller gets a 503)."""
    ctx = request.app[CONTEXT]
    if not ctx.config.clock.adjustable or not isinstance(ctx.clock, Clock):
        return problem(
            403,
            "Forbidden",
            "the clock is not adjustable (clock.adjustable)",
            rule="clock.adjustable",
        )
    try:
        body = await read_json(request)
    except BadBody as exc:
        return exc.response
    try:
        seconds = float(body["advance_seconds"])
    except (ValueError, KeyError, TypeError, OverflowError):
        return problem(
            400, "Bad Request", 'send {"advance_seconds": <seconds>}', field="advance_seconds"
        )
    if not math.isfinite(seconds) or seconds < 0:
        return problem(
            422, "Invalid Submission", "the clock only moves forward", field="advance_seconds"
        )
    try:
        advance = timedelta(seconds=seconds)
        offset = ctx.clock.offset + advance
        ctx.clock() + advance  # still a date the calendar holds
    except OverflowError:
        return problem(
            422,
            "Invalid Submission",
            "the clock cannot move past the year 9999",
            field="advance_seconds",
        )
    async with ctx.store.transaction() as tx:
        await tx.register.append(
            time=ctx.clock() + advance,
            event=Event.ADMIN_ACTION,
            direction="in",
            status="applied",
            details={
                "action": "clock-advanced",
                "actor": request[ROLE],
                "advance_seconds": seconds,
                "offset_seconds": offset.total_seconds(),
            },
            principal=request[PRINCIPAL],
        )
    ctx.clock.offset = offset
    request.app[KEEPER].wake.set()
    return web.json_response(
        {"now": utc_text(ctx.clock()), "offset_seconds": ctx.clock.offset.total_seconds()}
    )


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/admin/directory", get_directory)
    app.router.add_get("/api/v1/admin/certificates", get_certificates)
    app.router.add_get("/api/v1/admin/crl", get_crl)
    app.router.add_post("/api/v1/admin/reload", post_reload)
    app.router.add_get("/api/v1/metrics", get_metrics)
    app.router.add_post("/api/v1/admin/clock", post_clock)
