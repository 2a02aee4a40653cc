"""What the peer transport reads off a TLS connection: the certificate the other end
presented. The contexts themselves are built in `gateway.pki.tls`."""

from __future__ import annotations

from typing import Any

from gateway.pki.certs import fingerprint_der


def peer_certificate(transport: Any) -> bytes | None:
    """DER of the certificate the other end presented, or None."""
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der


def peer_fingerprint(transport: Any) -> str | None:
    """SHA-256 fingerprint of the certificate the other end presented, or None."""
    der = peer_certificate(transport)
    return None if der is None else fingerprint_der(der)
