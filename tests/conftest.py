"""Shared fixtures: one demo PKI per test session (key generation is the slow part)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import uvloop

from gateway.pki.demo import DemoNetwork, create_demo_network
from gateway.service.trust import load_signer_files
from gateway.xml.signature import Signer

CODES = ("BE-DU", "NL-DU", "GR-DU")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The tests run on the event loop `gateway serve` runs on (uvloop)."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DemoNetwork:
    return create_demo_network(tmp_path_factory.mktemp("pki"), CODES)


@pytest.fixture(scope="session")
def signers(pki: DemoNetwork) -> dict[str, Signer]:
    return {
        code: load_signer_files(files.signing_cert, files.signing_key)
        for code, files in pki.authorities.items()
    }


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line on the hostile-input and fault suites (README: "Hostile input and faults")."""
    from tests.ledger import LEDGER

    counts = {"attack": 0, "fault": 0}
    failed = 0
    for report in terminalreporter.stats.get("passed", []):
        for marker in counts:
            if marker in report.keywords:
                counts[marker] += 1
    for report in terminalreporter.stats.get("failed", []):
        if any(m in report.keywords for m in counts):
            failed += 1
    if counts["attack"] or counts["fault"]:
        terminalreporter.write_line(
            f"hostile input and faults: {counts['attack']} attacks refused, "
            f"{counts['fault']} fault scenarios survived ({failed} failed); messages sent "
            f"under faults {LEDGER.messages_sent}, lost {LEDGER.lost}, "
            f"duplicated {LEDGER.duplicated}"
        )
