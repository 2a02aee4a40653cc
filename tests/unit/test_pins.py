"""The history of signing pins (Art. 41(1)-(2) directory, Art. 40(9) register): a signature
counts for an authority only if the directory in force when it was made pinned its
certificate for that authority."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from gateway.core.pins import PinHistory, PinSnapshot
from gateway.pki.anchors import Revocations, TrustAnchors
from gateway.pki.certs import load_certificate
from gateway.pki.demo import create_demo_network
from gateway.pki.signed_directory import directory_pins
from gateway.service.audit import Signers
from tests.pki_helpers import revoke

T1 = datetime(2026, 11, 1, tzinfo=UTC)
T2 = T1 + timedelta(days=10)
T3 = T1 + timedelta(days=20)
OLD, NEW, GR = "a" * 64, "b" * 64, "c" * 64

HISTORY = PinHistory(
    [
        PinSnapshot(3, T3, {"NL-DU": frozenset({NEW}), "GR-DU": frozenset({GR})}),
        PinSnapshot(1, T1, {"NL-DU": frozenset({OLD}), "GR-DU": frozenset({GR})}),
        PinSnapshot(2, T2, {"NL-DU": frozenset({OLD, NEW}), "GR-DU": frozenset({GR})}),
    ]
)


def test_the_version_in_force_is_the_newest_published_by_then() -> None:
    assert [s.version for s in HISTORY.snapshots] == [1, 2, 3]
    in_force = HISTORY.in_force
    assert [in_force(t).version for t in (T1, T2 - timedelta(seconds=1), T2, T3)] == [
        1,
        1,
        2,
        3,
    ]


def test_a_rotated_key_counts_for_what_it_signed_while_pinned_and_not_after() -> None:
    assert HISTORY.refusal("NL-DU", OLD, T2 + timedelta(days=1)) is None
    late = HISTORY.refusal("NL-DU", OLD, T3 + timedelta(seconds=1))
    assert late is not None and "not pinned for NL-DU" in late and "version 2 pinned it" in late


def test_within_the_second_of_a_publication_the_version_before_may_still_be_in_force() -> None:
    """Published times are whole seconds: a signature made in the second a directory that
    unpins the key was published may have come before it."""
    assert HISTORY.refusal("NL-DU", OLD, T3 + timedelta(milliseconds=500)) is None
    assert HISTORY.refusal("NL-DU", OLD, T3 + timedelta(seconds=1)) is not None
    assert HISTORY.refusal("NL-DU", GR, T3 + timedelta(milliseconds=500)) is not None


def test_another_authoritys_key_never_counts() -> None:
    reason = HISTORY.refusal("NL-DU", GR, T2)
    assert reason is not None and "signed with GR-DU's signing certificate, not NL-DU's" in reason


def test_an_unknown_key_or_an_empty_history_never_counts() -> None:
    assert "not a signing certificate pinned for NL-DU" in (
        HISTORY.refusal("NL-DU", "d" * 64, T2) or ""
    )
    assert PinHistory([]).refusal("NL-DU", OLD, T2) is not None


def test_before_the_oldest_known_version_the_oldest_one_decides() -> None:
    """A gateway upgraded from a release that kept no history knows only its directory then."""
    assert HISTORY.refusal("NL-DU", OLD, T1 - timedelta(days=365)) is None
    assert HISTORY.refusal("NL-DU", NEW, T1 - timedelta(days=365)) is not None


def test_a_signing_key_revoked_as_superseded_still_vouches_for_what_it_signed_before(
    tmp_path: Path,
) -> None:
    """The runbook revokes a rotated-out key as superseded: what it signed before still
    counts; what it signs after does not; a key revoked for compromise vouches for nothing
    (the times it signs are its own statements)."""
    pki = create_demo_network(tmp_path / "pki", ["BE-DU", "NL-DU"])
    anchors = TrustAnchors.load(pki.ca_cert)
    pins = PinHistory([directory_pins(pki.directory, anchors)])
    nl = load_certificate(pki.authorities["NL-DU"].signing_cert)
    be = load_certificate(pki.authorities["BE-DU"].signing_cert)
    now = datetime.now(UTC)
    revoke(pki, nl, reason=x509.ReasonFlags.superseded, at=now)
    revoke(pki, be, reason=x509.ReasonFlags.key_compromise, at=now)
    signers = Signers(anchors, pins, Revocations.load(pki.crl, anchors, now))
    before, after = now - timedelta(seconds=30), now + timedelta(seconds=1)
    assert signers.refusal(nl, "NL-DU", before) is None
    assert "was revoked before then" in (signers.refusal(nl, "NL-DU", after) or "")
    assert "revoked for key compromise" in (signers.refusal(be, "BE-DU", before) or "")
    assert Signers(anchors, pins).refusal(be, "BE-DU", before) is None
