"""Submissions dropped as XML: `outgoing/<name>.xml` holds a `<Submission>` of
gateway/schemas/folder-submission.xsd, the standard form inside `<Form>` in its own namespace:

    <Submission xmlns="urn:eu:dublin:gateway:folder-submission:1">
      <Receiver>NL-DU</Receiver>
      <CaseNumber>2026-0042</CaseNumber>
      <Attachment fileName="visa-copy.pdf" mediaType="application/pdf">JVBERi0x...</Attachment>
      <Form>
        <TakeChargeRequest xmlns="urn:eu:dublin:forms:take-charge-request:1">...</TakeChargeRequest>
      </Form>
    </Submission>

The form's namespace names its type. The file is read as the gateway reads a transmission
(no DOCTYPE, no entities, no comments, bounded size and depth), checked against the
submission schema and then the form's own schema, and turned into the JSON body of
`POST /api/v1/messages` by the same XSD-driven mapping the gateway uses: what the gateway
signs is what the file held. A file that does not pass says why and on which line; no value
from it is quoted (personal data stays out of logs and explanations)."""

from __future__ import annotations

from functools import cache
from typing import Any

import xmlschema
from lxml import etree

from gateway.core.forms import FORM_TYPES, form_type_by_namespace
from gateway.core.policy import Rejection
from gateway.xml.forms import (
    FormError,
    form_from_element,
    form_to_element,
    validate_form,
)
from gateway.xml.parser import parse_untrusted
from gateway.xml.schemas import SCHEMA_DIR, compile_schema
from gateway.xml.violations import first_violation

SUBMISSION_NS = "urn:eu:dublin:gateway:folder-submission:1"
MAX_DEPTH = 64
_FIELDS = {
    "CaseNumber": "case_number",
    "InReplyTo": "in_reply_to",
    "Case": "case",
    "EurodacReference": "eurodac_reference",
}


class DropFileError(ValueError):
    """A dropped file that is not a valid submission; str() is the explanation."""


@cache
def submission_schema() -> etree.XMLSchema:
    return compile_schema("folder-submission.xsd")


@cache
def _submission_model() -> Any:
    """The same schema for xmlschema, which explains a refusal without quoting values."""
    return xmlschema.XMLSchema(str(SCHEMA_DIR / "folder-submission.xsd"), defuse="always")


def _q(name: str) -> str:
    return f"{{{SUBMISSION_NS}}}{name}"


def submission_from_xml(data: bytes, max_bytes: int) -> dict[str, Any]:
    """The JSON submission a dropped XML file stands for, or DropFileError saying why not."""
    try:
        root = parse_untrusted(data, max_bytes=max_bytes, max_depth=MAX_DEPTH)
    except Rejection as exc:
        raise DropFileError(f"not a submission: {exc.text}") from exc
    if root.tag != _q("Submission"):
        raise DropFileError(
            f"not a submission: the root element must be Submission in the namespace "
            f"{SUBMISSION_NS} (gateway/schemas/folder-submission.xsd)"
        )
    schema = submission_schema()
    if not schema.validate(root):
        violation = first_violation(_submission_model(), root)
        if violation is None:
            error: Any = schema.error_log[0]  # type: ignore[index]
            raise DropFileError(f"line {error.line}: not a valid submission")
        raise DropFileError(f"line {violation.element.sourceline}: {violation.text}")
    form_parent = root.find(_q("Form"))
    assert form_parent is not None  # the schema requires it
    (element,) = [child for child in form_parent if isinstance(child.tag, str)]
    name = etree.QName(element)
    form_type = form_type_by_namespace(name.namespace or "")
    if form_type is None or name.localname != form_type.root:
        known = ", ".join(f"{ft.root} in {ft.namespace}" for ft in FORM_TYPES.values())
        raise DropFileError(
            f"line {element.sourceline}: the element in Form is not a standard form; "
            f"one of: {known}"
        )
    try:
        validate_form(form_type, element)
        _, form = form_from_element(element)
    except FormError as exc:
        where = f"line {exc.line}: " if exc.line else ""
        raise DropFileError(f"{where}{form_type.name}: {exc.message}") from exc
    submission: dict[str, Any] = {
        "type": form_type.name,
        "receiver": _text(root, "Receiver"),
        "form": form,
    }
    for tag, key in _FIELDS.items():
        value = _text(root, tag)
        if value is not None:
            submission[key] = value
    urgent = _text(root, "Urgent")
    if urgent is not None:
        submission["urgent"] = urgent in ("true", "1")
    attachments = [
        {
            "fileName": str(item.get("fileName", "")).strip(),
            "mediaType": str(item.get("mediaType", "")).strip(),
            "content": "".join((item.text or "").split()),
        }
        for item in root.iterchildren(_q("Attachment"))
    ]
    if attachments:
        submission["attachments"] = attachments
    return submission


def _text(root: etree._Element, tag: str) -> str | None:
    element = root.find(_q(tag))
    if element is None:
        return None
    return " ".join((element.text or "").split())  # xs:token: whitespace collapsed


def submission_to_xml(submission: dict[str, Any]) -> bytes:
    """The XML drop file of a JSON submission (for writers of XML and for the examples)."""
    form_type = FORM_TYPES[submission["type"]]
    root = etree.Element(_q("Submission"), nsmap={"s": SUBMISSION_NS})
    etree.SubElement(root, _q("Receiver")).text = submission["receiver"]
    for tag, key in _FIELDS.items():
        if submission.get(key) is not None:
            etree.SubElement(root, _q(tag)).text = str(submission[key])
    if submission.get("urgent"):
        etree.SubElement(root, _q("Urgent")).text = "true"
    for item in submission.get("attachments", []):
        attachment = etree.SubElement(
            root, _q("Attachment"), fileName=item["fileName"], mediaType=item["mediaType"]
        )
        attachment.text = item["content"]
    etree.SubElement(root, _q("Form")).append(form_to_element(form_type, submission["form"]))
    etree.indent(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8") + b"\n"
