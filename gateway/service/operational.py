"""The operational family's use cases (ICONET early warnings, Council Decision 2005/267/EC;
liaison officers' reports, Regulation (EU) 2019/1240): a liaison officer's submission
distributed to a network, one signed and registered transmission per receiver, all carrying
one item id; corrections, withdrawals, permissions and forwarding; and the same checks on
reception. No personal data travels: free text is checked at both ends and a message with
any is refused naming the field, never stripped (gateway.core.personal_data)."""

from __future__ import annotations

import base64
import copy
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

from gateway.context import GatewayContext
from gateway.core.forms import OPERATIONAL_TYPES, FormType
from gateway.core.operational import (
    ITEMS,
    Handling,
    forwarding_refusal,
    free_text,
    members,
    reference_for,
    summary_of,
)
from gateway.core.personal_data import DEFAULT_DETECTORS, check_fields, detectors_from_patterns
from gateway.core.policy import Header, Reason, Rejection
from gateway.core.register import Event
from gateway.core.roles import LIAISON_OFFICER
from gateway.service.submission import SubmissionError, attachment_files
from gateway.store.records import NewMessage, OperationalItem
from gateway.store.store import Transaction
from gateway.xml.envelope import (
    AttachmentFile,
    build_transmission,
    check_attachments,
    read_form,
    read_header,
    validate_envelope,
)
from gateway.xml.forms import FormError, form_from_element, form_to_element
from gateway.xml.parser import parse_trusted

GONE = ("deleted", "erased")
"""States of an item whose content is gone: nothing more is sent about it."""
OPERATIONAL_FIELDS = frozenset(
    {"type", "form", "distribution", "receiver", "attachments", "case_number"}
)


