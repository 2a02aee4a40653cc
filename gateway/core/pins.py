"""Which signing certificates the directory pinned for which authority, and when.

A register checkpoint, an exported bundle and the witnesses inside a bundle are statements
signed at some time by some key. They count only if, at that time, the directory in force
pinned that key's certificate as a signing certificate of the authority the statement names.
A key rotated out since still vouches for what it signed while it was pinned; a TLS key,
another authority's signing key or the directory publisher's key never does.

The history is a list of directory versions, each with the operator-signed time it was
published. The version in force at an instant is the newest one published at or before it.
Published times have a precision of one second, so within the second after a version's
published time the version before it may still have been in force: a key either of them
pins counts then. Before the oldest version known (a gateway upgraded from a release that
kept no history knows only the directory it had then) the oldest one is taken: a key that
the first known directory pins for an authority is the best evidence there is of that
authority's key then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.core.directory import Directory

PUBLISHED_PRECISION = timedelta(seconds=1)
"""Directories say when they were published to the second (gateway.pki.signed_directory)."""


@dataclass(frozen=True)
class PinSnapshot:
    """The signing pins of one directory version."""

    version: int
    published: datetime
    signing: Mapping[str, frozenset[str]]
    """Authority code -> lowercase hex SHA-256 fingerprints of its signing certificates."""

    @classmethod
    def of(cls, directory: Directory, published: datetime) -> PinSnapshot:
        return cls(
            directory.version,
            published,
            {code: a.signing_fingerprints for code, a in directory.authorities.items()},
        )


class PinHistory:
    """Every directory version known, oldest first; answers "was this certificate pinned for
    that authority then?" with a reason when it was not."""

    def __init__(self, snapshots: Iterable[PinSnapshot]) -> None:
        by_version: dict[int, PinSnapshot] = {}
        for snap in snapshots:
            by_version.setdefault(snap.version, snap)
        self.snapshots = tuple(by_version[v] for v in sorted(by_version))

    def __bool__(self) -> bool:
        return bool(self.snapshots)

    def in_force(self, at: datetime) -> PinSnapshot | None:
        """The newest version published at or before `at` (the oldest known before any)."""
        candidates = self._candidates(at)
        return candidates[0] if candidates else None

    def _candidates(self, at: datetime) -> list[PinSnapshot]:
        """The version in force at `at`, then the earlier ones that may still have been,
        given the one-second precision of published times."""
        index = 0
        for i, snap in enumerate(self.snapshots):
            if snap.published <= at:
                index = i
        out = list(self.snapshots[index : index + 1])
        while index > 0 and at < self.snapshots[index].published + PUBLISHED_PRECISION:
            index -= 1
            out.append(self.snapshots[index])
        return out

    def refusal(self, authority: str, fingerprint: str, at: datetime) -> str | None:
        """Why a signature by the certificate `fingerprint` made at `at` does not count as
        `authority`'s, or None when the directory in force then pinned it for `authority`."""
        candidates = self._candidates(at)
        if not candidates:
            return "no directory is known to tell which signing certificates are pinned"
        fp = fingerprint.lower()
        if any(fp in snap.signing.get(authority, frozenset()) for snap in candidates):
            return None
        snap = candidates[0]
        when = f"at {at.isoformat()} (directory version {snap.version})"
        for code, pins in sorted(snap.signing.items()):
            if fp in pins:
                return f"signed with {code}'s signing certificate, not {authority}'s, {when}"
        for other in reversed(self.snapshots):
            if fp in other.signing.get(authority, frozenset()):
                return (
                    f"the certificate was not pinned for {authority} {when}; directory "
                    f"version {other.version} pinned it"
                )
        return f"the certificate is not a signing certificate pinned for {authority} {when}"
