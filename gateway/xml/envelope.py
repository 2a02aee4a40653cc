"""The transmission envelope and the acknowledgement of receipt, as XML.

Readers here are only ever given trees that came out of signature verification (or that we
built ourselves); the transport makes sure of that."""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree

from gateway.core.policy import Header, Reason, Rejection
from gateway.core.times import parse_utc, utc_text
from gateway.xml.schemas import ENVELOPE_NS, envelope_schema

_NS = {"gw": ENVELOPE_NS}


def _el(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, f"{{{ENVELOPE_NS}}}{name}")
    if text is not None:
        child.text = text
    return child


_PREFIX = f"{{{ENVELOPE_NS}}}"


class _Fields:
    """The child elements of one envelope element by local name, read in one pass: a
    header's dozen fields each found by an ElementPath search cost more than the rest of
    reading it (issue 20). The first of a name counts, as `find` would have it."""

    def __init__(self, parent: etree._Element | None, where: str) -> None:
        self._where = where
        self._found: dict[str, etree._Element] = {}
        for child in () if parent is None else parent:
            tag = child.tag
            if isinstance(tag, str) and tag.startswith(_PREFIX):
                self._found.setdefault(tag[len(_PREFIX) :], child)

    def element(self, name: str) -> etree._Element | None:
        return self._found.get(name)

    def text(self, name: str) -> str | None:
        found = self._found.get(name)
        return None if found is None else (found.text or "")

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise Rejection(Reason.SCHEMA_INVALID, f"missing {self._where}gw:{name}")
        return value


def validate_envelope(root: etree._Element) -> None:
    """Validate a transmission or acknowledgement (forms included) against gateway/schemas/.
    Error texts name the line, path and rule but never the offending value (personal data)."""
    schema = envelope_schema()
    if schema.validate(root):
        return
    log: Any = schema.error_log  # lxml-stubs leave _ErrorLog opaque
    first = log[0] if len(log) else None
    if first is None:
        raise Rejection(Reason.SCHEMA_INVALID, "document does not match the schema")
    raise Rejection(
        Reason.SCHEMA_INVALID,
        f"schema violation at line {first.line}, {first.path}: {first.type_name}",
    )


COMMON_NS = "urn:eu:dublin:forms:common:1"
DEFAULT_MAX_ATTACHMENT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class AttachmentFile:
    """Scanned evidence carried inside the signed transmission."""

    file_name: str
    media_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class CarriedFile:
    """What the checks need of an attachment: its name, media type, size and SHA-256 (hex),
    without its content."""

    file_name: str
    media_type: str
    size: int
    sha256: str


def carried_file(f: AttachmentFile | CarriedFile) -> CarriedFile:
    if isinstance(f, CarriedFile):
        return f
    return CarriedFile(
        f.file_name, f.media_type, len(f.content), hashlib.sha256(f.content).hexdigest()
    )


def build_transmission(
    header: Header, form: etree._Element, attachments: Sequence[AttachmentFile] = ()
) -> etree._Element:
    root = etree.Element(f"{{{ENVELOPE_NS}}}Transmission", nsmap={"gw": ENVELOPE_NS})
    root.set("version", "1")
    h = _el(root, "Header")
    _el(h, "MessageId", header.message_id)
    _el(h, "Reference", header.reference)
    if header.case_reference is not None:
        _el(h, "Case", header.case_reference)
    _el(h, "Type", header.message_type)
    _el(h, "Sender", header.sender)
    _el(h, "SenderRole", header.sender_role)
    _el(h, "Receiver", header.receiver)
    _el(h, "Created", utc_text(header.created))
    if header.in_reply_to is not None:
        _el(h, "InReplyTo", header.in_reply_to)
    _el(h, "Urgency", "urgent" if header.urgent else "normal")
    if header.legal_basis is not None:
        _el(h, "LegalBasis", header.legal_basis).set("rules", header.rules_version or "")
    if header.item_id is not None:
        _el(h, "ItemId", header.item_id)
    body = _el(root, "Body")
    body.append(form)
    if attachments:
        files = _el(root, "Attachments")
        for item in attachments:
            a = _el(files, "Attachment")
            _el(a, "FileName", item.file_name)
            _el(a, "MediaType", item.media_type)
            _el(a, "Content", base64.b64encode(item.content).decode())
    return root