class OperationalError(ValueError):
    """The liaison officer's submission is wrong: `field` names the JSON field at fault,
    `rule` the rule broken."""

    def __init__(self, field: str | None, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule


@dataclass(frozen=True)
class Distributed:
    item_id: str
    reference: str
    transmissions: tuple[tuple[str, str, str], ...]
    """(receiver, message id, digest) of each transmission."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "reference": self.reference,
            "transmissions": [
                {"receiver": r, "message_id": m, "digest": d} for r, m, d in self.transmissions
            ],
        }


def detectors(ctx: GatewayContext) -> tuple[Any, ...]:
    extra = ctx.config.operational.personal_data_patterns
    return tuple(DEFAULT_DETECTORS) + tuple(detectors_from_patterns(extra) if extra else ())


def personal_data_in(
    ctx: GatewayContext, form: Mapping[str, Any], files: list[AttachmentFile], prefix: str
) -> tuple[str, str] | None:
    """(field, kind) of the first personal data found in a message's free text or its
    attachments' names, or None."""
    fields = dict(free_text(form, prefix))
    for i, f in enumerate(files):
        fields[f"/attachments/{i}/fileName"] = f.file_name
    found = check_fields(fields, detectors(ctx))
    return found[0] if found else None


def _files(data: Mapping[str, Any]) -> list[AttachmentFile]:
    """The submitted files, read as for a standard form (gateway.service.submission)."""
    try:
        return attachment_files(data)
    except SubmissionError as exc:
        raise OperationalError(exc.field, str(exc)) from exc


def _distribution(ctx: GatewayContext, data: Mapping[str, Any], network: str) -> list[str]:
    """The receivers a new item goes to: the whole network but us, or the codes listed."""
    local = ctx.config.authority
    if "receiver" in data:
        raise OperationalError(
            "/receiver", "an item is distributed: name 'distribution', not 'receiver'"
        )
    wanted = data.get("distribution")
    if wanted == "network":
        receivers = members(ctx.directory, network, but=local)
    elif isinstance(wanted, list) and wanted and all(isinstance(c, str) for c in wanted):
        receivers = sorted(set(wanted))
        for code in receivers:
            auth = ctx.directory.get(code)
            if code == local or auth is None or network not in auth.networks:
                raise OperationalError(
                    "/distribution",
                    f"each receiver is another member of the {network} network",
                    Reason.NOT_A_MEMBER.value,
                )
    else:
        raise OperationalError(
            "/distribution", "'distribution' is \"network\" or a list of authority codes"
        )
    if not receivers:
        raise OperationalError("/distribution", f"the {network} network has no other member")
    return receivers


async def submit_operational(
    ctx: GatewayContext, data: Mapping[str, Any], principal: str | None
) -> Distributed:
    """Validate, sign and queue a liaison officer's message: an item to its distribution, or
    a withdrawal, permission or forwarding of an item. Everything is stored in one unit of
    work: every transmission of a distribution, or none."""
    unknown = set(data) - OPERATIONAL_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise OperationalError(f"/{name}", "unknown field in an operational submission")
    ft = OPERATIONAL_TYPES[str(data["type"])]
    form = data.get("form")
    if not isinstance(form, Mapping):
        raise OperationalError("/form", "'form' must be a JSON object")
    files = _files(data)
    if ft.name == "forwarded-item" and not set(form) <= {"item", "note"}:
        raise OperationalError(
            "/form", "a forwarded item names the 'item' (and a 'note'): the gateway embeds the rest"
        )
    form_el = _element(ft, {**form, "original": ""} if ft.name == "forwarded-item" else form)
    found = personal_data_in(ctx, form, files, "/form")
    if found is not None:
        raise OperationalError(
            found[0],
            f"personal data ({found[1]}) may not be sent in the {ft.name} family of messages; "
            "remove it (nothing is stripped for you)",
            Reason.PERSONAL_DATA.value,
        )
    local_auth = ctx.directory.get(ctx.config.authority)
    if ft.name in ITEMS:
        item_id = str(uuid.uuid4())
        network = ft.network
        if local_auth is None or network not in local_auth.networks:
            raise OperationalError(
                "/type",
                f"{ctx.config.authority} is not a member of the {network} network",
                Reason.NOT_A_MEMBER.value,
            )
        receivers = _distribution(ctx, data, network)
        replaced = form.get("replaces")
        if replaced is not None:
            old = await ctx.store.items.get(str(replaced))
            if old is None or old.direction != "out":
                raise OperationalError(
                    "/form/replaces", "a correction replaces an item this gateway sent"
                )
        return await _store(ctx, ft, form_el, form, files, item_id, receivers, principal, None)
    item_id = str(form.get("item"))
    item = await ctx.store.items.get(item_id)
    if item is None:
        raise OperationalError("/form/item", "no item with this id is known", "item-unknown")
    if item.state in GONE:
        raise OperationalError(
            "/form/item",
            f"the item was {item.state} (retention or the network operator's deletion order)",
            "item-unknown",
        )
    receivers, original = await _lifecycle_receivers(ctx, ft, data, form, item)
    if original is not None:
        form_el = _element(ft, {**form, **original})
    return await _store(
        ctx, ft, form_el, form, files, item_id, receivers, principal, item.reference
    )


def _element(ft: FormType, form: Mapping[str, Any]) -> etree._Element:
    try:
        return form_to_element(ft, form)
    except FormError as exc:
        raise OperationalError(exc.field, exc.message, "schema") from exc


async def _lifecycle_receivers(
    ctx: GatewayContext,
    ft: FormType,
    data: Mapping[str, Any],
    form: Mapping[str, Any],
    item: OperationalItem,
) -> tuple[list[str], dict[str, str] | None]:
    """Who a withdrawal, permission or forwarding goes to, and for a forwarding the signed
    original and permission it embeds."""
    sent = [m for m in await ctx.store.items.transmissions(item.item_id) if m.message_type in ITEMS]
    if ft.name == "item-withdrawal":
        if item.direction != "out":
            raise OperationalError("/form/item", "only the originator withdraws an item")
        return sorted({m.peer for m in sent if m.direction == "out"}), None
    receiver = data.get("receiver")
    if not isinstance(receiver, str):
        raise OperationalError("/receiver", f"a {ft.name} names its 'receiver'")
    if ft.name == "item-permission":
        if item.direction != "out":
            raise OperationalError("/form/item", "only the originator permits passing an item on")
        if receiver not in {m.peer for m in sent if m.direction == "out"}:
            raise OperationalError("/receiver", "the permission goes to a receiver of the item")
        return [receiver], None
    # forwarded-item: the original as received, and the originator's permission if needed
    original = next((m for m in sent if m.direction == "in" and m.signed_xml), None)
    if original is None or original.signed_xml is None:
        raise OperationalError("/form/item", "only an item received (and not erased) is passed on")
    auth = ctx.directory.get(receiver)
    if auth is None or receiver == ctx.config.authority or item.network not in auth.networks:
        raise OperationalError(
            "/receiver",
            f"the receiver is another member of the {item.network} network",
            Reason.NOT_A_MEMBER.value,
        )
    handling = Handling.of(form_of(original.signed_xml))
    permission = await _permission_for(ctx, item, receiver)
    refusal = forwarding_refusal(
        handling,
        item.originator,
        ctx.config.authority,
        receiver,
        None if permission is None else permission[1],
        None if permission is None else permission[2],
        item.item_id,
    )
    if refusal is not None:
        raise OperationalError("/receiver", refusal, Reason.FORWARDING_FORBIDDEN.value)
    embedded = {"original": base64.b64encode(original.signed_xml).decode()}
    if permission is not None:
        embedded["permission"] = base64.b64encode(permission[0]).decode()
    return [receiver], embedded


def form_of(signed: bytes) -> dict[str, Any]:
    _, form = form_from_element(read_form(parse_trusted(signed)))
    return form


async def _permission_for(
    ctx: GatewayContext, item: OperationalItem, receiver: str
) -> tuple[bytes, dict[str, Any], Header] | None:
    """The originator's signed permission for us to pass the item on to `receiver`."""
    for m in await ctx.store.items.transmissions(item.item_id):
        if m.message_type != "item-permission" or m.direction != "in" or m.signed_xml is None:
            continue
        root = parse_trusted(m.signed_xml)
        form = form_of(m.signed_xml)
        allowed = form.get("forwardTo", [])
        if receiver in (allowed if isinstance(allowed, list) else [allowed]):
            return m.signed_xml, form, read_header(root)
    return None


async def _store(
    ctx: GatewayContext,
    ft: FormType,
    form_el: etree._Element,
    form: Mapping[str, Any],
    files: list[AttachmentFile],
    item_id: str,
    receivers: list[str],
    principal: str | None,
    reference: str | None,
) -> Distributed:
    now = ctx.clock()
    local = ctx.config.authority
    out: list[tuple[str, str, str]] = []
    async with ctx.store.transaction() as tx:
        if reference is None:
            category, countries = summary_of(ft.name, form)
            row = OperationalItem(
                item_id=item_id,
                direction="out",
                network=ft.network,
                message_type=ft.name,
                originator=local,
                reference="",
                category=category,
                countries=countries,
                handling=Handling.of(form).to_dict(),
                created_at=now,
                stored_at=now,
                state="active",
                replaces=form.get("replaces"),
            )
            number = await tx.items.insert(row)
            reference = reference_for(local[:2], ft.name, number)
            await tx.items.set_reference(item_id, reference)
            if row.replaces is not None:
                await tx.items.set_state(row.replaces, "replaced", now)
        elif ft.name == "item-withdrawal":
            await tx.items.set_state(item_id, "withdrawn", now)
        for receiver in receivers:
            header = Header(
                message_id=str(uuid.uuid4()),
                reference=reference,
                message_type=ft.name,
                sender=local,
                receiver=receiver,
                created=now,
                sender_role=LIAISON_OFFICER,
                item_id=item_id,
            )
            root = build_transmission(header, copy.deepcopy(form_el), files)
            try:
                check_attachments(form_el, files, ctx.config.peer.max_attachment_bytes)
                validate_envelope(root)
            except Rejection as exc:
                raise OperationalError("/attachments", exc.text, exc.reason.value) from exc
            signed = ctx.signer.sign(root)
            digest = hashlib.sha256(signed).hexdigest()
            await _queue(tx, header, ft, signed, digest, principal)
            out.append((receiver, header.message_id, digest))
    ctx.wake_delivery.set()
    ctx.log.info(
        "operational message distributed",
        type=ft.name,
        item_id=item_id,
        receivers=len(out),
    )
    return Distributed(item_id, reference, tuple(out))


async def _queue(
    tx: Transaction,
    header: Header,
    ft: FormType,
    signed: bytes,
    digest: str,
    principal: str | None,
) -> None:
    await tx.messages.insert(
        NewMessage(
            message_id=header.message_id,
            direction="out",
            peer=header.receiver,
            message_type=ft.name,
            reference=header.reference,
            in_reply_to=None,
            urgent=False,
            created_at=header.created,
            stored_at=header.created,
            digest=digest,
            signed_xml=signed,
            state="queued",
            item_id=header.item_id,
        )
    )
    await tx.outbox.enqueue(header.message_id, header.created)
    await tx.register.append(
        time=header.created,
        event=Event.SUBMITTED,
        direction="out",
        peer=header.receiver,
        message_id=header.message_id,
        message_type=ft.name,
        reference=header.reference,
        digest=digest,
        status="queued",
        details={"item_id": header.item_id},
        principal=principal,
    )
