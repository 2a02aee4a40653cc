"""A refused submission never echoes what was submitted (personal data): not in the API's
problem, not in the folder adapter's error file, not in any log line. Validation messages
used to be redacted with regular expressions over the validator's text, which broke on
apostrophes (`'1990The value is...` kept the start of a date of birth). They are now built
from the field's path and the schema's constraint alone; these tests submit values with
apostrophes, quotes and angle brackets in every field that can be refused and look for any
four characters of them in every answer, file and log line."""

from __future__ import annotations

import asyncio
import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.folder.adapter import FolderAdapter, FolderConfig
from adapters.folder.xml_drop import submission_to_xml
from gateway.examples import attachments_for
from tests.integration.conftest import Harness, example

pytestmark = pytest.mark.attack

NAME = "O'Brien"
DATE = "1990-13-45'x"
MARKUP = 'Zoë\'s "x" <b>&amp;'


def leaked(value: str, text: str) -> list[str]:
    """Every four characters of `value` found in `text` (any longer substring holds one)."""
    return [value[i : i + 4] for i in range(len(value) - 3) if value[i : i + 4] in text]


def request() -> dict[str, Any]:
    form = example("take-charge-request.json")
    return {
        "type": "take-charge-request",
        "receiver": "NL-DU",
        "case_number": "ECHO-1",
        "form": form,
        "attachments": attachments_for(form),
    }


def in_applicant(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda s: s["form"]["applicant"].__setitem__(key, value)


# (what is attacked, the value, how it is put into a valid take charge request)
ATTACKS: list[tuple[str, str, Callable[[dict[str, Any]], None]]] = [
    ("date of birth", DATE, in_applicant("dateOfBirth", DATE)),
    ("date of birth, quoted", f"'{DATE}", in_applicant("dateOfBirth", f"'{DATE}")),
    ("sex", NAME, in_applicant("sex", NAME)),
    ("nationality", MARKUP, in_applicant("nationality", [MARKUP])),
    ("surname, too long", NAME * 20, in_applicant("surname", [NAME * 20])),
    (
        "country of birth",
        f"{NAME} <x>",
        lambda s: s["form"]["applicant"]["placeOfBirth"].__setitem__("country", f"{NAME} <x>"),
    ),
    ("type", f'{NAME}\'s "x"', lambda s: s.__setitem__("type", f'{NAME}\'s "x"')),
    ("receiver", NAME, lambda s: s.__setitem__("receiver", NAME)),
    ("case number", DATE, lambda s: s.__setitem__("case_number", DATE)),
    ("eurodac reference", MARKUP, lambda s: s.__setitem__("eurodac_reference", MARKUP)),
    (
        "attachment file name",
        f"{NAME}.pdf",
        lambda s: s["attachments"][0].__setitem__("fileName", f"{NAME}.pdf"),
    ),
]
REPLY_ATTACKS: list[tuple[str, str, Callable[[dict[str, Any]], None]]] = [
    ("in_reply_to", NAME, lambda s: s.__setitem__("in_reply_to", NAME)),
    ("case", DATE, lambda s: s.__setitem__("case", DATE)),
]


def reply() -> dict[str, Any]:
    return {
        "type": "take-charge-reply",
        "receiver": "NL-DU",
        "form": example("take-charge-reply-acceptance"),
    }


async def post(h: Harness, body: dict[str, Any]) -> tuple[int, str]:
    gw = h.net.gateways["BE-DU"]
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            gw.api_url + "/api/v1/messages",
            json=body,
            headers={"Authorization": f"Bearer {gw.tokens['case-officer']}"},
        ) as resp,
    ):
        return resp.status, await resp.text()


