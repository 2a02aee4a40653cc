"""The OpenAPI document at /api/v1/openapi.json is kept true: schemathesis generates input for
every operation from the document itself, calls a real gateway (a separate process, on
loopback) with the role the operation is for, and checks every answer (status code
documented, content type, response schema, no server error). Bounded: a few examples per
operation, no shrinking deadline surprises."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.checks import positive_data_acceptance

from gateway.core.forms import ALL_TYPES
from gateway.network import LocalGateway, build_local_network
from tests.integration.conftest import FAST_DELIVERY
from tests.integration.test_processes import spawn, stop

ROLE_OF = {
    "register": "auditor",
    "registerIntegrity": "auditor",
    "registerCsv": "auditor",
    "registerCsvSignature": "auditor",
    "auditCase": "auditor",
    "auditAcknowledgement": "auditor",
    "auditExport": "auditor",
    "auditSigningCertificate": "auditor",
    "auditChoices": "auditor",
    "advanceClock": "administrator",
    "adminDirectory": "administrator",
    "adminCertificates": "administrator",
    "adminCrl": "administrator",
    "adminReload": "administrator",
    "adminTrust": "administrator",
    "adminPeers": "administrator",
    "adminStats": "administrator",
    "adminDeletionOrder": "administrator",
    "operationalItems": "liaison-officer",
    "operationalItem": "liaison-officer",
    "operationalAttachment": "liaison-officer",
    "metrics": "administrator",
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGateway]:
    root: Path = tmp_path_factory.mktemp("openapi")
    net = build_local_network(root / "net", ["BE-DU", "NL-DU"], delivery=FAST_DELIVERY)
    gw = net.gateways["BE-DU"]
    proc = spawn(net, "BE-DU")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(gw.api_url + "/api/v1/openapi.json", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield gw
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def api_schema(gateway: LocalGateway) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(gateway.api_url + "/api/v1/openapi.json")


def _checker(operation: Any, url: str, headers: dict[str, str]) -> Callable[[], None]:
    """A bounded hypothesis run of one operation, checking every answer against the doc."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=int(os.environ.get("GATEWAY_OPENAPI_EXAMPLES", "10")),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Case) -> None:
        case.call_and_validate(
            base_url=url,
            headers=headers,
            timeout=10,
            # Schema-valid is not business-valid: conversation rules and the form schemas'
            # facets refuse much generated input, rightly, with 422 problems.
            excluded_checks=[positive_data_acceptance],
        )

    return check  # type: ignore[no-any-return]


def test_every_operation_answers_as_documented(
    api_schema: schemathesis.BaseSchema, gateway: LocalGateway
) -> None:
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        role = ROLE_OF.get(operation.definition.raw.get("operationId", ""), "case-officer")
        headers = {"Authorization": f"Bearer {gateway.tokens[role]}"}

        check = _checker(operation, gateway.api_url, headers)
        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # report every operation's failure
            failures.append(f"{operation.label}: {exc}"[:2000])
    assert operations == 38
    assert not failures, "\n\n".join(failures)


def test_the_document_is_openapi_3_1_and_covers_every_route(gateway: LocalGateway) -> None:
    doc = requests.get(gateway.api_url + "/api/v1/openapi.json", timeout=5).json()
    assert doc["openapi"] == "3.1.0"
    tags = {t["name"] for t in doc["tags"]}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert operation["summary"], f"{method} {path} has no summary"
            assert set(operation["tags"]) <= tags and operation["tags"], f"{method} {path}"
    assert {
        "/api/v1/messages",
        "/api/v1/inbox",
        "/api/v1/inbox/{message_id}/consumed",
        "/api/v1/events",
        "/api/v1/admin/reload",
    } <= set(doc["paths"])
    # Every form's body schema is there, derived from its XSD.
    forms = {k for k in doc["components"]["schemas"] if k.startswith("form-")}
    assert forms == {f"form-{name}" for name in ALL_TYPES}
