"""The transmission register (Art. 40(9)): appends that extend the hash chain, signed
checkpoints, the peers' witnesses of it, and the ways it is read (by filter, by page for the
verifier, a case's events)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.core.checkpoints import checkpoint_payload
from gateway.core.register import (
    CANONICAL_VERSION,
    COLUMNS,
    ENTRY_FIELDS,
    Event,
    RegisterEntry,
    VerifiedRow,
    entry_time,
    next_entry,
)
from gateway.core.times import utc_text
from gateway.store.driver import Prepared
from gateway.store.inline import DbConnection, DbEngine, InlineEngine
from gateway.store.records import Checkpointer, PendingEntry, entry_of
from gateway.store.repositories.base import Repository
from gateway.store.repositories.feed import HEAD_ONLY, read_case_events
from gateway.store.schema import (
    messages,
    register,
    register_checkpoints,
    register_head,
    register_witnesses,
)

# SQLite builds each entry's canonical form (see gateway.core.register.canonical_row) in C:
# json_object keeps the order it is given, so the pairs come sorted by key; version 1 without
# the principal, version 2 with it and "v".
_SQL_VALUE = {
    "time": "substr(time, 1, 10) || 'T' || substr(time, 12) || 'Z'",
    "details": "json(details)",
}
_V1 = [(key, _SQL_VALUE.get(name, name)) for name, key in ENTRY_FIELDS if name != "principal"]
_V2 = [*_V1, ("principal", "principal"), ("v", str(CANONICAL_VERSION))]


def _json_object(pairs: list[tuple[str, str]]) -> str:
    return "json_object(" + ", ".join(f"'{key}', {value}" for key, value in sorted(pairs)) + ")"


# Built from constants only (the field list), never from input.
CANONICAL_SQL = (
    "SELECT sequence, prev_hash, hash, CASE WHEN principal IS NULL THEN "  # noqa: S608
    + _json_object(_V1) + " ELSE " + _json_object(_V2)
    + " END FROM register WHERE sequence > ? ORDER BY sequence LIMIT ?"
)  # fmt: skip

# PostgreSQL builds the same canonical form as text and hashes it itself, next to the data,
# and checks sequences and links there too (issue 20: the register's verification on
# PostgreSQL at least as fast as on SQLite; walking every row in Python was the limit). Every
# function is named in pg_catalog, so that nothing placed earlier on the search path stands
# in for it. A stored hash or previous hash that is not hex makes the query fail (decode):
# the verifier then checks that page with the Python encoding, which names the entry.
_PG_VALUE = {
    "sequence": "sequence::text",
    "time": """'"' || pg_catalog.to_char(time, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '"'""",
    "details": "details",
}


def _pg_json(pairs: list[tuple[str, str]]) -> str:
    def value(name: str) -> str:
        if name in _PG_VALUE:
            return _PG_VALUE[name]
        if name.isdigit():
            return f"'{name}'"
        return f"coalesce(pg_catalog.to_json({name})::text, 'null')"

    members = " || ',' || ".join(f"""'"{key}":' || {value(name)}""" for key, name in pairs)
    return f"'{{' || {members} || '}}'"


_PG_V1 = sorted((key, name) for name, key in ENTRY_FIELDS if name != "principal")
_PG_V2 = sorted([*_PG_V1, ("principal", "principal"), ("v", str(CANONICAL_VERSION))])
_PG_MATCHES = (
    "pg_catalog.decode(hash, 'hex') = "
    "pg_catalog.sha256(pg_catalog.decode(prev_hash, 'hex') || "
    "pg_catalog.convert_to(CASE WHEN principal IS NULL THEN " + _pg_json(_PG_V1)
    + " ELSE " + _pg_json(_PG_V2) + " END, 'UTF8'))"
)  # fmt: skip
# Of the (at most $3) entries after $1 up to $2, only those the verifier must see: the first
# and the last, those whose sequence is in $4 (a checkpoint or witness fixes their hash),
# and every one that does not follow the one before it in the range (sequence, link) or
# whose hash does not match. Each comes with the sequence and hash of the entry before it in
# the range: the entries in between are the ones the server found sound, so the verifier
# moves its walk there without reading them (ChainWalk.run_verified). The hash is computed
# below the window, which then buffers four columns, not whole rows. Built from constants.
PG_VERIFIED_SQL = (
    "SELECT sequence, prev_hash, hash, matches, lag_sequence, lag_hash FROM ("  # noqa: S608
    "SELECT sequence, prev_hash, hash, matches, "
    "pg_catalog.lag(sequence) OVER w AS lag_sequence, pg_catalog.lag(hash) OVER w AS lag_hash, "
    "pg_catalog.lead(sequence) OVER w AS lead_sequence "
    "FROM (SELECT sequence, prev_hash, hash, " + _PG_MATCHES + " AS matches FROM register "
    "WHERE sequence > $1 AND sequence <= $2 ORDER BY sequence LIMIT $3) AS page "
    "WINDOW w AS (ORDER BY sequence)) AS checked "
    "WHERE lag_sequence IS NULL OR lead_sequence IS NULL OR sequence = ANY($4::bigint[]) "
    "OR sequence <> lag_sequence + 1 OR prev_hash IS DISTINCT FROM lag_hash "
    "OR matches IS NOT TRUE ORDER BY sequence"
)  # fmt: skip
_COLUMNS = ", ".join(COLUMNS)
_HEAD = select(
    register_head.c.sequence,
    register_head.c.hash,
    select(register.c.time)
    .where(register.c.sequence == register_head.c.sequence)
    .scalar_subquery()
    .label("time"),
).where(register_head.c.id == 1)
_HEAD_FOR_UPDATE = _HEAD.with_for_update(of=register_head)
_INSERT = Prepared(register.insert(), COLUMNS)
_SET_HEAD = Prepared(
    update(register_head)
    .where(register_head.c.id == 1)
    .values(sequence=bindparam("b_sequence"), hash=bindparam("b_hash"))
)
_SET_ACK = Prepared(
    update(messages)
    .where(messages.c.message_id == bindparam("b_id"))
    .values(ack_xml=bindparam("b_ack"))
)
HEAD_KEY = "register_head"
"""Where a batch's units keep the head their appends advanced to (see write_head)."""
ROWS_KEY = "register_rows"
"""Where a batch's units keep the entries whose place is fixed and that are not written yet: a
tuple, replaced on each change, so that a unit rolled back leaves those before it."""
PENDING_KEY = "register_pending"
"""Where a batch's units keep the entries they appended whose place in the chain is not fixed
yet (PendingEntry), likewise a tuple."""
ACKS_KEY = "register_acks"
"""The acknowledgements made once their entries' places were fixed, to be stored with their
messages before the commit, likewise a tuple."""


class _Chain:
    """The fixing of a batch's pending entries after the head (see PendingEntry)."""

    def __init__(self, conn: DbConnection, shared: dict[str, Any]) -> None:
        self.conn = conn
        self.shared = shared
        self.rows: list[dict[str, Any]] = list(shared.get(ROWS_KEY, ()))
        self.acks: list[dict[str, Any]] = list(shared.get(ACKS_KEY, ()))
        self.head: tuple[int, str, datetime | None] | None = shared.get(HEAD_KEY)
        self.postgres = conn.dialect.name == "postgresql"

    async def fix(self, pending: Sequence[PendingEntry]) -> None:
        for item in pending:
            entry = await self.link(item.event, dict(item.fields))
            item.entry = entry
            cp = item.checkpointer
            if cp is not None and cp.every > 0 and entry.sequence % cp.every == 0:
                await self.checkpoint(cp, entry)
            if item.acknowledge is not None:
                item.ack = item.acknowledge(entry)
                self.acks.append({"b_id": entry.message_id, "b_ack": item.ack})
        self.shared[ROWS_KEY] = tuple(self.rows)
        self.shared[ACKS_KEY] = tuple(self.acks)
        if self.head is not None:
            self.shared[HEAD_KEY] = self.head

    async def link(self, event: Event, fields: dict[str, Any]) -> RegisterEntry:
        head = self.head
        if head is None:
            row = (await self.conn.execute(_HEAD_FOR_UPDATE if self.postgres else _HEAD)).one()
            head = (row.sequence, row.hash, row.time)
        # The register's time never goes backwards along the chain (a unit that read the clock
        # before another one but is appended after it); the event's own time stays in details.
        time, fields["details"] = entry_time(fields.pop("time"), head[2], fields.get("details"))
        entry = next_entry(head[0], head[1], time=time, event=event, **fields)
        values = entry.to_dict()
        values["time"] = entry.time
        # Compact, sorted, UTF-8: the same bytes the canonical encoding embeds.
        values["details"] = orjson.dumps(entry.details, option=orjson.OPT_SORT_KEYS).decode()
        # Written with the batch's other entries before its commit (write_head): one
        # statement for them all instead of one each, which was a fifth of a message's
        # statements on PostgreSQL (issue 20).
        self.rows.append(values)
        self.head = (entry.sequence, entry.hash, entry.time)
        return entry

    async def checkpoint(self, cp: Checkpointer, entry: RegisterEntry) -> None:
        """Sign (sequence, hash) of `entry` and name the checkpoint in the next entry, in the
        same unit of work: the chain then says which checkpoints exist, so deleting their
        rows is detected (gateway.service.audit). The naming entry is never itself
        checkpointed."""
        payload = checkpoint_payload(cp.authority, entry.sequence, entry.hash, entry.time)
        await self.conn.execute(
            register_checkpoints.insert().values(
                sequence=entry.sequence,
                hash=entry.hash,
                time=entry.time,
                signer=cp.signer_pem,
                signature=base64.b64encode(cp.sign(payload)).decode(),
            )
        )
        await self.link(
            Event.CHECKPOINT,
            {
                "time": entry.time,
                "direction": "in",
                "details": {
                    "sequence": entry.sequence,
                    "hash": entry.hash,
                    "signer": cp.signer_fingerprint,
                },
            },
        )


async def fix_pending(conn: DbConnection, shared: dict[str, Any]) -> None:
    """Fix the places of the batch's pending entries after the head, which the first one locks
    (on PostgreSQL) until the commit."""
    pending: tuple[PendingEntry, ...] = shared.pop(PENDING_KEY, ())
    if pending:
        await _Chain(conn, shared).fix(pending)


async def write_head(conn: DbConnection, shared: dict[str, Any], driver: Any = None) -> None:
    """Fix the places of the entries the batch's units appended, write them in one statement,
    the acknowledgements made from them with their messages, and the head they advanced to,
    once, just before the batch's commit (on PostgreSQL the three go as one statement, sent
    just before the COMMIT: gateway.store.driver): the entries commit with the units that made them
    or not at all, as when each was written at once (the head row, locked here on
    PostgreSQL, keeps their sequences free of any other writer until the commit). If an
    acknowledgement cannot be made, the batch fails whole, as when its commit fails."""
    await fix_pending(conn, shared)
    await _write_rows(conn, shared, driver)
    acks: tuple[dict[str, Any], ...] = shared.pop(ACKS_KEY, ())
    if acks:
        await _SET_ACK.defer_rows(conn, driver, acks)
    head: tuple[int, str, datetime | None] | None = shared.get(HEAD_KEY)
    if head is None:
        return
    await _SET_HEAD.defer(conn, driver, {"b_sequence": head[0], "b_hash": head[1]})


async def _write_rows(conn: DbConnection, shared: dict[str, Any], driver: Any) -> None:
    rows: tuple[dict[str, Any], ...] = shared.pop(ROWS_KEY, ())
    if rows:
        await _INSERT.defer_rows(conn, driver, rows)


class Register(Repository):
    def __init__(
        self,
        engine: DbEngine,
        postgres: bool,
        conn: DbConnection | None = None,
        driver: Any = None,
        *,
        checkpointer: Checkpointer | None = None,
        shared: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(engine, postgres, conn, driver)
        self._checkpointer = checkpointer
        # The batch's pending entries, fixed head and rows (see PendingEntry and write_head).
        self._shared = {} if shared is None else shared

    async def append(
        self,
        *,
        time: datetime,
        event: Event,
        direction: str,
        peer: str | None = None,
        message_id: str | None = None,
        message_type: str | None = None,
        reference: str | None = None,
        digest: str | None = None,
        status: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        principal: str | None = None,
        acknowledge: Callable[[RegisterEntry], bytes] | None = None,
    ) -> PendingEntry:
        """Extend the chain by one entry (and by a checkpoint's, every `every` entries), whose
        place is fixed as the unit of work commits (PendingEntry); `principal`: the named user
        who caused it (version 2 of the canonical form). `acknowledge`: makes the signed
        acknowledgement that states this entry as the register head, once its place is
        fixed; it is stored as the `ack_xml` of message `message_id` (inserted in this unit
        of work) and read with `acknowledgement()` after the commit."""
        if acknowledge is not None and message_id is None:
            raise ValueError("an acknowledgement names the message it acknowledges")
        _ = self.conn  # a write needs a unit of work: raises outside one
        item = PendingEntry(
            time,
            event,
            {
                "direction": direction,
                "peer": peer,
                "message_id": message_id,
                "message_type": message_type,
                "reference": reference,
                "digest": digest,
                "status": status,
                "reason": reason,
                "details": details,
                "principal": principal,
            },
            self._checkpointer,
            acknowledge,
        )
        self._shared[PENDING_KEY] = (*self._shared.get(PENDING_KEY, ()), item)
        return item

    async def record_witnesses(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Keep heads of our register that peers witnessed (holder, sequence, hash, signer,
        signed_at, recorded_at); one row per distinct claim, so disagreeing ones all stay."""
        insert = postgresql_insert if self.postgres else sqlite_insert
        if rows:
            await self._execute(
                insert(register_witnesses).values(list(rows)).on_conflict_do_nothing()
            )

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[DbConnection]:
        """As Repository.connect; in a unit of work, the entries appended so far in its batch
        are written first, so that what it reads includes them."""
        if self._conn is not None:
            await self._unit_conn()  # what the unit deferred goes first
            await fix_pending(self._conn, self._shared)
            await _write_rows(self._conn, self._shared, self._driver)
        async with super().connect() as conn:
            yield conn

    async def head(self) -> tuple[int, str]:
        async with self.connect() as conn:
            row = (await conn.execute(HEAD_ONLY)).one()
            return row.sequence, row.hash

    async def query(
        self,
        *,
        reference: str | None = None,
        reference_prefix: str | None = None,
        message_id: str | None = None,
        peer: str | None = None,
        message_type: str | None = None,
        direction: str | None = None,
        status: str | None = None,
        event: str | None = None,
        reason: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int = 0,
        upto: int | None = None,
        limit: int = 100,
    ) -> list[RegisterEntry]:
        """Entries after sequence `after` (and up to `upto`) that match every filter given,
        oldest first; `reference_prefix` matches references that start with it."""
        q = select(register).where(register.c.sequence > after)
        if upto is not None:
            q = q.where(register.c.sequence <= upto)
        if reference_prefix is not None:
            # A prefix search, not a pattern: LIKE's own characters are escaped.
            q = q.where(register.c.reference.startswith(reference_prefix, autoescape=True))
        for column, value in (
            (register.c.reference, reference),
            (register.c.message_id, message_id),
            (register.c.peer, peer),
            (register.c.message_type, message_type),
            (register.c.direction, direction),
            (register.c.status, status),
            (register.c.event, event),
            (register.c.reason, reason),
        ):
            if value is not None:
                q = q.where(column == value)
        async with self.connect() as conn:
            if since is not None or until is not None:
                # "+ 0": PostgreSQL would otherwise answer min and max by walking the
                # sequence index from either end until a row of the window turns up, a scan
                # of the register before (or after) it; so it takes the time index.
                shifted = register.c.sequence + 0
                window = select(func.min(shifted), func.max(shifted))
                if since is not None:
                    q = q.where(register.c.time >= since)
                    window = window.where(register.c.time >= since)
                if until is not None:
                    q = q.where(register.c.time < until)
                    window = window.where(register.c.time < until)
                # The time index finds the sequence window; the scan then stays inside it.
                bounds: Any = (await conn.execute(window)).one()
                low, high = bounds
                if low is None:
                    return []
                q = q.where(register.c.sequence.between(low, high))
            q = q.order_by(register.c.sequence).limit(limit)
            return [entry_of(r) for r in await conn.execute(q)]

    async def latest(self, event: str) -> RegisterEntry | None:
        """The newest entry of `event`, or None."""
        q = select(register).where(register.c.event == event)
        q = q.order_by(register.c.sequence.desc()).limit(1)
        async with self.connect() as conn:
            row = (await conn.execute(q)).first()
        return None if row is None else entry_of(row)

    async def span(self, reference: str) -> tuple[int, int] | None:
        """The first and last sequence of the entries filed under `reference`, or None."""
        q = select(func.min(register.c.sequence), func.max(register.c.sequence)).where(
            register.c.reference == reference
        )
        async with self.connect() as conn:
            row: Any = (await conn.execute(q)).one()
        low, high = row
        return None if low is None else (int(low), int(high))

    async def rows(self, after: int, limit: int) -> list[tuple[Any, ...]]:
        """Raw register rows for the verifier: (sequence, time text, event, direction, peer,
        message_id, type, reference, digest, status, reason, details JSON, principal,
        prev_hash, hash),
        without per-row conversions, which dominate the cost of a full verification."""
        if isinstance(self.engine, InlineEngine):

            def fetch(conn: Connection) -> list[Any]:
                sql = (
                    f"SELECT {_COLUMNS} FROM register WHERE sequence > ? ORDER BY sequence LIMIT ?"  # noqa: S608
                )
                return list(conn.exec_driver_sql(sql, (after, limit)).fetchall())

            rows = await self.engine.run_in_thread(fetch)
        else:
            async with self.engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection
                records = await driver.fetch(
                    f"SELECT {_COLUMNS} FROM register WHERE sequence > $1 "  # noqa: S608
                    "ORDER BY sequence LIMIT $2",
                    after,
                    limit,
                )
                rows = [tuple(r) for r in records]
        if rows and not isinstance(rows[0][1], str):
            rows = [(r[0], utc_text(r[1].replace(tzinfo=UTC)), *r[2:]) for r in rows]
        else:  # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff", naive UTC
            rows = [(r[0], f"{r[1][:10]}T{r[1][11:]}Z", *r[2:]) for r in rows]
        return rows

    async def canonical_rows(
        self, after: int, limit: int
    ) -> list[tuple[int, str, str, str]] | None:
        """(sequence, prev_hash, hash, canonical text) with the canonical encoding built by
        SQLite's JSON functions in C; None where the database cannot (PostgreSQL). A fast
        path only: the verifier re-checks any mismatch with the Python encoding."""
        if not isinstance(self.engine, InlineEngine):  # PostgreSQL
            return None

        def fetch(conn: Connection) -> list[Any]:
            return list(conn.exec_driver_sql(CANONICAL_SQL, (after, limit)).fetchall())

        return await self.engine.run_in_thread(fetch)

    async def verified_rows(
        self, after: int, upto: int, limit: int, fixed: Sequence[int] = ()
    ) -> list[VerifiedRow]:
        """Of the entries after `after` up to `upto` (at most `limit`), those the server did
        not find sound (PG_VERIFIED_SQL): (sequence, prev_hash, hash, whether the canonical
        form after the stored previous hash hashes to the hash, and the sequence and hash of
        the entry before it in the range, None for the first), always with the first, the
        last and those at `fixed` sequences. Where the server cannot hash them (a hash or
        previous hash that is not hex), every entry of the range with neither flag nor lag:
        the verifier checks each with the Python encoding. A fast path only: the verifier
        checks every flag not true with the Python encoding, and every returned entry's
        sequence and link itself. PostgreSQL only."""
        import asyncpg  # type: ignore[import-untyped]  # the `postgres` extra's driver

        assert not isinstance(self.engine, InlineEngine), "PostgreSQL only"
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            try:
                records = await driver.fetch(PG_VERIFIED_SQL, after, upto, limit, list(fixed))
            except asyncpg.DataError:
                records = None
        if records is None:  # (..., prev_hash, hash) last in the raw rows
            rows = await self.rows(after, limit)
            return [(r[0], r[-2], r[-1], None, None, None) for r in rows if r[0] <= upto]
        # asyncpg's records index and unpack as the tuples they stand for: not copied.
        return cast(list[VerifiedRow], records)

    async def case_events(
        self,
        after: int,
        limit: int,
        events: Sequence[str],
        *,
        case: str | None = None,
        message_id: str | None = None,
        upto: int | None = None,
    ) -> list[RegisterEntry]:
        """Register entries of `events` after sequence `after` (and up to `upto`) that
        concern a message or a case's time limits, optionally of one reference or message.

        A refused transmission from an authority that is a party neither of the case its
        reference names nor of the message its id names is left out: a case's and a
        message's events are their parties' events, and a third authority's attempt on them
        stays in the register (for auditors) but never reaches the case system's views."""
        async with self.connect() as conn:
            return await read_case_events(conn, after, upto, events, limit, case, message_id)

    async def feed_page(
        self, after: int, limit: int, events: Sequence[str], *, case: str | None = None
    ) -> tuple[int, list[RegisterEntry]]:
        """The register head, then `case_events` after `after` up to that head, read on one
        connection (one checkout and liveness check instead of two: the events feed's read,
        which a case system repeats all day). Every entry up to the head is committed, so a
        page shorter than `limit` means nothing of interest lies between it and the head."""
        async with self.connect() as conn:
            head = int((await conn.execute(HEAD_ONLY)).one().sequence)
            return head, await read_case_events(conn, after, head, events, limit, case, None)

    async def checkpoints(self) -> list[dict[str, Any]]:
        q = select(register_checkpoints).order_by(register_checkpoints.c.sequence)
        async with self.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(q)]

    async def checkpoint_entries(self) -> list[tuple[int, dict[str, Any]]]:
        """(sequence, details) of the register's `checkpoint` entries: the checkpoints the
        chain says were written."""
        q = (
            select(register.c.sequence, register.c.details)
            .where(register.c.event == Event.CHECKPOINT.value)
            .order_by(register.c.sequence)
        )
        async with self.connect() as conn:
            return [(int(r.sequence), json.loads(r.details)) for r in await conn.execute(q)]

    async def witnesses(self) -> list[dict[str, Any]]:
        """The peers' witnesses of this register the gateway holds, by sequence."""
        q = select(register_witnesses).order_by(
            register_witnesses.c.sequence, register_witnesses.c.holder
        )
        async with self.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(q)]
