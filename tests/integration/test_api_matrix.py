"""The internal API, attacked from the inside: every operation of the OpenAPI document times
every role (and no token), injection attempts in the register and deadline filters, and
oversized JSON. Roles decide everything (Art. 39(3)-(4): health data only for health
practitioners; Art. 40(9): the register for auditors)."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from gateway.api.openapi import openapi_document
from gateway.core.roles import PERMISSIONS
from tests.integration.conftest import Harness

pytestmark = pytest.mark.attack

ROLES = ("case-officer", "health-practitioner", "administrator", "auditor", "liaison-officer")
# Which permission each operation needs (the handlers' @requires); None: public.
NEEDS: dict[str, str | None] = {
    "submit": "submit",
    "listMessages": "read-messages",
    "getMessage": "read-messages",
    "getTransmission": "read-messages",
    "getAttachment": "read-messages",
    "inbox": "read-messages",
    "consume": "read-messages",
    "events": "read-messages",
    "getCase": "read-messages",
    "deadlines": "read-messages",
    "register": "read-register",
    "registerIntegrity": "read-register",
    "registerCsv": "read-register",
    "registerCsvSignature": "read-register",
    "auditCase": "read-register",
    "auditAcknowledgement": "read-register",
    "auditExport": "read-register",
    "auditSigningCertificate": "read-register",
    "auditChoices": "read-register",
    "advanceClock": "adjust-clock",
    "adminDirectory": "administer",
    "adminCertificates": "administer",
    "adminCrl": "administer",
    "adminReload": "administer",
    "adminOutbox": "administer",
    "adminRetry": "administer",
    "adminCancel": "administer",
    "adminTrust": "administer",
    "adminPeers": "administer",
    "adminStats": "administer",
    "adminDeletionOrder": "administer",
    "metrics": "administer",
    "health": "health",
    "operationalItems": "operational",
    "operationalItem": "operational",
    "operationalAttachment": "operational",
    "livez": None,
    "readyz": None,
}


def operations() -> list[tuple[str, str, str]]:
    out = []
    for path, item in openapi_document()["paths"].items():
        for method, op in item.items():
            out.append((op["operationId"], method.upper(), path))
    return out


def test_every_documented_operation_has_a_known_permission() -> None:
    assert {op for op, _, _ in operations()} == set(NEEDS)


async def call(h: Harness, method: str, path: str, token: str | None, **kw: Any) -> tuple[int, str]:
    url = h.net.gateways["BE-DU"].api_url + re.sub(r"\{[^}]+\}", "x", path)
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if method == "POST" and "json" not in kw:
        kw["json"] = {}
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, url, headers=headers, **kw) as resp,
    ):
        return resp.status, resp.content_type


async def test_every_operation_times_every_role(harness: Harness) -> None:
    h = harness
    await h.start("BE-DU")
    tokens = h.net.gateways["BE-DU"].tokens
    seen = 0
    for operation, method, path in operations():
        needed = NEEDS[operation]
        if needed is None:  # the probes: the same answer for anyone, token or not
            for token in (None, "not-a-token-of-this-gateway", *tokens.values()):
                assert (await call(h, method, path, token))[0] == 200, (operation, token)
            continue
        allowed = PERMISSIONS[needed]
        status, kind = await call(h, method, path, None)
        assert status == 401 and kind == "application/problem+json", (operation, status)
        status, _ = await call(h, method, path, "not-a-token-of-this-gateway")
        assert status == 401, operation
        for role in ROLES:
            status, kind = await call(h, method, path, tokens[role])
            if role in allowed:
                assert status not in (401, 403) or operation == "advanceClock", (
                    operation,
                    role,
                    status,
                )
            else:
                assert status == 403 and kind == "application/problem+json", (
                    operation,
                    role,
                    status,
                )
            assert status < 500, (operation, role, status)
            seen += 1
    assert seen == sum(1 for needed in NEEDS.values() if needed) * len(ROLES)


INJECTIONS = [
    "' OR '1'='1",
    "x'; DROP TABLE register; --",
    '" OR 1=1 --',
    "%",
    "_",
    "\\",
    "\u0000",
    "../../etc/passwd",
    "${jndi:ldap://127.0.0.1/x}",
    "<script>alert(1)</script>",
    "a" * 5000,
    "\u202e\u0301",
]


@pytest.mark.parametrize("value", INJECTIONS, ids=range(len(INJECTIONS)))
async def test_injection_in_filters_matches_nothing_and_breaks_nothing(
    harness: Harness, value: str
) -> None:
    h = harness
    if not h.running:
        await h.start("BE-DU")
    tokens = h.net.gateways["BE-DU"].tokens
    api = h.net.gateways["BE-DU"].api_url
    store = h.ctx("BE-DU").store
    before = (await store.register.head())[0]
    checks = [
        ("/api/v1/register", "auditor", {"reference": value, "event": value}),
        ("/api/v1/register", "auditor", {"reference_prefix": value}),
        ("/api/v1/register.csv.sig", "auditor", {"reference_prefix": value}),
        ("/api/v1/register.csv", "auditor", {"peer": value}),
        ("/api/v1/deadlines", "case-officer", {"rule": value, "peer": value}),
        ("/api/v1/events", "case-officer", {"case": value}),
    ]
    async with aiohttp.ClientSession() as s:
        for path, role, params in checks:
            async with s.get(
                api + path, params=params, headers={"Authorization": f"Bearer {tokens[role]}"}
            ) as resp:
                assert resp.status in (200, 400), (path, resp.status)
                if resp.status == 200 and resp.content_type == "application/json":
                    assert (await resp.json())["items"] == [], path
    assert (await store.register.head())[0] == before, "nothing was written"
    rows = await store.register.query(limit=1000)
    assert rows and rows[0].event == "configuration-loaded", "nothing was dropped"


async def post_raw(h: Harness, body: bytes) -> tuple[int, str, Any]:
    """POST raw bytes as a submission of BE-DU's case officer: status, type, parsed body."""
    gw = h.net.gateways["BE-DU"]
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            gw.api_url + "/api/v1/messages",
            data=body,
            headers={
                "Authorization": f"Bearer {gw.tokens['case-officer']}",
                "Content-Type": "application/json",
                "Idempotency-Key": "k-1",
            },
        ) as resp,
    ):
        parsed = await resp.json(content_type=None) if resp.status != 413 else None
        return resp.status, resp.content_type, parsed