async def test_a_refused_submission_echoes_no_value_in_the_problem_or_the_logs(
    harness: Harness, capfd: pytest.CaptureFixture[str]
) -> None:
    await harness.start("BE-DU")
    attempts = [(what, value, mutate, request) for what, value, mutate in ATTACKS] + [
        (what, value, mutate, reply) for what, value, mutate in REPLY_ATTACKS
    ]
    for what, value, mutate, base in attempts:
        body = copy.deepcopy(base())
        mutate(body)
        status, problem = await post(harness, body)
        assert status in (400, 422), (what, status, problem)
        assert json.loads(problem)["detail"], what
        assert leaked(value, problem) == [], (what, problem)
    logs = capfd.readouterr()
    for value in {value for _, value, *_ in attempts}:
        assert leaked(value, logs.out + logs.err) == [], value


def folder_adapter(h: Harness, root: Path) -> FolderAdapter:
    gw = h.net.gateways["BE-DU"]
    return FolderAdapter(FolderConfig(gw.api_url, gw.tokens["case-officer"], root))


def esc(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


CASE = "<s:CaseNumber>ECHO-1</s:CaseNumber>"
# (value, a fragment of the valid XML drop file, the fragment with the value put in)
XML_ATTACKS = [
    (DATE, "<c:dateOfBirth>1994-03-17<", "<c:dateOfBirth>{}<"),
    (f"'{DATE}", "<c:dateOfBirth>1994-03-17<", "<c:dateOfBirth>{}<"),
    (NAME, "<c:sex>female<", "<c:sex>{}<"),
    (MARKUP, "<c:nationality>XXA<", "<c:nationality>{}<"),
    (NAME * 20, "<c:surname>EXAMPLE-DOE<", "<c:surname>{}<"),
    (f"{NAME} <x>", "<c:country>XXA<", "<c:country>{}<"),
    (NAME, "<s:Receiver>NL-DU<", "<s:Receiver>{}<"),
    (DATE, CASE, "<s:CaseNumber>{}</s:CaseNumber>"),
    (NAME * 40, CASE, "<s:CaseNumber>{}</s:CaseNumber>"),
    (NAME, CASE, CASE + "<s:Urgent>{}</s:Urgent>"),
    (MARKUP, CASE, CASE + "<s:EurodacReference>{}</s:EurodacReference>"),
    (f"{NAME}.pdf", 'fileName="visa-copy.pdf"', 'fileName="{}"'),
    (NAME * 30, 'fileName="visa-copy.pdf"', 'fileName="{}"'),
    (f"{NAME}<>", 'mediaType="application/pdf">', 'mediaType="application/pdf">{}'),
]


async def test_a_refused_drop_file_echoes_no_value_in_its_error_file_or_the_logs(
    harness: Harness, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Every attack dropped as a JSON file, and again as an XML file (which also carries
    values in the submission's own elements and attributes)."""
    await harness.start("BE-DU")
    adapter = folder_adapter(harness, tmp_path / "folders")
    out = adapter.folder("outgoing")
    files: dict[str, str] = {}
    for i, (_, value, mutate) in enumerate(ATTACKS):
        body = request()
        mutate(body)
        (out / f"attack-{i}.json").write_text(json.dumps(body))
        files[f"attack-{i}.json"] = value
    valid = submission_to_xml(request()).decode()
    for i, (value, fragment, attacked) in enumerate(XML_ATTACKS):
        assert fragment in valid
        text = valid.replace(fragment, attacked.format(esc(value)), 1)
        (out / f"attack-{i}.xml").write_text(text)
        files[f"attack-{i}.xml"] = value
    for name in files:
        os.utime(out / name, (0, 0))  # long untouched: complete
    try:
        for _ in range(50):
            await adapter.run_once()
            if not any(out.iterdir()):
                break
            await asyncio.sleep(0.1)
    finally:
        await adapter.close()
    errors = adapter.folder("error")
    for name, value in files.items():
        explanation = (errors / f"{name}.error.txt").read_text()
        assert explanation.strip(), name
        assert leaked(value, explanation) == [], (name, explanation)
    logs = capfd.readouterr()
    for value in set(files.values()):
        assert leaked(value, logs.out + logs.err) == [], value
