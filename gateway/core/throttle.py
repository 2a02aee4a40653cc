"""Per-peer admission limits (issue 14, item 6): requests per second with a burst (a token
bucket), concurrent requests, and bytes of request bodies in flight. Pure: the caller passes
the monotonic time and each request's size, and releases what it admitted.

A request that would pass a limit is not admitted and gets the seconds after which trying
again makes sense (HTTP Retry-After); a refused request takes no token, so a peer that
honours Retry-After is admitted on its next attempt."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum


class Limit(StrEnum):
    RATE = "requests-per-second"
    CONCURRENT = "concurrent-requests"
    BYTES = "bytes-in-flight"


@dataclass(frozen=True)
class PeerLimits:
    requests_per_second: float
    burst: int
    max_concurrent_requests: int
    max_bytes_in_flight: int

    def __post_init__(self) -> None:
        if self.requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        if self.burst < 1 or self.max_concurrent_requests < 1 or self.max_bytes_in_flight < 1:
            raise ValueError("burst, concurrent requests and bytes in flight must be at least 1")


@dataclass(frozen=True)
class Throttled:
    limit: Limit
    retry_after: int
    """Whole seconds, at least 1 (HTTP's Retry-After has no fractions)."""

    def text(self, limits: PeerLimits) -> str:
        """What the peer is told (and the register keeps): the limit, never the payload."""
        stated = {
            Limit.RATE: f"{limits.requests_per_second:g} requests per second "
            f"(burst {limits.burst})",
            Limit.CONCURRENT: f"{limits.max_concurrent_requests} concurrent requests",
            Limit.BYTES: f"{limits.max_bytes_in_flight} bytes of bodies in flight",
        }[self.limit]
        return f"too many requests: the limit of {stated} per peer is reached"


@dataclass
class _PeerUse:
    tokens: float
    stamp: float
    active: int = 0
    bytes: int = 0


class PeerQuotas:
    """The use of each peer; one instance per gateway process."""

    def __init__(self, limits: PeerLimits) -> None:
        self.limits = limits
        self._use: dict[str, _PeerUse] = {}

    def admit(self, peer: str, size: int, now: float) -> Throttled | None:
        """Admit one request of `size` body bytes (None) or say which limit it would pass.
        A lone request is always admitted by size: the largest body is bounded elsewhere."""
        limits = self.limits
        use = self._use.get(peer)
        if use is None:
            use = self._use[peer] = _PeerUse(tokens=float(limits.burst), stamp=now)
        elapsed = max(0.0, now - use.stamp)
        use.tokens = min(float(limits.burst), use.tokens + elapsed * limits.requests_per_second)
        use.stamp = now
        if use.active >= limits.max_concurrent_requests:
            return Throttled(Limit.CONCURRENT, 1)
        if use.active and use.bytes + size > limits.max_bytes_in_flight:
            return Throttled(Limit.BYTES, 1)
        if use.tokens < 1:
            wait = (1 - use.tokens) / limits.requests_per_second
            return Throttled(Limit.RATE, max(1, math.ceil(wait)))
        use.tokens -= 1
        use.active += 1
        use.bytes += size
        return None

    def release(self, peer: str, size: int) -> None:
        """The admitted request of `size` bytes is answered."""
        use = self._use[peer]
        use.active -= 1
        use.bytes -= size
        if use.active < 0 or use.bytes < 0:
            raise ValueError(f"released more than was admitted for {peer}")

    def in_flight(self, peer: str) -> tuple[int, int]:
        """(requests, body bytes) of `peer` being answered now."""
        use = self._use.get(peer)
        return (0, 0) if use is None else (use.active, use.bytes)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from an HTTP Retry-After header (delay-seconds or an HTTP-date, RFC 9110
    section 10.2.3); None when absent or unreadable. Never negative."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
