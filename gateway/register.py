"""Checking the register (Art. 40(9)): the hash chain entry by entry, the head, and the
signed checkpoints. Reads in pages, so a register of millions of entries verifies in
constant memory."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.core.checkpoints import checkpoint_payload
from gateway.core.register import GENESIS_HASH, RegisterChainError, verify_chain
from gateway.store.store import Store

PAGE = 10_000


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    head_sequence: int
    head_hash: str
    checkpoints: int


def _check_checkpoint(row: dict[str, Any], authority: str, ca: x509.Certificate) -> None:
    seq = int(row["sequence"])
    try:
        cert = x509.load_pem_x509_certificate(row["signer"].encode())
        ca_key = ca.public_key()
        assert isinstance(ca_key, ec.EllipticCurvePublicKey)
        assert cert.signature_hash_algorithm is not None
        ca_key.verify(
            cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
        )
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(
            base64.b64decode(row["signature"]),
            checkpoint_payload(authority, seq, row["hash"], row["time"]),
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, ValueError) as exc:
        raise RegisterChainError(seq, "checkpoint signature does not verify") from exc


async def verify_store(
    store: Store,
    authority: str,
    ca: x509.Certificate,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Raise RegisterChainError naming the first bad sequence number, else report."""
    checkpoints = {int(c["sequence"]): c for c in await store.checkpoints()}
    for row in checkpoints.values():
        _check_checkpoint(row, authority, ca)
    head_seq, head_hash = await store.register_head()
    seq, head = 0, GENESIS_HASH
    while True:
        page = await store.register_entries(after=seq, limit=PAGE)
        if not page:
            break
        for entry in page:
            cp = checkpoints.get(entry.sequence)
            if cp is not None and cp["hash"] != entry.hash:
                raise RegisterChainError(entry.sequence, "differs from its signed checkpoint")
        seq, head = verify_chain(page, seq, head)
        if progress is not None:
            progress(seq, head_seq)
    if checkpoints and max(checkpoints) > seq:
        raise RegisterChainError(
            seq + 1,
            "missing: a signed checkpoint covers entries beyond the last one (deleted tail)",
        )
    if (head_seq, head_hash) != (seq, head):
        raise RegisterChainError(
            min(seq, head_seq) + 1,
            "the recorded head does not match the chain (deleted or rewritten tail)",
        )
    return VerifyReport(seq, seq, head, len(checkpoints))
