"""The history of signing pins (Art. 41(1)-(2) directory, Art. 40(9) register): a signature
counts for an authority only if the directory in force when it was made pinned its
certificate for that authority."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.core.pins import PinHistory, PinSnapshot

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
