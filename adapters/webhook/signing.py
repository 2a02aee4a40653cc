"""Signing of webhook deliveries and its verification, as a receiver does it.

The signature covers the timestamp and the exact body bytes:
``X-Gateway-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``.
A receiver recomputes it over the raw body it received (before any JSON parsing), compares
in constant time and refuses timestamps further than five minutes from its own clock, so a
captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Gateway-Signature"
TIMESTAMP_HEADER = "X-Gateway-Timestamp"
DELIVERY_ID_HEADER = "X-Gateway-Delivery-Id"
TOLERANCE_SECONDS = 300
PREFIX = "sha256="


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-Gateway-Signature value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return PREFIX + mac.hexdigest()


def signed_headers(
    secret: bytes, delivery_id: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """Every header of one delivery attempt (the timestamp is that of the attempt)."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        "Content-Type": "application/json",
        DELIVERY_ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """True if `body` with these headers was signed with `secret` within `tolerance` seconds
    of `now`. `headers` is looked up case-insensitively if it is a multidict or a
    CIMultiDict (aiohttp's request.headers); a plain dict needs the canonical names."""
    timestamp = headers.get(TIMESTAMP_HEADER)
    given = headers.get(SIGNATURE_HEADER)
    if not timestamp or not given or len(timestamp) > 12:
        return False
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), given)