async def test_oversized_json_is_refused_before_it_is_parsed(harness: Harness) -> None:
    await harness.start("BE-DU")
    blob = b'{"type": "take-charge-request", "form": "' + b"x" * (13 * 1024 * 1024) + b'"}'
    status, _, _ = await post_raw(harness, blob)
    assert status == 413


async def test_deeply_nested_json_is_a_clear_error_not_a_crash(harness: Harness) -> None:
    await harness.start("BE-DU")
    nested = b'{"type": "take-charge-request", "receiver": "NL-DU", "form": ' + (
        b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"
    )
    status, kind, _ = await post_raw(harness, nested)
    assert status in (400, 422)
    assert kind == "application/problem+json"


async def test_text_xml_cannot_carry_is_refused_naming_the_field(harness: Harness) -> None:
    """Found by the OpenAPI property test: a lone surrogate in a form was a server error."""
    await harness.start("BE-DU")
    for bad in ('"\\udbc6x"', '"a\\u0001b"', '"\\uffff"'):
        body = (
            '{"type": "take-charge-request", "receiver": "NL-DU", "case_number": "X1", '
            '"form": {"applicant": {"surname": [' + bad + "]}}}"
        )
        status, _, problem = await post_raw(harness, body.encode())
        assert status == 422, bad
        assert problem["field"] == "/form/applicant/surname/0"


JSON_OPERATIONS = [
    (op["operationId"], path)
    for path, item in openapi_document()["paths"].items()
    for op in item.values()
    if "application/json" in op.get("requestBody", {}).get("content", {})
]
A_ROLE_ALLOWED = {
    operation: sorted(PERMISSIONS[NEEDS[operation] or ""])[0] for operation, _ in JSON_OPERATIONS
}
DEPTH = 200_000
DEEP_BODIES = {
    "arrays": b"[" * DEPTH + b"]" * DEPTH,
    "objects": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    "inside-a-field": b'{"advance_seconds": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
}


def test_every_json_body_endpoint_is_covered() -> None:
    assert {op for op, _ in JSON_OPERATIONS} == {"submit", "advanceClock"}


@pytest.mark.parametrize("shape", sorted(DEEP_BODIES))
@pytest.mark.parametrize(("operation", "path"), JSON_OPERATIONS)
async def test_a_200000_deep_json_body_is_a_400_problem_on_every_json_endpoint(
    harness: Harness, operation: str, path: str, shape: str
) -> None:
    """The depth limit held for submissions only: the same body to POST /api/v1/admin/clock
    was a 500 (the parser's recursion limit)."""
    await harness.start("BE-DU")
    gw = harness.net.gateways["BE-DU"]
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            gw.api_url + path,
            data=DEEP_BODIES[shape],
            headers={
                "Authorization": f"Bearer {gw.tokens[A_ROLE_ALLOWED[operation]]}",
                "Content-Type": "application/json",
            },
        ) as resp,
    ):
        assert resp.status == 400, (operation, shape)
        assert resp.content_type == "application/problem+json"
        assert "nests deeper than" in (await resp.json(content_type=None))["detail"]


@pytest.mark.parametrize(("operation", "path"), JSON_OPERATIONS)
async def test_an_oversized_json_body_is_a_413_problem_on_every_json_endpoint(
    harness: Harness, operation: str, path: str
) -> None:
    await harness.start("BE-DU")
    gw = harness.net.gateways["BE-DU"]
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            gw.api_url + path,
            data=b'{"x": "' + b"x" * (13 * 1024 * 1024) + b'"}',
            headers={
                "Authorization": f"Bearer {gw.tokens[A_ROLE_ALLOWED[operation]]}",
                "Content-Type": "application/json",
            },
        ) as resp,
    ):
        assert resp.status == 413, operation
        assert resp.content_type == "application/problem+json"


async def test_a_clock_move_too_large_for_a_number_is_a_400_not_a_500(harness: Harness) -> None:
    await harness.start("BE-DU")
    gw = harness.net.gateways["BE-DU"]
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            gw.api_url + "/api/v1/admin/clock",
            data=b'{"advance_seconds": 1' + b"0" * 400 + b"}",
            headers={
                "Authorization": f"Bearer {gw.tokens['administrator']}",
                "Content-Type": "application/json",
            },
        ) as resp,
    ):
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"