def _decoded(fields: _Fields) -> bytes:
    try:
        # The text as it is (ASCII): b64decode would first copy it into bytes.
        return binascii.a2b_base64(fields.required("Content"))
    except ValueError as exc:
        raise Rejection(Reason.ATTACHMENT_INVALID, "attachment content is not base64") from exc


def read_attachments(root: etree._Element) -> list[AttachmentFile]:
    out = []
    for a in root.iterfind("gw:Attachments/gw:Attachment", _NS):
        fields = _Fields(a, "")
        out.append(
            AttachmentFile(
                fields.required("FileName"), fields.required("MediaType"), _decoded(fields)
            )
        )
    return out


def read_carried_files(root: etree._Element) -> list[CarriedFile]:
    """The attachments' names, media types, sizes and digests, each file decoded and hashed
    in turn and dropped before the next: what checking a received transmission needs, without
    holding all its files decoded at once (megabytes each)."""
    out = []
    for a in root.iterfind("gw:Attachments/gw:Attachment", _NS):
        fields = _Fields(a, "")
        content = _decoded(fields)
        out.append(
            CarriedFile(
                fields.required("FileName"),
                fields.required("MediaType"),
                len(content),
                hashlib.sha256(content).hexdigest(),
            )
        )
        del content
    return out


DESCRIBED_TWICE = "an attachment is described more than once in the form (describe each file once)"


def _descriptors(form: etree._Element) -> list[etree._Element]:
    """The form's attachment descriptors (elements with a fileName and a sha256), in order."""
    c = f"{{{COMMON_NS}}}"
    # Only elements with a fileName child can describe a file: visit those, not every element.
    holders = dict.fromkeys(
        parent for n in form.iter(f"{c}fileName") if (parent := n.getparent()) is not None
    )
    return [el for el in holders if el.find(f"{c}sha256") is not None]


def duplicate_descriptor(form: etree._Element) -> etree._Element | None:
    """The first descriptor naming a file an earlier one already describes, if any. Each file
    is described once: of two descriptions only one could ever be checked against the file,
    and the other would say what the signer likes."""
    seen: set[str] = set()
    for el in _descriptors(form):
        name = el.findtext(f"{{{COMMON_NS}}}fileName") or ""
        if name in seen:
            return el
        seen.add(name)
    return None


def check_attachments(
    form: etree._Element,
    attachments: Sequence[AttachmentFile] | Sequence[CarriedFile],
    max_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
) -> None:
    """The files carried must be exactly those the form describes, each described once: same
    names, media types, SHA-256 digests and sizes, each within the size limit."""
    files = [carried_file(f) for f in attachments]
    c = f"{{{COMMON_NS}}}"
    if duplicate_descriptor(form) is not None:
        raise Rejection(Reason.ATTACHMENT_INVALID, DESCRIBED_TWICE)
    described = {
        el.findtext(f"{c}fileName") or "": (
            el.findtext(f"{c}mediaType") or "",
            el.findtext(f"{c}sha256") or "",
            int(el.findtext(f"{c}size") or "-1"),
        )
        for el in _descriptors(form)
    }
    carried = {f.file_name: f for f in files}
    if len(carried) != len(files):
        raise Rejection(Reason.ATTACHMENT_INVALID, "two attachments carry the same file name")
    # Attachments are named by position, not by file name: a name is submitted text.
    missing = len(set(described) - set(carried))
    if missing:
        raise Rejection(
            Reason.ATTACHMENT_INVALID,
            f"{missing} file(s) the form describes are absent: attach each under its fileName",
        )
    for i, f in enumerate(files, start=1):
        if f.file_name not in described:
            raise Rejection(
                Reason.ATTACHMENT_INVALID, f"attachment {i} is not described by the form"
            )
        media_type, digest, size = described[f.file_name]
        if f.size > max_bytes:
            raise Rejection(Reason.ATTACHMENT_INVALID, f"attachment {i} exceeds {max_bytes} bytes")
        if f.media_type != media_type:
            raise Rejection(Reason.ATTACHMENT_INVALID, f"attachment {i}: media type differs")
        if f.sha256 != digest:
            raise Rejection(Reason.ATTACHMENT_INVALID, f"attachment {i}: SHA-256 differs")
        if f.size != size:
            raise Rejection(Reason.ATTACHMENT_INVALID, f"attachment {i}: size differs")


