"""Shared fixtures: one demo PKI per test session (key generation is the slow part)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.context import load_signer_files
from gateway.pki.demo import DemoNetwork, create_demo_network
from gateway.xml.signature import Signer

CODES = ("BE-DU", "NL-DU", "GR-DU")


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
