"""The authority directory of Art. 41(1)-(2): only listed authorities, identified by pins."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.directory import Directory, DirectoryError


def entry(code: str = "BE-DU", **kw: Any) -> dict[str, Any]:
    n = sum(map(ord, code))
    base: dict[str, Any] = {
        "code": code,
        "member_state": code[:2],
        "name": f"Dublin unit {code}",
        "time_zone": "Europe/Brussels",
        "endpoint": "https://127.0.0.1:8443",
        "roles": ["case-officer", "auditor"],
        "tls_fingerprints": [f"{n:064x}"],
        "signing_fingerprints": [f"{n + 1:064x}"],
    }
    base.update(kw)
    return base


def test_art41_directory_round_trips_and_finds_by_pins() -> None:
    d = Directory.from_dict({"version": 3, "authorities": [entry(), entry("NL-DU")]})
    assert Directory.from_dict(d.to_dict()) == d
    be = d.get("BE-DU")
    assert be is not None
    assert d.by_tls_fingerprint(next(iter(be.tls_fingerprints))) == be
    assert d.by_signing_fingerprint(next(iter(be.signing_fingerprints))) == be
    assert d.by_tls_fingerprint(next(iter(be.signing_fingerprints))) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"code": "be-du"}, "code"),
        ({"member_state": "NL"}, "member_state"),
        ({"time_zone": "Mars/Olympus"}, "time zone"),
        ({"endpoint": "http://x"}, "https"),
        ({"roles": ["king"]}, "roles"),
        ({"tls_fingerprints": ["abc"]}, "fingerprint"),
        ({"tls_fingerprints": []}, "at least one"),
    ],
)
def test_malformed_entries_are_refused_with_a_reason(change: dict[str, Any], message: str) -> None:
    with pytest.raises(DirectoryError, match=message):
        Directory.from_dict({"authorities": [entry(**change)]})


def test_a_certificate_pinned_for_two_authorities_is_refused() -> None:
    a = entry()
    b = entry("NL-DU", tls_fingerprints=a["tls_fingerprints"])
    with pytest.raises(DirectoryError, match="pinned twice"):
        Directory.from_dict({"authorities": [a, b]})


def test_a_certificate_may_not_be_both_tls_and_signing() -> None:
    a = entry()
    a["signing_fingerprints"] = a["tls_fingerprints"]
    with pytest.raises(DirectoryError, match="both"):
        Directory.from_dict({"authorities": [a]})


def test_missing_field_is_named() -> None:
    a = entry()
    del a["endpoint"]
    with pytest.raises(DirectoryError, match="endpoint"):
        Directory.from_dict({"authorities": [a]})


def test_2024_1359_art12_a_crisis_derogation_is_published_with_its_decision_and_period() -> None:
    from datetime import date

    period = {"decision": "Council Implementing Decision (EU) 2027/1", "from": "2027-01-10"}
    period["until"] = "2027-04-09"
    d = Directory.from_dict({"authorities": [entry("NL-DU", crisis_derogations=[period])]})
    nl = d.authorities["NL-DU"]
    assert nl.derogating_on(date(2027, 1, 9)) is None
    assert nl.derogating_on(date(2027, 1, 10)).decision == period["decision"]  # type: ignore[union-attr]
    assert nl.derogating_on(date(2027, 4, 9)) is not None
    assert nl.derogating_on(date(2027, 4, 10)) is None
    assert Directory.from_dict(d.to_dict()) == d
    plain = Directory.from_dict({"authorities": [entry("BE-DU")]})
    assert "crisis_derogations" not in plain.to_dict()["authorities"][0], "only when published"


@pytest.mark.parametrize(
    ("derogation", "message"),
    [
        ({"decision": "D", "from": "2027-01-10"}, "decision, from, until"),
        ({"decision": "D", "from": "10/01/2027", "until": "2027-02-01"}, "YYYY-MM-DD"),
        ({"decision": "D", "from": "2027-02-10", "until": "2027-02-01"}, "ends on or after"),
        ({"decision": " ", "from": "2027-01-10", "until": "2027-02-01"}, "names its decision"),
    ],
)
def test_a_malformed_crisis_derogation_is_refused(derogation: dict[str, Any], message: str) -> None:
    with pytest.raises(DirectoryError, match=message):
        Directory.from_dict({"authorities": [entry("NL-DU", crisis_derogations=[derogation])]})
