"""Is a peer there, and is it who the directory says (Art. 41): a TLS connection with our
client certificate to the peer's endpoint, its certificate held against the directory's pins,
and its `/v1/health` asked for the authority it answers as and how it computes time limits.

One check, used by `gateway doctor` (before the gateway runs, with a context built from the
configuration) and by the administrators' console (with the running gateway's context). It
never raises for what the peer does: every outcome is a `PeerCheck`, whose `text` says what
was found in words an operator can act on.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography import x509

from gateway.core.conversations import computing_versions
from gateway.core.directory import Authority
from gateway.pki.certs import fingerprint_der

__all__ = ["Outcome", "PeerCheck", "check_peer", "computing_differences"]

Outcome = Literal[
    "ok",
    "computes-differently",  # reachable and pinned, but counts days with other packs
    "unverified",  # TLS refused: the peer's certificate is not one the network CA vouches for
    "unreachable",  # no TCP connection or TLS handshake within the time
    "unpinned",  # TLS up, but the certificate is not the one the directory pins
    "no-health",  # TLS up and pinned, /v1/health not answered
    "wrong-authority",  # /v1/health answers as another authority
]
REACHABLE: frozenset[Outcome] = frozenset(
    {"ok", "computes-differently", "unpinned", "no-health", "wrong-authority"}
)
"""The outcomes in which a TLS connection with the peer was established."""


@dataclass(frozen=True)
class PeerCheck:
    authority: str
    endpoint: str
    host: str
    port: int
    outcome: Outcome
    text: str
    """What was found, in words (the doctor's finding, the console's error or status)."""
    subject: str | None = None
    fingerprint: str | None = None
    pins: tuple[str, ...] = ()
    differences: list[str] = field(default_factory=list)

    @property
    def reachable(self) -> bool:
        return self.outcome in REACHABLE

    @property
    def pinned(self) -> bool:
        return self.fingerprint is not None and self.fingerprint in self.pins

    def to_dict(self) -> dict[str, Any]:
        return {
            "authority": self.authority,
            "endpoint": self.endpoint,
            "reachable": self.reachable,
            "outcome": self.outcome,
            "error": None if self.outcome == "ok" else self.text,
            "subject": self.subject,
            "fingerprint": self.fingerprint,
            "pinned": self.pinned,
            "pins": list(self.pins),
            "computing_differences": self.differences,
        }


async def check_peer(peer: Authority, context: ssl.SSLContext, seconds: float) -> PeerCheck:
    """Connect to `peer` with `context` and check it, all within `seconds`."""
    url = urlsplit(peer.endpoint)
    host, port = url.hostname or "", url.port or 443
    pins = tuple(sorted(peer.tls_fingerprints))

    def found(outcome: Outcome, text: str, **more: Any) -> PeerCheck:
        return PeerCheck(peer.code, peer.endpoint, host, port, outcome, text, pins=pins, **more)

    deadline = asyncio.get_running_loop().time() + seconds
    try:
        async with asyncio.timeout_at(deadline):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname=host
            )
    except ssl.SSLCertVerificationError as exc:
        return found(
            "unverified",
            f"{peer.endpoint} presents a certificate we cannot verify: {exc.verify_message}",
        )
    except (TimeoutError, OSError, ssl.SSLError) as exc:
        reason = "no answer in time" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
        return found("unreachable", f"peer unreachable: {host}:{port} ({reason})")
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        fp = fingerprint_der(der) if der else ""
        seen: dict[str, Any] = {"fingerprint": fp or None, "subject": _subject(der)}
        if fp not in peer.tls_fingerprints:
            return found(
                "unpinned",
                f"peer presents an unexpected certificate {fp[:16]}... (the directory pins "
                f"{', '.join(p[:16] + '...' for p in pins)})",
                **seen,
            )
        try:
            async with asyncio.timeout_at(deadline):
                health = await _health(reader, writer, host)
        except (TimeoutError, OSError, ValueError) as exc:
            return found(
                "no-health",
                f"{peer.endpoint} accepted TLS but did not answer /v1/health: {exc!r}",
                **seen,
            )
    finally:
        writer.close()
    if health.get("authority") != peer.code:
        return found(
            "wrong-authority",
            f"{peer.endpoint} answers as {health.get('authority')!r}, not {peer.code}",
            **seen,
        )
    differs = computing_differences(health)
    if differs:
        return found(
            "computes-differently",
            "computes time limits differently: " + "; ".join(differs),
            differences=differs,
            **seen,
        )
    return found("ok", f"reachable at {host}:{port}, identity pinned, health ok", **seen)


def _subject(der: bytes | None) -> str | None:
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except ValueError:
        return None


def computing_differences(health: Mapping[str, Any]) -> list[str]:
    """How a peer's rule packs and holiday calendar (as its /v1/health states them) differ
    from ours (issue 16, item 8): a case's two gateways must compute the same days."""
    ours = computing_versions()
    theirs = health.get("computing")
    if not isinstance(theirs, dict):
        return ["the peer does not say which rule packs and holidays it computes with"]
    out = []
    for name, version in sorted(ours["rules"].items()):
        other = (theirs.get("rules") or {}).get(name)
        if other != version:
            out.append(f"rule pack {name}: ours {version}, the peer's {other or 'absent'}")
    if theirs.get("holidays") != ours["holidays"]:
        out.append(
            f"holidays package: ours {ours['holidays']}, the peer's {theirs.get('holidays')}"
        )
    return out


async def _health(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
) -> dict[str, Any]:
    writer.write(
        f"GET /v1/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("ascii")
    )
    await writer.drain()
    raw = b""
    while len(raw) < 65536 and (chunk := await reader.read(65536 - len(raw))):
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError(head.split(b"\r\n", 1)[0].decode("latin-1"))
    if b"chunked" in head.lower():
        body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("health is not a JSON object")
    return data
