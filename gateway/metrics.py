"""Counters of events a running gateway has seen since it started (per gateway, not global:
several gateways share one process in tests). What the store already holds (certificates,
the register head) is read at scrape time in `gateway.api.admin`; these count what is not
kept anywhere else as a number, or is kept only as register entries an operator should not
have to count."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
