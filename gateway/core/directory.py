"""The authority directory (Art. 41(1)-(2)): who may exchange, and by which pinned certificates."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.core.roles import ROLES

AUTHORITY_CODE = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,10}$")
NETWORK_NAME = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
DUBLIN = "dublin"
"""The network every authority belongs to unless its entry lists others (DubliNet)."""
FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


class DirectoryError(ValueError):
    """The directory is malformed or names something it must not."""


@dataclass(frozen=True)
class CrisisDerogation:
    """A Council implementing decision authorising the authority's Member State to derogate
    from the AMMR's time limits for a period (2024/1359 Art. 12): published by the network
    operator in the directory, never switched on by a gateway itself."""

    decision: str
    start: date
    until: date
    """The last day the authorisation covers."""

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.until

    def to_dict(self) -> dict[str, str]:
        return {
            "decision": self.decision,
            "from": self.start.isoformat(),
            "until": self.until.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> CrisisDerogation:
        if not isinstance(data, Mapping) or set(data) != {"decision", "from", "until"}:
            raise DirectoryError(
                f"{where}: each crisis derogation is {{decision, from, until}} (dates YYYY-MM-DD)"
            )
        try:
            start, until = (
                date.fromisoformat(str(data["from"])),
                date.fromisoformat(str(data["until"])),
            )
        except ValueError as exc:
            raise DirectoryError(f"{where}: crisis derogation dates must be YYYY-MM-DD") from exc
        if until < start or not str(data["decision"]).strip():
            raise DirectoryError(
                f"{where}: a crisis derogation names its decision and ends on or after it starts"
            )
        return cls(str(data["decision"]), start, until)


@dataclass(frozen=True)
class Authority:
    """One notified authority. Fingerprints are lowercase hex SHA-256 of DER certificates;
    several may be pinned at once during a rotation."""

    code: str
    member_state: str
    name: str
    time_zone: str
    endpoint: str
    roles: frozenset[str]
    tls_fingerprints: frozenset[str]
    signing_fingerprints: frozenset[str]
    health_encryption_certificates: tuple[str, ...] = ()
    """PEM certificates of the keys this authority's health practitioners decrypt Art. 39
    health certificates with; senders encrypt for every one of them (several during a
    rotation). Only for authorities with the health-practitioner role."""
    crisis_derogations: tuple[CrisisDerogation, ...] = ()
    """Periods in which the authority's State is authorised to derogate (2024/1359 Art. 12)."""
    networks: frozenset[str] = frozenset({DUBLIN})
    """The networks it belongs to (dublin, iconet, ilo-network, ...): a network's messages
    travel only between its members."""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def derogating_on(self, day: date) -> CrisisDerogation | None:
        """The authorisation to derogate that covers `day`, if any."""
        return next((d for d in self.crisis_derogations if d.covers(day)), None)

    def to_dict(self) -> dict[str, Any]:
        return (
            {
                "code": self.code,
                "member_state": self.member_state,
                "name": self.name,
                "time_zone": self.time_zone,
                "endpoint": self.endpoint,
                "roles": sorted(self.roles),
                "tls_fingerprints": sorted(self.tls_fingerprints),
                "signing_fingerprints": sorted(self.signing_fingerprints),
                "health_encryption_certificates": list(self.health_encryption_certificates),
            }
            | (
                {"crisis_derogations": [d.to_dict() for d in self.crisis_derogations]}
                if self.crisis_derogations
                else {}
            )
            | ({"networks": sorted(self.networks)} if self.networks != {DUBLIN} else {})
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Authority:
        try:
            code = str(data["code"])
            member_state = str(data["member_state"])
            auth = cls(
                code=code,
                member_state=member_state,
                name=str(data["name"]),
                time_zone=str(data["time_zone"]),
                endpoint=str(data["endpoint"]),
                roles=frozenset(str(r) for r in data.get("roles", ())),
                tls_fingerprints=frozenset(str(f).lower() for f in data["tls_fingerprints"]),
                signing_fingerprints=frozenset(
                    str(f).lower() for f in data["signing_fingerprints"]
                ),
                health_encryption_certificates=tuple(
                    str(c) for c in data.get("health_encryption_certificates", ())
                ),
                crisis_derogations=_derogations(data.get("crisis_derogations", []), code),
                networks=_networks(data.get("networks", [DUBLIN]), code),
            )
        except KeyError as exc:
            raise DirectoryError(f"authority entry lacks the field {exc.args[0]!r}") from exc
        auth.check()
        return auth

    def check(self) -> None:
        where = f"authority {self.code!r}"
        if not AUTHORITY_CODE.match(self.code):
            raise DirectoryError(f"{where}: code must look like 'BE-DU'")
        if not re.fullmatch(r"[A-Z]{2}", self.member_state):
            raise DirectoryError(f"{where}: member_state must be two capital letters")
        if not self.code.startswith(self.member_state + "-"):
            raise DirectoryError(f"{where}: code must start with its member_state letters")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise DirectoryError(f"{where}: unknown IANA time zone {self.time_zone!r}") from exc
        if not self.endpoint.startswith("https://"):
            raise DirectoryError(f"{where}: endpoint must be an https:// URL")
        unknown = self.roles - frozenset(ROLES)
        if unknown:
            raise DirectoryError(f"{where}: unknown roles {sorted(unknown)}")
        for fp in self.tls_fingerprints | self.signing_fingerprints:
            if not FINGERPRINT.match(fp):
                raise DirectoryError(f"{where}: fingerprint {fp!r} is not 64 hex digits")
        if not self.tls_fingerprints or not self.signing_fingerprints:
            raise DirectoryError(f"{where}: needs at least one TLS and one signing fingerprint")
        if self.tls_fingerprints & self.signing_fingerprints:
            raise DirectoryError(f"{where}: a certificate may not serve both TLS and signing")
        if self.health_encryption_certificates and "health-practitioner" not in self.roles:
            raise DirectoryError(
                f"{where}: health encryption certificates are only for authorities with the "
                "health-practitioner role (Art. 39(3))"
            )
        for pem in self.health_encryption_certificates:
            if not pem.startswith("-----BEGIN CERTIFICATE-----"):
                raise DirectoryError(
                    f"{where}: health_encryption_certificates must be PEM certificates"
                )


def _networks(raw: Any, code: str) -> frozenset[str]:
    where = f"authority {code!r}"
    if not isinstance(raw, list) or not raw:
        raise DirectoryError(f"{where}: networks must be a non-empty list of network names")
    names = frozenset(str(n) for n in raw)
    bad = sorted(n for n in names if not NETWORK_NAME.match(n))
    if bad:
        raise DirectoryError(f"{where}: network names are lowercase words like 'iconet'")
    return names


def _derogations(raw: Any, code: str) -> tuple[CrisisDerogation, ...]:
    where = f"authority {code!r}"
    if not isinstance(raw, list):
        raise DirectoryError(f"{where}: crisis_derogations must be a list")
    return tuple(CrisisDerogation.from_dict(item, where) for item in raw)


@dataclass(frozen=True)
class Directory:
    """An immutable snapshot of the directory; a reload replaces the whole snapshot."""

    authorities: Mapping[str, Authority]
    version: int = 1
    _by_tls: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    _by_signing: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, authorities: Iterable[Authority], version: int = 1) -> Directory:
        by_code: dict[str, Authority] = {}
        by_tls: dict[str, str] = {}
        by_signing: dict[str, str] = {}
        for auth in authorities:
            if auth.code in by_code:
                raise DirectoryError(f"authority {auth.code!r} is listed twice")
            by_code[auth.code] = auth
            for fp in auth.tls_fingerprints:
                if fp in by_tls or fp in by_signing:
                    raise DirectoryError(f"fingerprint {fp} is pinned twice")
                by_tls[fp] = auth.code
            for fp in auth.signing_fingerprints:
                if fp in by_tls or fp in by_signing:
                    raise DirectoryError(f"fingerprint {fp} is pinned twice")
                by_signing[fp] = auth.code
        return cls(by_code, version, by_tls, by_signing)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Directory:
        entries = data.get("authorities")
        if not isinstance(entries, list):
            raise DirectoryError("directory must have an 'authorities' list")
        version = data.get("version", 1)
        if not isinstance(version, int) or version < 1:
            raise DirectoryError("directory 'version' must be a positive integer")
        return cls.of((Authority.from_dict(e) for e in entries), version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "authorities": [a.to_dict() for a in sorted(self.authorities.values(), key=_code)],
        }

    def get(self, code: str) -> Authority | None:
        return self.authorities.get(code)

    def by_tls_fingerprint(self, fingerprint: str) -> Authority | None:
        code = self._by_tls.get(fingerprint.lower())
        return self.authorities[code] if code else None

    def by_signing_fingerprint(self, fingerprint: str) -> Authority | None:
        code = self._by_signing.get(fingerprint.lower())
        return self.authorities[code] if code else None


def _code(a: Authority) -> str:
    return a.code
