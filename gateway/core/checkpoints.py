"""Signed checkpoints of the register: (sequence, head hash) signed with the gateway's signing
key, so that a rewritten history cannot carry a valid checkpoint without that key. A checkpoint
counts only if its signer was pinned for the authority when it was signed (gateway.service.audit);
the format is in docs/register-format.md."""

from __future__ import annotations

import json
from datetime import UTC, datetime


def checkpoint_payload(authority: str, sequence: int, head: str, time: datetime) -> bytes:
    """The exact bytes that are signed: canonical JSON."""
    return json.dumps(
        {
            "authority": authority,
            "sequence": sequence,
            "hash": head,
            "time": time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