def read_header(root: etree._Element) -> Header:
    if root.tag != f"{{{ENVELOPE_NS}}}Transmission":
        raise Rejection(Reason.SCHEMA_INVALID, "root element is not a gw:Transmission")
    h = _Fields(root.find(f"{_PREFIX}Header"), "gw:Header/")
    try:
        created = parse_utc(h.required("Created"))
    except ValueError as exc:
        raise Rejection(Reason.SCHEMA_INVALID, "Created is not a UTC time") from exc
    basis = h.element("LegalBasis")
    return Header(
        message_id=h.required("MessageId"),
        reference=h.required("Reference"),
        message_type=h.required("Type"),
        sender=h.required("Sender"),
        receiver=h.required("Receiver"),
        created=created,
        in_reply_to=h.text("InReplyTo"),
        urgent=h.required("Urgency") == "urgent",
        case_reference=h.text("Case"),
        sender_role=h.required("SenderRole"),
        legal_basis=h.text("LegalBasis"),
        rules_version=None if basis is None else basis.get("rules"),
        item_id=h.text("ItemId"),
    )


def read_form(root: etree._Element) -> etree._Element:
    body = root.find("gw:Body", _NS)
    if body is None or len(body) != 1:
        raise Rejection(Reason.SCHEMA_INVALID, "Body must hold exactly one form")
    return body[0]


@dataclass(frozen=True)
class Acknowledgement:
    """The signed acknowledgement of receipt: proof of transmission and time of receipt."""

    acknowledgement_id: str
    message_id: str | None
    sender: str
    receiver: str | None
    digest: str
    receipt_time: datetime
    status: str
    reason_code: str | None
    reason_text: str | None
    head_sequence: int
    head_hash: str

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    @classmethod
    def of_acceptance(
        cls,
        message_id: str,
        sender: str,
        receiver: str,
        digest: str,
        receipt_time: datetime,
        head: tuple[int, str],
    ) -> Acknowledgement:
        """A positive acknowledgement of `message_id`, naming our register head (sequence,
        hash) after its reception was recorded."""
        return cls(
            str(uuid.uuid4()),
            message_id,
            sender,
            receiver,
            digest,
            receipt_time,
            "accepted",
            None,
            None,
            head[0],
            head[1],
        )


def build_acknowledgement(ack: Acknowledgement) -> etree._Element:
    root = etree.Element(f"{{{ENVELOPE_NS}}}Acknowledgement", nsmap={"gw": ENVELOPE_NS})
    root.set("version", "1")
    _el(root, "AcknowledgementId", ack.acknowledgement_id)
    if ack.message_id is not None:
        _el(root, "MessageId", ack.message_id)
    _el(root, "Sender", ack.sender)
    if ack.receiver is not None:
        _el(root, "Receiver", ack.receiver)
    _el(root, "Digest", ack.digest)
    _el(root, "ReceiptTime", utc_text(ack.receipt_time))
    _el(root, "Status", ack.status)
    if ack.reason_code is not None:
        reason = _el(root, "Reason", (ack.reason_text or "")[:1000])
        reason.set("code", ack.reason_code)
    head = _el(root, "RegisterHead")
    _el(head, "Sequence", str(ack.head_sequence))
    _el(head, "Hash", ack.head_hash)
    return root


def read_acknowledgement(root: etree._Element) -> Acknowledgement:
    if root.tag != f"{{{ENVELOPE_NS}}}Acknowledgement":
        raise Rejection(Reason.SCHEMA_INVALID, "root element is not a gw:Acknowledgement")
    a = _Fields(root, "")
    head = _Fields(a.element("RegisterHead"), "gw:RegisterHead/")
    reason = a.element("Reason")
    try:
        receipt = parse_utc(a.required("ReceiptTime"))
        sequence = int(head.required("Sequence"))
    except ValueError as exc:
        raise Rejection(Reason.SCHEMA_INVALID, "bad ReceiptTime or RegisterHead") from exc
    return Acknowledgement(
        acknowledgement_id=a.required("AcknowledgementId"),
        message_id=a.text("MessageId"),
        sender=a.required("Sender"),
        receiver=a.text("Receiver"),
        digest=a.required("Digest"),
        receipt_time=receipt,
        status=a.required("Status"),
        reason_code=None if reason is None else reason.get("code"),
        reason_text=None if reason is None else (reason.text or ""),
        head_sequence=sequence,
        head_hash=head.required("Hash"),
    )
