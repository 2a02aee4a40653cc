"""What this gateway accepted of the published trust material: versions and signing pins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.core.pins import PinSnapshot
from gateway.store.records import TrustMark
from gateway.store.repositories.base import Repository
from gateway.store.schema import directory_pins, trust_marks


class Trust(Repository):
    async def set_mark(self, name: str, version: int, sha256: str, at: datetime) -> None:
        """Remember the newest accepted version of `name` (e.g. the directory). An upsert:
        nodes starting together on one PostgreSQL database may both record it."""
        insert = postgresql_insert if self.postgres else sqlite_insert
        values = {"version": version, "sha256": sha256, "accepted_at": at}
        await self._execute(
            insert(trust_marks)
            .values(name=name, **values)
            .on_conflict_do_update(index_elements=[trust_marks.c.name], set_=values)
        )

    async def mark(self, name: str) -> TrustMark | None:
        q = select(trust_marks).where(trust_marks.c.name == name)
        async with self.connect() as conn:
            row = (await conn.execute(q)).first()
        return None if row is None else TrustMark(row.version, row.sha256, row.accepted_at)

    async def record_pins(self, snapshot: PinSnapshot) -> None:
        """Keep the signing pins of an accepted directory version (once per version: nodes
        starting together on one PostgreSQL database may all record it)."""
        insert = postgresql_insert if self.postgres else sqlite_insert
        rows = [
            {
                "version": snapshot.version,
                "authority": code,
                "fingerprint": fp,
                "published": snapshot.published,
            }
            for code, fps in sorted(snapshot.signing.items())
            for fp in sorted(fps)
        ]
        if rows:
            await self._execute(insert(directory_pins).values(rows).on_conflict_do_nothing())

    async def pin_history(self) -> list[PinSnapshot]:
        """Every directory version's signing pins this gateway recorded, oldest first."""
        q = select(directory_pins).order_by(directory_pins.c.version)
        versions: dict[int, tuple[datetime, dict[str, set[str]]]] = {}
        async with self.connect() as conn:
            for r in await conn.execute(q):
                _, pins = versions.setdefault(r.version, (r.published, {}))
                pins.setdefault(r.authority, set()).add(r.fingerprint)
        return [
            PinSnapshot(v, published, {code: frozenset(fps) for code, fps in pins.items()})
            for v, (published, pins) in sorted(versions.items())
        ]
