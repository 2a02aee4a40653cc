"""Offline register bundles: a signed, self-contained extract of a register that an auditor
or a peer checks with nothing but the network CA and the directory's history of pins.

A bundle is the register of the authority it names only if the directory in force when it
was signed pinned its signer certificate as that authority's signing certificate: another
member's key, a TLS key or the directory publisher's key cannot make one. The witnesses a
bundle carries (heads of a peer's register recorded from that peer's acknowledgements) count
for the same reason, and never for the bundle's own authority: a register cannot witness
itself. docs/register-format.md documents the format for auditors' own tools."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.core.register import Event, RegisterChainError, RegisterEntry
from gateway.core.register import verify_chain as verify_entries
from gateway.core.times import utc_text
from gateway.pki.certs import ecdsa_key, fingerprint
from gateway.service.audit import PAGE, Signers, Witness, check_checkpoint
from gateway.store.store import Store
from gateway.xml.signature import Signer

BUNDLE_FORMAT = "dublin-gateway-register-bundle/2"


class BundleError(ValueError):
    """The bundle does not verify, or does not count; the message says why."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 with non-ASCII characters unescaped."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal_bundle(
    authority: str,
    entries: Sequence[dict[str, Any]],
    checkpoints: Sequence[dict[str, Any]],
    signer: Signer,
    exported: datetime,
    case: str | None = None,
) -> bytes:
    """The bundle of `entries` (RegisterEntry.to_dict() forms, consecutive) and the signed
    `checkpoints` among them, signed as a whole by `signer` at `exported`; for a case's
    extract, `case` names it and the entries filed under it are marked."""
    body: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "authority": authority,
        "exported": utc_text(exported),
        "first": entries[0]["sequence"],
        "last": entries[-1]["sequence"],
        "entries": list(entries),
        "checkpoints": list(checkpoints),
    }
    if case is not None:
        body["case"] = {
            "reference": case,
            "sequences": [e["sequence"] for e in entries if e["reference"] == case],
        }
    body_bytes = canonical_json(body)
    signature = signer.key.sign(body_bytes, ec.ECDSA(hashes.SHA256()))
    return canonical_json(
        {
            "body": base64.b64encode(body_bytes).decode(),
            "signature": base64.b64encode(signature).decode(),
            "signer": signer.certificate.public_bytes(serialization.Encoding.PEM).decode(),
        }
    )


async def export_bundle(
    store: Store,
    authority: str,
    signer: Signer,
    first: int = 1,
    last: int | None = None,
    *,
    now: datetime | None = None,
    case: str | None = None,
) -> bytes:
    """A self-contained file of entries first..last, the checkpoints among them (and the one
    the first entry may name, and the next one after them), signed with the gateway's
    signing key. The file is canonical JSON: any changed byte breaks it. With `case`, the
    entries filed under that reference are marked (see case_range)."""
    head_seq, _ = await store.register.head()
    last = head_seq if last is None else min(last, head_seq)
    if first < 1 or last < first:
        raise ValueError(f"nothing to export between {first} and {last}")
    entries: list[dict[str, Any]] = []
    seq = first - 1
    while seq < last:
        page = await store.register.query(after=seq, limit=min(PAGE, last - seq))
        if not page:
            break
        entries.extend(e.to_dict() for e in page)
        seq = page[-1].sequence
    checkpoints = await store.register.checkpoints()
    chosen = [c for c in checkpoints if first - 1 <= int(c["sequence"]) <= last]
    later = [c for c in checkpoints if int(c["sequence"]) > last][:1]
    rows = [
        {
            "sequence": int(c["sequence"]),
            "hash": c["hash"],
            "time": c["time"].isoformat(),
            "signer": c["signer"],
            "signature": c["signature"],
        }
        for c in chosen + later
    ]
    return seal_bundle(authority, entries, rows, signer, now or datetime.now(UTC), case)


async def case_range(store: Store, reference: str) -> tuple[int, int] | None:
    """The contiguous range of register sequences from the first to the last entry filed
    under a case's reference (its transfer information and health certificates included,
    gateway.core.register.filed_under); None when the register holds none."""
    return await store.register.span(reference)


@dataclass(frozen=True)
class BundleReport:
    authority: str
    first: int
    last: int
    checkpoints: int
    exported: datetime
    signer: str
    """Fingerprint of the signing certificate, pinned for `authority` at `exported`."""
    case: str | None = None
    """For a case's extract: the case's reference."""
    marked: tuple[int, ...] = ()
    """For a case's extract: the sequences of the entries filed under the case."""


