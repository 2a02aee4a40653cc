"""Reception of the operational family (ICONET early warnings, liaison officers' reports):
the checks a received message passes before it is stored (parties, the liaison-officer role,
network membership, personal data, and for a forwarded item the originator's signed original,
its handling code and the originator's signed permission), its storage with its item and the
item's lifecycle, and the item as the liaison officers' API shows it."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lxml import etree

from gateway.context import GatewayContext
from gateway.core.forms import OPERATIONAL_TYPES, FormType
from gateway.core.operational import (
    ITEMS,
    Handling,
    check_inbound,
    check_membership,
    forwarding_refusal,
    network_of,
    summary_of,
)
from gateway.core.policy import Header, Reason, Rejection, check_sender_role
from gateway.core.register import Event, RegisterEntry
from gateway.service.operational import GONE, form_of, personal_data_in
from gateway.store.records import NewMessage, OperationalItem, StoredMessage
from gateway.store.store import Transaction
from gateway.xml.envelope import (
    AttachmentFile,
    check_attachments,
    read_attachments,
    read_form,
    read_header,
    validate_envelope,
)
from gateway.xml.forms import FormError, form_from_element
from gateway.xml.parser import parse_trusted, parse_untrusted
from gateway.xml.signature import verify


@dataclass(frozen=True)
class Examined:
    """An inbound message of the family that passed every check needing no database."""

    ft: FormType
    form: dict[str, Any]
    original: tuple[Header, dict[str, Any]] | None = None
    """For a forwarded item: the originator's verified header and form."""


def examine(
    ctx: GatewayContext, header: Header, signed_root: etree._Element, peer: str
) -> Examined:
    """Parties, role, clock, item, schema, attachments and personal data; for a forwarded
    item, the embedded original's and permission's signatures and the handling code."""
    ft = check_inbound(
        header,
        local=ctx.config.authority,
        peer=peer,
        directory=ctx.directory,
        now=ctx.clock(),
        max_skew=timedelta(seconds=ctx.config.peer.max_clock_skew_seconds),
    )
    check_sender_role(ft, header.sender_role)
    form_el = read_form(signed_root)
    files = read_attachments(signed_root)
    check_attachments(form_el, files, ctx.config.peer.max_attachment_bytes)
    try:
        body_type, form = form_from_element(form_el)
    except FormError as exc:
        raise Rejection(Reason.SCHEMA_INVALID, str(exc)) from exc
    if body_type.name != header.message_type:
        raise Rejection(Reason.SCHEMA_INVALID, "the body is not the type the header announces")
    if ft.name in ITEMS:
        check_membership(ft.network, ctx.directory.get(peer), ctx.local)
    elif form.get("item") != header.item_id:
        raise Rejection(Reason.SCHEMA_INVALID, "the body names another item than the header")
    _refuse_personal_data(ctx, form, files)
    if ft.name != "forwarded-item":
        return Examined(ft, form)
    original = _embedded(ctx, form["original"], "the forwarded original")
    if (
        original[0].message_type not in ITEMS
        or original[0].item_id != header.item_id
        or original[0].receiver != peer
    ):
        raise Rejection(
            Reason.FORWARDING_FORBIDDEN,
            "the embedded original is not an item the forwarder received under this item id",
        )
    check_membership(
        OPERATIONAL_TYPES[original[0].message_type].network, ctx.directory.get(peer), ctx.local
    )
    _refuse_personal_data(ctx, original[1], [])
    permission = (
        None if "permission" not in form else _embedded(ctx, form["permission"], "the permission")
    )
    refusal = forwarding_refusal(
        Handling.of(original[1]),
        original[0].sender,
        peer,
        ctx.config.authority,
        None if permission is None else permission[1],
        None if permission is None else permission[0],
        str(header.item_id),
    )
    if refusal is not None:
        raise Rejection(Reason.FORWARDING_FORBIDDEN, refusal)
    return Examined(ft, form, original)


def _embedded(ctx: GatewayContext, encoded: str, what: str) -> tuple[Header, dict[str, Any]]:
    """A transmission embedded in a forwarded item, verified as its signer's."""
    try:
        data = base64.b64decode(encoded, validate=True)
        root = parse_untrusted(data, max_bytes=ctx.config.peer.max_body_bytes)
        validate_envelope(root)
        verified = verify(root, ctx.signer_authority, ctx.trust.state.signing_check(ctx.clock()))
    except (binascii.Error, ValueError) as exc:
        raise Rejection(Reason.SIGNATURE_INVALID, f"{what} cannot be read") from exc
    except Rejection as exc:
        raise Rejection(exc.reason, f"{what}: {exc.text}") from exc
    header = read_header(verified.root)
    if verified.signer_authority != header.sender:
        raise Rejection(Reason.SIGNER_MISMATCH, f"{what} is not signed by its sender")
    _, form = form_from_element(read_form(verified.root))
    return header, form


def _refuse_personal_data(
    ctx: GatewayContext, form: Mapping[str, Any], files: list[AttachmentFile]
) -> None:
    found = personal_data_in(ctx, form, files, "/form")
    if found is not None:
        raise Rejection(
            Reason.PERSONAL_DATA,
            f"personal data ({found[1]}) in {found[0]}: the operational family carries none",
        )


