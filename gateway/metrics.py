"""Counters of events a running gateway has seen since it started (per gateway, not global:
several gateways share one process in tests). What the store already holds (certificates,
the register head, the outbox, open time limits) is read at scrape time in
`gateway.api.admin`; these count what is not kept anywhere else as a number, or is kept only
as register entries an operator should not have to count.

Each counter is incremented once what it counts is durable (a unit of work's `after_commit`),
so a rolled-back attempt is never counted. docs/monitoring.md describes every metric."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DELIVERY_OUTCOMES = ("accepted", "refused", "failed")
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""The methods a label may name; any other (a client may send any token) is `other`, so that
no client can grow the number of series."""


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.acknowledgements_refused = Counter(
            "gateway_acknowledgements_refused",
            "Validly signed acknowledgements refused because of what they say (a receipt time "
            "outside the window, another receiver, an unknown reason code); the message stays "
            "undelivered and is retried",
            ["peer", "reason"],
            registry=self.registry,
        )
        self.peer_requests_throttled = Counter(
            "gateway_peer_requests_throttled",
            "Requests from a peer answered 429 because a per-peer limit was reached",
            ["peer", "limit"],
            registry=self.registry,
        )
        self.unpinned_refusals = Counter(
            "gateway_unpinned_client_refusals",
            "Requests refused because the client certificate is pinned for no authority",
            registry=self.registry,
        )
        self.deliveries = Counter(
            "gateway_deliveries",
            "Delivery attempts recorded: accepted (a positive acknowledgement), refused (the "
            "peer's signed negative acknowledgement) or failed (to be retried, or given up)",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in DELIVERY_OUTCOMES:
            self.deliveries.labels(outcome=outcome)
        self.transmissions_received = Counter(
            "gateway_transmissions_received",
            "Transmissions from peers accepted, or rejected with a signed negative "
            "acknowledgement (reason: its reason code; empty when accepted)",
            ["status", "reason"],
            registry=self.registry,
        )
        self.transmissions_received.labels(status="accepted", reason="")
        self.deadlines_expired = Counter(
            "gateway_deadlines_expired",
            "Time limits the scheduler found expired, by the consequence the rule pack gives "
            "(empty: none)",
            ["consequence"],
            registry=self.registry,
        )
        self.http_request_duration = Histogram(
            "gateway_http_request_duration_seconds",
            "Time to answer an HTTP request on the internal API or the peer listener, by "
            "route pattern (never the concrete path) and method",
            ["route", "method"],
            registry=self.registry,
        )
        self.http_middleware = timing_middleware(self.http_request_duration)


def route_label(request: web.Request) -> str:
    """The pattern of the route that matched (`/api/v1/messages/{message_id}`), or
    `unmatched`: a label never holds a concrete path (ids, references, probing junk)."""
    resource = request.match_info.route.resource
    return UNMATCHED if resource is None else resource.canonical


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def timing_middleware(histogram: Histogram) -> Middleware:
    """An aiohttp middleware observing each answer's duration, errors included; put it first
    so that it also times what later middlewares refuse."""

    @web.middleware
    async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        try:
            return await handler(request)
        finally:
            histogram.labels(
                route=route_label(request), method=method_label(request.method)
            ).observe(time.perf_counter() - start)

    return timed
