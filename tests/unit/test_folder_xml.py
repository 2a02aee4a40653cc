"""XML drop files of the folder adapter (adapters/folder/xml_drop.py): a case system that
writes XML submits every standard form of Art. 29-40 as a `<Submission>` file, and what the
gateway is asked to sign is exactly what the file held. A file that is not a valid submission
is refused with the line at fault and without quoting its values (personal data)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from adapters.folder.xml_drop import (
    SUBMISSION_NS,
    DropFileError,
    submission_from_xml,
    submission_to_xml,
)
from gateway.core.forms import FORM_TYPES
from gateway.examples import EXAMPLES, attachments_for, load_example
from tests.forms_strategies import form_data

MAX = 12 * 1024 * 1024
# The Dublin forms' examples: the folder adapter carries the case systems' forms (the
# operational family is submitted through the API by liaison officers).
EXAMPLE_FILES = sorted(
    p.name for p in EXAMPLES.glob("*.json") if any(p.name.startswith(n) for n in FORM_TYPES)
)


def type_of(example: str) -> str:
    """The form type an example file is for: the longest type name it starts with."""
    return max((name for name in FORM_TYPES if example.startswith(name)), key=len)


def submission(example: str, **fields: Any) -> dict[str, Any]:
    form = load_example(example)
    out: dict[str, Any] = {"type": type_of(example), "receiver": "NL-DU", "form": form}
    attachments = attachments_for(form)
    if attachments:
        out["attachments"] = attachments
    return out | fields


def refusal(data: bytes) -> str:
    with pytest.raises(DropFileError) as err:
        submission_from_xml(data, MAX)
    return str(err.value)


@pytest.mark.parametrize("example", EXAMPLE_FILES)
def test_art29_40_every_form_dropped_as_xml_is_the_same_submission_as_its_json(
    example: str,
) -> None:
    sent = submission(example, case_number="2026-0042")
    assert submission_from_xml(submission_to_xml(sent), MAX) == sent


def test_art29_a_reply_names_its_request_and_a_later_form_its_case() -> None:
    reply = submission(
        "take-charge-reply-acceptance.json",
        in_reply_to="4f0c1a52-1d7e-4b7a-9b43-0c6f1f0e2a11",
        urgent=True,
    )
    assert submission_from_xml(submission_to_xml(reply), MAX) == reply
    notice = submission("transfer-notice-arrived.json", case="BE12026-0042")
    assert submission_from_xml(submission_to_xml(notice), MAX) == notice


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(form_data(FORM_TYPES["take-charge-request"]))
def test_art29_any_valid_take_charge_request_dropped_as_xml_round_trips(
    form: dict[str, Any],
) -> None:
    sent = {"type": "take-charge-request", "receiver": "NL-DU", "form": form}
    assert submission_from_xml(submission_to_xml(sent), MAX) == sent


def test_the_documented_example_file_is_the_json_example() -> None:
    """gateway/examples/folder/take-charge-request.xml (docs/adapters/folder.md) stays true."""
    data = (EXAMPLES / "folder" / "take-charge-request.xml").read_bytes()
    assert submission_from_xml(data, MAX) == submission(
        "take-charge-request.json", case_number="2026-0042"
    )


def test_attachment_content_may_be_wrapped_over_lines() -> None:
    sent = submission("take-charge-request.json")
    content = sent["attachments"][0]["content"]
    wrapped = "\n".join(content[i : i + 60] for i in range(0, len(content), 60))
    data = submission_to_xml(sent).replace(content.encode(), wrapped.encode())
    assert submission_from_xml(data, MAX)["attachments"][0]["content"] == content
    assert base64.b64decode(content).startswith(b"%PDF")


def valid() -> bytes:
    return submission_to_xml(submission("take-charge-request.json", case_number="0042"))


def test_art40_9_a_value_the_form_schema_refuses_names_its_line_and_not_its_value() -> None:
    data = valid().replace(b"<c:dateOfBirth>1994-03-17<", b"<c:dateOfBirth>17.03.1994<")
    line = data[: data.index(b"17.03.1994")].count(b"\n") + 1
    why = refusal(data)
    assert why.startswith(f"line {line}: take-charge-request: ")
    assert "dateOfBirth" in why
    assert "17.03.1994" not in why, "no value from the file is quoted"


def test_a_missing_receiver_is_named_with_its_line() -> None:
    data = valid().replace(b"<s:Receiver>NL-DU</s:Receiver>\n", b"")
    why = refusal(data)
    assert why.startswith("line ") and "Receiver" in why


def test_the_form_element_must_be_one_known_standard_form() -> None:
    two = valid().replace(b"<s:Form>", b"<s:Form><x:Other xmlns:x='urn:example:other'/>")
    why = refusal(two)  # one form per file
    assert why.startswith("line 7: ") and "TakeChargeRequest" in why and "not expected" in why
    unknown = valid().replace(
        b"urn:eu:dublin:forms:take-charge-request:1", b"urn:example:not-a-form"
    )
    assert "not a standard form" in refusal(unknown)


def test_a_form_of_another_type_in_the_wrong_root_element_is_refused() -> None:
    data = valid().replace(b"f:TakeChargeRequest", b"f:TakeBackNotification")
    why = refusal(data)
    assert "not a standard form" in why and "TakeChargeRequest in " in why


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<s:Submission xmlns:s="' + SUBMISSION_NS.encode() + b'">&x;</s:Submission>',
            "DOCTYPE",
        ),
        (b"<s:Submission", "not well-formed"),
        (b"<Submission/>", "root element must be Submission"),
        (b'{"type": "take-charge-request"}', "not well-formed"),
        (b'<?xml version="1.0" encoding="ISO-8859-1"?><a/>', "UTF-8"),
    ],
)
def test_hostile_or_malformed_files_are_refused_with_a_reason(data: bytes, expected: str) -> None:
    assert expected in refusal(data)


def test_a_comment_that_could_split_a_value_is_refused() -> None:
    data = valid().replace(b"EXAMPLE-DOE", b"EXAMPLE<!-- -->-DOE")
    assert "comments are refused" in refusal(data)


def test_size_and_depth_are_bounded() -> None:
    data = valid()
    with pytest.raises(DropFileError, match="exceeds"):
        submission_from_xml(data, len(data) - 1)
    deep = b"<a>" * 100 + b"</a>" * 100
    assert "deeper" in refusal(deep)


def test_invalid_base64_in_an_attachment_is_refused() -> None:
    data = valid()
    start = data.index(b'mediaType="application/pdf">') + len(b'mediaType="application/pdf">')
    data = data[:start] + b"not*base64!" + data[data.index(b"</s:Attachment>") :]
    assert "Attachment" in refusal(data)


def test_example_files_cover_every_form_type() -> None:
    assert {type_of(name) for name in EXAMPLE_FILES} == set(FORM_TYPES)