async def accept(
    ctx: GatewayContext,
    examined: Examined,
    header: Header,
    body: bytes,
    digest: str,
    peer: str,
    receipt: datetime,
    acknowledge: Callable[[RegisterEntry], bytes],
) -> bytes:
    """Store a received message of the family, its item and lifecycle, the register entry
    and the acknowledgement (made by `acknowledge` once the entry's place in the register is
    fixed), in one unit of work; the signed acknowledgement."""
    ft, form = examined.ft, examined.form
    item_id = str(header.item_id)
    async with ctx.store.transaction() as tx:
        network = await _record_item(tx, examined, header, peer, receipt)
        entry = await tx.register.append(
            time=receipt,
            event=Event.RECEIVED,
            direction="in",
            peer=peer,
            message_id=header.message_id,
            message_type=ft.name,
            reference=header.reference,
            digest=digest,
            status="accepted",
            details={"item_id": item_id, "network": network},
            acknowledge=acknowledge,
        )
        await tx.messages.insert(
            NewMessage(
                message_id=header.message_id,
                direction="in",
                peer=peer,
                message_type=ft.name,
                reference=header.reference,
                in_reply_to=None,
                urgent=False,
                created_at=header.created,
                stored_at=receipt,
                digest=digest,
                signed_xml=body,
                state="received",
                receipt_time=receipt,
                ack_xml=None,  # the acknowledgement, once made (write_head)
                item_id=item_id,
            )
        )
        tx.after_commit(ctx.metrics.transmissions_received.labels("accepted", "").inc)
    del form
    ctx.log.info(
        "operational message received",
        message_id=header.message_id,
        type=ft.name,
        peer=peer,
        register_seq=entry.sequence,
    )
    return entry.acknowledgement()


async def _record_item(
    tx: Transaction, examined: Examined, header: Header, peer: str, receipt: Any
) -> str:
    """The item's row and lifecycle; the network it travels in."""
    ft, form = examined.ft, examined.form
    item_id = str(header.item_id)
    item = await tx.items.get(item_id)
    if item is not None and item.state in GONE:
        raise Rejection(
            Reason.ITEM_UNKNOWN,
            f"the item was {item.state} here (retention or the network operator's deletion "
            "order): nothing more is taken about it",
        )
    if ft.name in ITEMS or ft.name == "forwarded-item":
        if item is not None:
            return item.network  # we hold it already (received directly, then forwarded)
        origin_header, origin_form = (
            (header, form) if examined.original is None else examined.original
        )
        category, countries = summary_of(origin_header.message_type, origin_form)
        replaces = origin_form.get("replaces")
        await tx.items.insert(
            OperationalItem(
                item_id=item_id,
                direction="in",
                network=OPERATIONAL_TYPES[origin_header.message_type].network,
                message_type=origin_header.message_type,
                originator=origin_header.sender,
                reference=origin_header.reference,
                category=category,
                countries=countries,
                handling=Handling.of(origin_form).to_dict(),
                created_at=origin_header.created,
                stored_at=receipt,
                state="active",
                replaces=None if replaces is None else str(replaces),
                forwarded_by=None if examined.original is None else peer,
            )
        )
        if replaces is not None:
            old = await tx.items.get(str(replaces))
            if old is not None and old.originator == origin_header.sender:
                await tx.items.set_state(old.item_id, "replaced", receipt)
        return OPERATIONAL_TYPES[origin_header.message_type].network
    if item is None:
        raise Rejection(
            Reason.ITEM_UNKNOWN, f"a {ft.name} names an item this gateway does not hold"
        )
    if item.originator != peer:
        raise Rejection(Reason.ROLE_NOT_ALLOWED, f"only the item's originator sends a {ft.name}")
    network = network_of(ft, item.network)
    if ft.name == "item-withdrawal":
        await tx.items.set_state(item_id, "withdrawn", receipt)
    return network


def _carrier(messages: list[StoredMessage]) -> StoredMessage | None:
    """The stored transmission that carries an item's content (not erased), if any."""
    return next(
        (
            m
            for m in messages
            if (m.message_type in ITEMS or m.message_type == "forwarded-item")
            and m.signed_xml is not None
        ),
        None,
    )


def item_files(messages: list[StoredMessage]) -> list[AttachmentFile]:
    """The files attached to an item, from the transmission that carries it (for a forwarded
    item, from the originator's embedded one)."""
    first = _carrier(messages)
    if first is None or first.signed_xml is None:
        return []
    root = parse_trusted(first.signed_xml)
    if first.message_type == "forwarded-item":
        _, form = form_from_element(read_form(root))
        root = parse_trusted(base64.b64decode(form["original"]))
    return read_attachments(root)


def item_view(item: OperationalItem, messages: list[StoredMessage]) -> dict[str, Any]:
    """An item as the liaison officers' API shows it: its metadata, handling codes and, while
    it is not erased, its content (for a forwarded item, the originator's)."""
    carrying = [
        m for m in messages if m.message_type in ITEMS or m.message_type == "forwarded-item"
    ]
    content: dict[str, Any] | None = None
    first = _carrier(messages)
    if first is not None and first.signed_xml is not None:
        content = form_of(first.signed_xml)
        if first.message_type == "forwarded-item":
            content = form_of(base64.b64decode(content["original"]))
    return {
        "item_id": item.item_id,
        "message_id": first.message_id
        if first is not None
        else (carrying[0].message_id if carrying else None),
        "reference": item.reference,
        "type": item.message_type,
        "network": item.network,
        "direction": item.direction,
        "originator": item.originator,
        "forwarded_by": item.forwarded_by,
        "category": item.category,
        "countries": list(item.countries),
        "handling": item.handling,
        "created": item.created_at.isoformat(),
        "state": item.state,
        "replaces": item.replaces,
        "form": content,
        "attachments": [
            {"fileName": a["fileName"], "mediaType": a["mediaType"], "size": a["size"]}
            for a in (content or {}).get("attachment", [])
        ],
        "receivers": [
            {"receiver": m.peer, "message_id": m.message_id, "state": m.state}
            for m in carrying
            if m.direction == "out"
        ],
    }
