"""Readiness of the trust in force (issue 17, item 3): what `GET /readyz` and the metric
`gateway_own_certificate_status` say as time passes a certificate's end or a CRL's next
update, or a CRL revokes one of our own certificates (Art. 41: only the notified authorities'
valid certificates are trusted)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from gateway.metrics import method_label
from gateway.pki.anchors import Revocations, TrustAnchors
from gateway.pki.certs import load_certificate
from gateway.pki.demo import create_demo_network
from gateway.pki.signed_directory import load_signed_directory
from gateway.service.readiness import own_certificates, trust_failures
from gateway.service.trust import TrustState, certificate_report, load_signer_files

NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
END = NOW - timedelta(minutes=5) + timedelta(days=30, minutes=5)
"""When every certificate of the demo network, and its CRL, run out."""


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> TrustState:
    net = create_demo_network(
        tmp_path_factory.mktemp("ready") / "n", ["BE-DU", "NL-DU"], valid_days=30, now=NOW
    )
    files = net.authorities["BE-DU"]
    anchors = TrustAnchors.load(net.ca_cert)
    crl = Revocations.load(net.crl, anchors, NOW)
    return TrustState(
        anchors,
        crl,
        load_signed_directory(net.directory, anchors, NOW, crl),
        load_certificate(files.tls_cert),
        load_signer_files(files.signing_cert, files.signing_key),
    )


def test_trust_just_loaded_is_ready(state: TrustState) -> None:
    assert trust_failures(state, "BE-DU", NOW) == []
    report = certificate_report(state, "BE-DU", NOW, 0)
    assert own_certificates(report, "BE-DU") == {"tls": True, "signing": True}


def test_a_certificate_within_the_warning_window_is_still_usable(state: TrustState) -> None:
    report = certificate_report(state, "BE-DU", END - timedelta(days=1), 400)
    assert {c.status for c in report if c.owner == "BE-DU"} == {"expiring"}
    assert own_certificates(report, "BE-DU") == {"tls": True, "signing": True}
    assert trust_failures(state, "BE-DU", END - timedelta(days=1)) == []


def test_past_their_end_certificates_directory_and_crl_all_fail(state: TrustState) -> None:
    """The demo network's certificates, publisher and CRL end together."""
    later = END + timedelta(seconds=1)
    assert trust_failures(state, "BE-DU", later) == ["directory", "certificates", "crl"]
    assert own_certificates(certificate_report(state, "BE-DU", later, 0), "BE-DU") == {
        "tls": False,
        "signing": False,
    }


def test_without_a_crl_configured_the_crl_check_does_not_apply(state: TrustState) -> None:
    no_crl = dataclasses.replace(state, revocations=None)
    later = END + timedelta(seconds=1)
    assert trust_failures(no_crl, "BE-DU", later) == ["directory", "certificates"]


def test_a_crl_past_its_next_update_fails_alone(state: TrustState) -> None:
    assert state.revocations is not None
    stale = dataclasses.replace(state.revocations, next_update=NOW + timedelta(hours=1))
    at = NOW + timedelta(hours=1)
    assert trust_failures(dataclasses.replace(state, revocations=stale), "BE-DU", at) == ["crl"]


def test_our_revoked_signing_certificate_fails_certificates(state: TrustState) -> None:
    assert state.revocations is not None
    serial = state.signer.certificate.serial_number
    revoked = dataclasses.replace(state.revocations, serials=frozenset({serial}))
    ours = dataclasses.replace(state, revocations=revoked)
    assert trust_failures(ours, "BE-DU", NOW) == ["certificates"]
    report = certificate_report(ours, "BE-DU", NOW, 0)
    assert own_certificates(report, "BE-DU") == {"tls": True, "signing": False}


def test_a_revoked_directory_publisher_fails_directory(state: TrustState) -> None:
    assert state.revocations is not None
    serial = state.published.publisher.serial_number
    revoked = dataclasses.replace(state.revocations, serials=frozenset({serial}))
    assert trust_failures(dataclasses.replace(state, revocations=revoked), "BE-DU", NOW) == [
        "directory"
    ]


def test_an_authority_the_directory_does_not_name_is_not_ready(state: TrustState) -> None:
    assert trust_failures(state, "GR-DU", NOW) == ["directory"]


def test_http_method_labels_cannot_grow_without_bound() -> None:
    """A client may send any token as its method; the label keeps a fixed set."""
    assert method_label("GET") == "GET"
    assert method_label("POST") == "POST"
    assert method_label("BREW") == "other"
    assert method_label("get") == "other"