def _open(data: bytes) -> tuple[dict[str, Any], x509.Certificate]:
    """The body and signer certificate once the canonical form and the signature hold."""
    try:
        outer = json.loads(data)
        if not isinstance(outer, dict) or canonical_json(outer) != data:
            raise BundleError("the bundle is not in its canonical form (bytes were changed)")
        body_bytes = base64.b64decode(outer["body"], validate=True)
        signer = x509.load_pem_x509_certificate(outer["signer"].encode())
        # The library parses these on first use: a damaged certificate fails here, as a
        # bundle that cannot be read, not later as an error of the verifier.
        _ = (signer.subject, signer.issuer, signer.extensions)
        signature = base64.b64decode(outer["signature"], validate=True)
        body = json.loads(body_bytes)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise BundleError(f"the bundle cannot be read: {exc}") from exc
    key = ecdsa_key(signer)
    if key is None:
        raise BundleError("the bundle signer's key is not an ECDSA key this gateway can read")
    try:
        key.verify(signature, body_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise BundleError("the bundle signature does not verify") from exc
    if not isinstance(body, dict):
        raise BundleError("the bundle body is not an object")
    return body, signer


def _verified(data: bytes, signers: Signers) -> tuple[BundleReport, list[RegisterEntry]]:
    body, signer = _open(data)
    if body.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"unknown bundle format {body.get('format')!r} (this gateway reads {BUNDLE_FORMAT}; "
            "older bundles name no signing time: export them again)"
        )
    try:
        authority = str(body["authority"])
        exported = datetime.fromisoformat(body["exported"].replace("Z", "+00:00"))
        entries = [
            # Bundles exported before named users hold no principal (version 1 entries).
            RegisterEntry(**{"principal": None, **e, "time": datetime.fromisoformat(e["time"])})
            for e in body["entries"]
        ]
        first, last = int(body["first"]), int(body["last"])
        checkpoints = [
            {**c, "time": datetime.fromisoformat(c["time"])} for c in body["checkpoints"]
        ]
        case = body.get("case")
        reference = None if case is None else str(case["reference"])
        marked = () if case is None else tuple(int(n) for n in case["sequences"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"the bundle body cannot be read: {exc}") from exc
    if exported.tzinfo is None:
        raise BundleError("the bundle's export time has no UTC offset")
    refusal = signers.refusal(signer, authority, exported)
    if refusal is not None:
        raise BundleError(f"not {authority}'s register: {refusal}")
    if not entries or entries[0].sequence != first or entries[-1].sequence != last:
        raise BundleError("the bundle's entries do not span its stated range")
    try:
        verify_entries(entries, first - 1, entries[0].prev_hash)
    except RegisterChainError as exc:
        raise BundleError(f"sequence {exc.sequence}: {exc.reason}") from exc
    _check_checkpoints(entries, checkpoints, authority, signers)
    if reference is not None and marked != tuple(
        e.sequence for e in entries if e.reference == reference
    ):
        raise BundleError(
            f"the entries marked as case {reference}'s are not the ones filed under it"
        )
    report = BundleReport(
        authority,
        first,
        last,
        len(checkpoints),
        exported,
        fingerprint(signer),
        reference,
        marked,
    )
    return report, entries


def _check_checkpoints(
    entries: Sequence[RegisterEntry],
    checkpoints: Sequence[dict[str, Any]],
    authority: str,
    signers: Signers,
) -> None:
    """Each checkpoint signed for `authority` by a key pinned then and matching its entry;
    each checkpoint the entries name is in the bundle."""
    by_seq = {e.sequence: e for e in entries}
    carried: dict[int, str] = {}
    for row in checkpoints:
        try:
            check_checkpoint(row, authority, signers)
        except RegisterChainError as exc:
            raise BundleError(f"checkpoint {exc.sequence}: {exc.reason}") from exc
        entry = by_seq.get(int(row["sequence"]))
        if entry is not None and entry.hash != row["hash"]:
            raise BundleError(f"sequence {entry.sequence}: differs from its signed checkpoint")
        carried[int(row["sequence"])] = row["hash"]
    for entry in entries:
        if entry.event != Event.CHECKPOINT:
            continue
        named = entry.details.get("sequence")
        if not isinstance(named, int) or carried.get(named) != entry.details.get("hash"):
            raise BundleError(
                f"sequence {entry.sequence} names signed checkpoint {named}, which the bundle "
                "does not carry as named (removed or replaced)"
            )


def verify_bundle(data: bytes, signers: Signers) -> BundleReport:
    """Check a bundle offline: its signature by a certificate pinned for the authority it
    names when it was signed, its chain, and its signed checkpoints."""
    return _verified(data, signers)[0]


def witnesses_in_bundle(
    data: bytes, signers: Signers, about: str
) -> tuple[BundleReport, list[Witness]]:
    """The heads of `about`'s register that a peer's bundle witnessed; BundleError saying why
    when the bundle does not count."""
    report, entries = _verified(data, signers)
    if report.authority == about:
        raise BundleError(f"this is {about}'s own register: a register cannot witness itself")
    out = []
    for e in entries:
        head = e.details.get("peer_register_head")
        if e.event == Event.DELIVERED and e.peer == about and isinstance(head, dict):
            try:
                sequence, digest = int(head["sequence"]), str(head["hash"])
            except (KeyError, TypeError, ValueError) as exc:
                raise BundleError(f"sequence {e.sequence}: unreadable witnessed head") from exc
            out.append(Witness(sequence, digest, report.authority, report.signer, report.exported))
    return report, out
