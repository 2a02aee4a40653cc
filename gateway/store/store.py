"""Persistence: messages, the outbox and the register, each change in one transaction.

SQLite (WAL, synchronous=FULL) is the default and serves one gateway process; PostgreSQL
lets several processes of one authority share the outbox (claims use FOR UPDATE SKIP LOCKED)
and serialises register appends on the register_head row."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    case,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.core.checkpoints import checkpoint_payload
from gateway.core.conversations import Conversation, State
from gateway.core.pins import PinSnapshot
from gateway.core.policy import PriorMessage
from gateway.core.register import CHECKPOINT_EVENT, RegisterEntry, next_entry
from gateway.core.times import utc_text
from gateway.store.files import private_database
from gateway.store.group import CommitAborted, GroupCommitter
from gateway.store.inline import DbConnection, InlineEngine
from gateway.store.schema import (
    conversations,
    deadlines,
    directory_pins,
    messages,
    outbox,
    register,
    register_checkpoints,
    register_head,
    register_witnesses,
    trust_marks,
)

MIGRATIONS = Path(str(resources.files("gateway.store").joinpath("migrations")))
"""Package data; Alembic reads its scripts from a folder of files."""
# The database refuses or cannot be reached (full, read-only, down): worth retrying later.
STORAGE_ERRORS = (SQLAlchemyError, OSError, CommitAborted)
# SQLite builds each entry's canonical form (see gateway.core.register.canonical_row) in C.
CANONICAL_SQL = (
    "SELECT sequence, prev_hash, hash, json_object("
    "'details', json(details), 'digest', digest, 'direction', direction, "
    "'event', event, 'message_id', message_id, 'peer', peer, 'reason', reason, "
    "'reference', reference, 'seq', sequence, 'status', status, "
    "'time', substr(time, 1, 10) || 'T' || substr(time, 12) || 'Z', "
    "'type', message_type) FROM register WHERE sequence > ? ORDER BY sequence LIMIT ?"
)
_WRITE = "gateway_write"

# The statements of the hot paths, built once: executed with a parameter dictionary they skip
# SQLAlchemy's per-call statement construction (coercing each value into a bind parameter and
# computing a cache key over them), which cost more than SQLite's own work for the statement.
_HEAD = select(register_head.c.sequence, register_head.c.hash).where(register_head.c.id == 1)
_HEAD_FOR_UPDATE = _HEAD.with_for_update()
_INSERT_REGISTER = register.insert()
_SET_HEAD = (
    update(register_head)
    .where(register_head.c.id == 1)
    .values(sequence=bindparam("b_sequence"), hash=bindparam("b_hash"))
)
_INSERT_MESSAGE = messages.insert()
# Without .values() the SET clause is the parameters given at execution.
_UPDATE_MESSAGE = update(messages).where(messages.c.message_id == bindparam("b_message_id"))
_GET_MESSAGE = select(messages).where(messages.c.message_id == bindparam("b_message_id"))
_GET_CONVERSATION = select(conversations).where(
    conversations.c.reference == bindparam("b_reference")
)
_UPDATE_CONVERSATION = update(conversations).where(
    conversations.c.reference == bindparam("b_reference")
)
_INSERT_CONVERSATION = conversations.insert()
_INSERT_DEADLINE = deadlines.insert()
_ENQUEUE = outbox.insert()
_FINISH_OUTBOX = outbox.delete().where(outbox.c.message_id == bindparam("b_message_id"))
_HEAD_KEY = "register_head"
_MIGRATE = 0x6477_6D69_6772_6174  # advisory lock key serialising migrations ("dwmigrat")


async def write_head(conn: DbConnection, shared: dict[str, Any]) -> None:
    """Store the register head the batch's appends advanced to, once, before its commit."""
    head: tuple[int, str] | None = shared.get(_HEAD_KEY)
    if head is not None:
        await conn.execute(_SET_HEAD, {"b_sequence": head[0], "b_hash": head[1]})


class DuplicateMessage(Exception):
    """A message with this id is already stored."""


@dataclass(frozen=True)
class StoredMessage:
    id: int
    message_id: str
    direction: str
    peer: str
    message_type: str
    reference: str
    in_reply_to: str | None
    urgent: bool
    created_at: datetime
    stored_at: datetime
    digest: str
    signed_xml: bytes | None
    state: str
    ack_xml: bytes | None
    receipt_time: datetime | None
    answered_by: str | None
    reason_code: str | None
    reason_text: str | None
    case_reference: str | None
    consumed_at: datetime | None = None
    consumed_by: str | None = None
    idempotency_key: str | None = None
    submission_digest: str | None = None

    @property
    def case(self) -> str:
        return self.case_reference or self.reference

    def as_prior(self) -> PriorMessage:
        return PriorMessage(
            message_id=self.message_id,
            direction=self.direction,
            message_type=self.message_type,
            peer=self.peer,
            reference=self.case,
            answered=self.answered_by is not None,
        )


@dataclass(frozen=True)
class OutboxItem:
    message_id: str
    peer: str
    digest: str
    signed_xml: bytes
    attempts: int
    created_at: datetime
    """The transmission's signed creation time: no receipt can be earlier."""
    message_type: str = ""
    reference: str = ""


def _message(row: Any) -> StoredMessage:
    m = row._mapping
    return StoredMessage(**{k: m[k] for k in StoredMessage.__dataclass_fields__})


@dataclass(frozen=True)
class StoredDeadline:
    id: int
    case_reference: str
    rule: str
    legal_basis: str
    acting: str
    opened_by: str | None
    started_at: datetime
    due_date: str
    expires_at: datetime
    state: str
    next_event_at: datetime | None
    reminders_sent: int
    closed_by: str | None
    closed_at: datetime | None
    consequence: str | None


def _deadline(row: Any) -> StoredDeadline:
    m = row._mapping
    return StoredDeadline(**{k: m[k] for k in StoredDeadline.__dataclass_fields__})


def _conversation(row: Any) -> Conversation:
    m = row._mapping
    return Conversation(
        reference=m["reference"],
        kind=m["kind"],
        requesting=m["requesting"],
        requested=m["requested"],
        state=State(m["state"]),
        legal_basis=m["legal_basis"],
    )


def _a_strangers_refusal() -> ColumnElement[bool]:
    """A register row (joined with the case its reference names and the message its id
    names) recording our refusal of a transmission from an authority that is a party of
    neither."""
    return and_(
        register.c.event == "rejected",
        register.c.direction == "in",
        or_(
            and_(
                conversations.c.reference.is_not(None),
                register.c.peer.is_distinct_from(conversations.c.requesting),
                register.c.peer.is_distinct_from(conversations.c.requested),
            ),
            and_(
                messages.c.message_id.is_not(None),
                register.c.peer.is_distinct_from(messages.c.peer),
            ),
        ),
    )


def _entry(row: Any) -> RegisterEntry:
    m = row._mapping
    return RegisterEntry(
        sequence=m["sequence"],
        time=m["time"],
        event=m["event"],
        direction=m["direction"],
        peer=m["peer"],
        message_id=m["message_id"],
        message_type=m["message_type"],
        reference=m["reference"],
        digest=m["digest"],
        status=m["status"],
        reason=m["reason"],
        details=json.loads(m["details"]),
        prev_hash=m["prev_hash"],
        hash=m["hash"],
    )


@dataclass(frozen=True)
class Checkpointer:
    """Signs (sequence, head) every `every` entries with the gateway's signing key."""

    authority: str
    every: int
    signer_pem: str
    signer_fingerprint: str
    sign: Callable[[bytes], bytes]


@dataclass(frozen=True)
class TrustMark:
    """The newest version of a piece of published trust material this gateway accepted."""

    version: int
    sha256: str
    accepted_at: datetime


class Transaction:
    """One unit of work. Everything done through it commits together or not at all."""

    def __init__(
        self,
        conn: DbConnection,
        postgres: bool,
        checkpointer: Checkpointer | None = None,
        shared: dict[str, Any] | None = None,
    ) -> None:
        self.conn = conn
        self._postgres = postgres
        self._checkpointer = checkpointer
        # The batch's register head (see write_head): read (and on PostgreSQL locked) by its
        # first append, kept here by the next ones, written once before the commit.
        self._shared = {} if shared is None else shared
        self.appended: list[RegisterEntry] = []
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once this unit of work is durable (never if it is not): whoever
        it wakes then finds what this unit wrote."""
        self._after_commit.append(callback)

    async def append_register(self, *, time: datetime, **fields: Any) -> RegisterEntry:
        entry = await self._append(time, fields)
        cp = self._checkpointer
        if cp is not None and cp.every > 0 and entry.sequence % cp.every == 0:
            await self._checkpoint(cp, entry, time)
        return entry

    async def _append(self, time: datetime, fields: dict[str, Any]) -> RegisterEntry:
        head: tuple[int, str] | None = self._shared.get(_HEAD_KEY)
        if head is None:
            row = (await self.conn.execute(_HEAD_FOR_UPDATE if self._postgres else _HEAD)).one()
            head = (row.sequence, row.hash)
        entry = next_entry(head[0], head[1], time=time, **fields)
        values = entry.to_dict()
        values["time"] = entry.time
        # Compact, sorted, UTF-8: the same bytes the canonical encoding embeds.
        values["details"] = orjson.dumps(entry.details, option=orjson.OPT_SORT_KEYS).decode()
        await self.conn.execute(_INSERT_REGISTER, values)
        self._shared[_HEAD_KEY] = (entry.sequence, entry.hash)
        self.appended.append(entry)
        return entry

    async def _checkpoint(self, cp: Checkpointer, entry: RegisterEntry, time: datetime) -> None:
        """Sign (sequence, hash) of `entry` and name the checkpoint in the next entry, in the
        same unit of work: the chain then says which checkpoints exist, so deleting their
        rows is detected (gateway.register). The naming entry is never itself checkpointed."""
        payload = checkpoint_payload(cp.authority, entry.sequence, entry.hash, time)
        await self.conn.execute(
            register_checkpoints.insert().values(
                sequence=entry.sequence,
                hash=entry.hash,
                time=time,
                signer=cp.signer_pem,
                signature=base64.b64encode(cp.sign(payload)).decode(),
            )
        )
        await self._append(
            time,
            {
                "event": CHECKPOINT_EVENT,
                "direction": "in",
                "details": {
                    "sequence": entry.sequence,
                    "hash": entry.hash,
                    "signer": cp.signer_fingerprint,
                },
            },
        )

    async def record_pins(self, snapshot: PinSnapshot) -> None:
        """Keep the signing pins of an accepted directory version (once per version: nodes
        starting together on one PostgreSQL database may all record it)."""
        insert = postgresql_insert if self._postgres else sqlite_insert
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
            await self.conn.execute(insert(directory_pins).values(rows).on_conflict_do_nothing())

    async def record_witnesses(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Keep heads of our register that peers witnessed (holder, sequence, hash, signer,
        signed_at, recorded_at); one row per distinct claim, so disagreeing ones all stay."""
        insert = postgresql_insert if self._postgres else sqlite_insert
        if rows:
            await self.conn.execute(
                insert(register_witnesses).values(list(rows)).on_conflict_do_nothing()
            )

    async def set_trust_mark(self, name: str, version: int, sha256: str, at: datetime) -> None:
        """Remember the newest accepted version of `name` (e.g. the directory). An upsert:
        nodes starting together on one PostgreSQL database may both record it."""
        insert = postgresql_insert if self._postgres else sqlite_insert
        values = {"version": version, "sha256": sha256, "accepted_at": at}
        await self.conn.execute(
            insert(trust_marks)
            .values(name=name, **values)
            .on_conflict_do_update(index_elements=[trust_marks.c.name], set_=values)
        )

    async def insert_message(self, **values: Any) -> None:
        try:
            await self.conn.execute(_INSERT_MESSAGE, values)
        except IntegrityError as exc:
            raise DuplicateMessage(values.get("message_id")) from exc

    async def update_message(self, message_id: str, **values: Any) -> None:
        await self.conn.execute(_UPDATE_MESSAGE, {"b_message_id": message_id} | values)

    async def get_message(self, message_id: str) -> StoredMessage | None:
        row = (await self.conn.execute(_GET_MESSAGE, {"b_message_id": message_id})).first()
        return None if row is None else _message(row)

    async def get_conversation(self, reference: str) -> Conversation | None:
        row = (await self.conn.execute(_GET_CONVERSATION, {"b_reference": reference})).first()
        return None if row is None else _conversation(row)

    async def save_conversation(
        self, conv: Conversation, now: datetime, *, new: bool | None = None
    ) -> None:
        """Store the case's state; `new` says whether it exists (None: find out)."""
        values = {
            "kind": conv.kind,
            "requesting": conv.requesting,
            "requested": conv.requested,
            "state": conv.state.value,
            "legal_basis": conv.legal_basis,
            "updated_at": now,
        }
        if new is not True:
            done = await self.conn.execute(
                _UPDATE_CONVERSATION, {"b_reference": conv.reference} | values
            )
            if done.rowcount == 1 or new is False:
                return
        await self.conn.execute(
            _INSERT_CONVERSATION, {"reference": conv.reference, "opened_at": now} | values
        )

    async def open_deadline(self, **values: Any) -> int:
        result = await self.conn.execute(
            _INSERT_DEADLINE, {"state": "open", "reminders_sent": 0} | values
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    async def close_deadlines(
        self, case: str, rules: frozenset[str], by: str | None, at: datetime, state: str
    ) -> list[str]:
        """Close the case's open deadlines of `rules`; returns the rules closed."""
        q = select(deadlines.c.id, deadlines.c.rule).where(
            deadlines.c.case_reference == case,
            deadlines.c.state == "open",
            deadlines.c.rule.in_(sorted(rules)),
        )
        rows = list(await self.conn.execute(q))
        if rows:
            await self.conn.execute(
                update(deadlines)
                .where(deadlines.c.id.in_([r.id for r in rows]))
                .values(state=state, closed_by=by, closed_at=at, next_event_at=None)
            )
        return [r.rule for r in rows]

    async def take_deadline(self, deadline_id: int, next_event_at: datetime | None) -> bool:
        """Move an open deadline's next event on; False if another worker already did."""
        done = await self.conn.execute(
            update(deadlines)
            .where(deadlines.c.id == deadline_id, deadlines.c.state == "open")
            .values(next_event_at=next_event_at, reminders_sent=deadlines.c.reminders_sent + 1)
        )
        return bool(done.rowcount == 1)

    async def expire_deadline(
        self, deadline_id: int, consequence: str | None, at: datetime
    ) -> bool:
        """Mark an open deadline expired, once; False if it was not open any more."""
        done = await self.conn.execute(
            update(deadlines)
            .where(deadlines.c.id == deadline_id, deadlines.c.state == "open")
            .values(state="expired", consequence=consequence, closed_at=at, next_event_at=None)
        )
        return bool(done.rowcount == 1)

    async def enqueue(
        self, message_id: str, now: datetime, leased_until: datetime | None = None
    ) -> None:
        """Queue a delivery; `leased_until`: claimed at once, by the worker it is handed to."""
        await self.conn.execute(
            _ENQUEUE,
            {
                "message_id": message_id,
                "attempts": 0,
                "next_attempt_at": now,
                "leased_until": leased_until,
            },
        )

    async def finish_outbox(self, message_id: str) -> bool:
        """Remove the message's outbox row; False if there was none (already finished)."""
        done = await self.conn.execute(_FINISH_OUTBOX, {"b_message_id": message_id})
        return bool(done.rowcount == 1)

    async def reschedule(self, message_id: str, attempts: int, at: datetime, error: str) -> bool:
        """Set the next attempt; False if the row is gone (the outcome is recorded)."""
        done = await self.conn.execute(
            update(outbox)
            .where(outbox.c.message_id == message_id)
            .values(attempts=attempts, next_attempt_at=at, leased_until=None, last_error=error)
        )
        return bool(done.rowcount == 1)


class Store:
    def __init__(self, engine: AsyncEngine | InlineEngine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        # One writer connection, group-committed: SQLite allows one writer anyway, and one
        # flush per batch instead of one per unit of work is most of the write cost.
        self._writer = GroupCommitter(engine, {_WRITE: True}, before_commit=write_head)
        self.checkpointer: Checkpointer | None = None

    @classmethod
    async def open(cls, url: str) -> Store:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                private_database(Path(parsed.database))
            # The configured URL names the asyncio driver; statements run inline (inline.py).
            sync_engine = create_engine(
                parsed.set(drivername="sqlite+pysqlite"),
                connect_args={"timeout": 30, "check_same_thread": False},
            )
            engine: AsyncEngine | InlineEngine = InlineEngine(sync_engine)

            @event.listens_for(engine.sync_engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                # We emit BEGIN ourselves (below): the driver's implicit one is deferred.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            @event.listens_for(engine.sync_engine, "begin")
            def _begin(conn: Connection) -> None:
                # A writer takes the write lock up front, so that two writers (even in two
                # processes) queue instead of failing when a read lock cannot be upgraded.
                # Readers need no BEGIN: each statement reads a committed snapshot of its own
                # (WAL), and the register is append-only, so pages read one after another
                # still form one consistent prefix. That saves two statements per read.
                if conn.get_execution_options().get(_WRITE, False):
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            engine = create_async_engine(url, pool_pre_ping=True)  # asyncpg
        store = cls(engine)
        await store.migrate()
        return store

    async def migrate(self) -> None:
        def upgrade(sync_conn: Connection) -> None:
            cfg = AlembicConfig()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "head")

        async with self.engine.connect() as plain:
            conn = await plain.execution_options(**{_WRITE: True})
            trans = await conn.begin()  # all or nothing
            try:
                if self.postgres:
                    # Nodes starting together: one migrates, the others wait and find it done.
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE}
                    )
                await conn.run_sync(upgrade)
            except BaseException:
                await trans.rollback()
                raise
            await trans.commit()

    async def close(self) -> None:
        await self._writer.close()
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One unit of work: all of it is stored, durably, when the block exits without an
        exception, or none of it. Units are group-committed (gateway.store.group)."""
        async with self._writer.unit() as (conn, shared):
            tx = Transaction(conn, self.postgres, self.checkpointer, shared)
            yield tx
        for callback in tx._after_commit:
            callback()

    async def committed(self) -> None:
        """Wait until every unit of work begun before this call is durable (a reader on
        another connection then sees it)."""
        await self._writer.barrier()

    async def get_message(self, message_id: str) -> StoredMessage | None:
        async with self.engine.connect() as conn:
            return await Transaction(conn, self.postgres).get_message(message_id)

    async def message_by_idempotency_key(self, key: str) -> StoredMessage | None:
        q = select(messages).where(messages.c.idempotency_key == key)
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).first()
        return None if row is None else _message(row)

    async def undeliverable_since(self, since: datetime, limit: int) -> list[OutboxItem]:
        """Outgoing messages given up on, created after `since`: a peer may yet prove it
        received them."""
        q = (
            select(messages)
            .where(
                messages.c.direction == "out",
                messages.c.state == "undeliverable",
                messages.c.created_at >= since,
                messages.c.signed_xml.is_not(None),
            )
            .order_by(messages.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = [_message(r) for r in await conn.execute(q)]
        return [
            OutboxItem(
                m.message_id,
                m.peer,
                m.digest,
                m.signed_xml or b"",
                0,
                m.created_at,
                m.message_type,
                m.reference,
            )
            for m in rows
        ]

    async def inbox(
        self,
        after: int,
        limit: int,
        *,
        consumed: bool | None = None,
        types: frozenset[str] | None = None,
    ) -> list[StoredMessage]:
        """Received messages after the cursor `after`, oldest first; optionally only those
        (not) consumed yet, or only of `types`."""
        q = select(messages).where(messages.c.direction == "in", messages.c.id > after)
        if consumed is True:
            q = q.where(messages.c.consumed_at.is_not(None))
        elif consumed is False:
            q = q.where(messages.c.consumed_at.is_(None))
        if types is not None:
            q = q.where(messages.c.message_type.in_(sorted(types)))
        q = q.order_by(messages.c.id).limit(limit)
        async with self.engine.connect() as conn:
            return [_message(r) for r in await conn.execute(q)]

    async def release_leases(self) -> None:
        """At start of a single-process (SQLite) gateway no claim can still be live."""
        if not self.postgres:
            async with self.transaction() as tx:
                await tx.conn.execute(update(outbox).values(leased_until=None))

    async def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[OutboxItem]:
        """Claim due deliveries for `lease`; a crashed claimer's rows come back when it ends."""
        q = (
            select(
                outbox.c.message_id,
                outbox.c.attempts,
                messages.c.peer,
                messages.c.digest,
                messages.c.signed_xml,
                messages.c.created_at,
                messages.c.message_type,
                messages.c.reference,
            )
            .join(messages, messages.c.message_id == outbox.c.message_id)
            .where(outbox.c.next_attempt_at <= now)
            .where((outbox.c.leased_until.is_(None)) | (outbox.c.leased_until < now))
            .order_by(outbox.c.next_attempt_at)
            .limit(limit)
        )
        if self.postgres:
            q = q.with_for_update(skip_locked=True, of=outbox)
        async with self.transaction() as tx:
            rows = list(await tx.conn.execute(q))
            if rows:
                await tx.conn.execute(
                    update(outbox)
                    .where(outbox.c.message_id.in_([r.message_id for r in rows]))
                    .values(leased_until=now + lease)
                )
        return [
            OutboxItem(
                r.message_id,
                r.peer,
                r.digest,
                r.signed_xml,
                r.attempts,
                r.created_at,
                r.message_type,
                r.reference,
            )
            for r in rows
            if r.signed_xml is not None
        ]

    async def next_due(self, now: datetime) -> datetime | None:
        """When the next outbox row can be claimed: a leased row (being sent, here or on
        another node) only when its lease ends, so the worker does not spin on rows in flight."""
        when = case(
            (outbox.c.leased_until > now, outbox.c.leased_until), else_=outbox.c.next_attempt_at
        )
        async with self.engine.connect() as conn:
            value: datetime | None = (await conn.execute(select(func.min(when)))).scalar()
            return value

    async def outbox_state(self, message_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(outbox).where(outbox.c.message_id == message_id))
            ).first()
            return None if row is None else dict(row._mapping)

    async def register_head(self) -> tuple[int, str]:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(register_head).where(register_head.c.id == 1))).one()
            return row.sequence, row.hash

    async def register_entries(
        self, after: int = 0, limit: int = 1000, message_id: str | None = None
    ) -> list[RegisterEntry]:
        return await self.query_register(message_id=message_id, after=after, limit=limit)

    async def register_rows(self, after: int, limit: int) -> list[tuple[Any, ...]]:
        """Raw register rows for the verifier: (sequence, time text, event, direction, peer,
        message_id, type, reference, digest, status, reason, details JSON, prev_hash, hash),
        without per-row conversions, which dominate the cost of a full verification."""
        columns = (
            "sequence, time, event, direction, peer, message_id, message_type, reference, "
            "digest, status, reason, details, prev_hash, hash"
        )
        if isinstance(self.engine, InlineEngine):

            def fetch(conn: Connection) -> list[Any]:
                sql = f"SELECT {columns} FROM register WHERE sequence > ? ORDER BY sequence LIMIT ?"  # noqa: S608
                return list(conn.exec_driver_sql(sql, (after, limit)).fetchall())

            rows = await self.engine.run_in_thread(fetch)
        else:
            async with self.engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection
                records = await driver.fetch(
                    f"SELECT {columns} FROM register WHERE sequence > $1 "  # noqa: S608
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

    async def register_canonical_rows(
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

    def sqlite_path(self) -> str | None:
        """The SQLite database file, for read-only verification in worker processes."""
        url = self.engine.url
        if self.postgres or not url.database or url.database == ":memory:":
            return None
        return str(url.database)

    async def get_conversation(self, reference: str) -> Conversation | None:
        async with self.engine.connect() as conn:
            return await Transaction(conn, self.postgres).get_conversation(reference)

    async def conversation_times(self, reference: str) -> tuple[datetime, datetime] | None:
        q = select(conversations.c.opened_at, conversations.c.updated_at).where(
            conversations.c.reference == reference
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).first()
            return None if row is None else (row.opened_at, row.updated_at)

    async def case_messages(self, reference: str) -> list[StoredMessage]:
        q = (
            select(messages)
            .where(
                (messages.c.case_reference == reference)
                | ((messages.c.case_reference.is_(None)) & (messages.c.reference == reference))
            )
            .order_by(messages.c.id)
        )
        async with self.engine.connect() as conn:
            return [_message(r) for r in await conn.execute(q)]

    async def next_deadline_event(self) -> datetime | None:
        q = select(func.min(deadlines.c.next_event_at)).where(deadlines.c.state == "open")
        async with self.engine.connect() as conn:
            value: datetime | None = (await conn.execute(q)).scalar()
            return value

    async def due_deadlines(self, now: datetime, limit: int) -> list[StoredDeadline]:
        q = (
            select(deadlines)
            .where(deadlines.c.state == "open", deadlines.c.next_event_at <= now)
            .order_by(deadlines.c.next_event_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [_deadline(r) for r in await conn.execute(q)]

    async def list_deadlines(
        self,
        *,
        state: str | None = None,
        rule: str | None = None,
        acting: str | None = None,
        peer_of: tuple[str, str] | None = None,
        due_before: str | None = None,
        due_after: str | None = None,
        case: str | None = None,
        opened_by: str | None = None,
        limit: int = 100,
        after_id: int = 0,
    ) -> list[StoredDeadline]:
        q = select(deadlines).where(deadlines.c.id > after_id)
        if opened_by is not None:
            q = q.where(deadlines.c.opened_by == opened_by)
        if state is not None:
            q = q.where(deadlines.c.state == state)
        if rule is not None:
            q = q.where(deadlines.c.rule == rule)
        if acting is not None:
            q = q.where(deadlines.c.acting == acting)
        if case is not None:
            q = q.where(deadlines.c.case_reference == case)
        if due_before is not None:
            q = q.where(deadlines.c.due_date <= due_before)
        if due_after is not None:
            q = q.where(deadlines.c.due_date >= due_after)
        if peer_of is not None:
            local, peer = peer_of
            cases = select(conversations.c.reference).where(
                ((conversations.c.requesting == local) & (conversations.c.requested == peer))
                | ((conversations.c.requesting == peer) & (conversations.c.requested == local))
            )
            q = q.where(deadlines.c.case_reference.in_(cases))
        q = q.order_by(deadlines.c.id).limit(limit)
        async with self.engine.connect() as conn:
            return [_deadline(r) for r in await conn.execute(q)]

    async def payloads_stored_before(self, before: datetime, limit: int) -> list[str]:
        q = (
            select(messages.c.message_id)
            .where(messages.c.signed_xml.is_not(None), messages.c.stored_at < before)
            .order_by(messages.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [r.message_id for r in await conn.execute(q)]

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
        q = (
            select(register)
            .select_from(
                register.outerjoin(
                    conversations, conversations.c.reference == register.c.reference
                ).outerjoin(messages, messages.c.message_id == register.c.message_id)
            )
            .where(
                register.c.sequence > after,
                register.c.sequence <= (upto if upto is not None else 2**62),
                register.c.event.in_(list(events)),
                register.c.reference.is_not(None),
                ~_a_strangers_refusal(),
            )
        )
        if case is not None:
            q = q.where(register.c.reference == case)
        if message_id is not None:
            q = q.where(register.c.message_id == message_id)
        q = q.order_by(register.c.sequence).limit(limit)
        async with self.engine.connect() as conn:
            return [_entry(r) for r in await conn.execute(q)]

    async def trust_mark(self, name: str) -> TrustMark | None:
        q = select(trust_marks).where(trust_marks.c.name == name)
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).first()
        return None if row is None else TrustMark(row.version, row.sha256, row.accepted_at)

    async def checkpoints(self) -> list[dict[str, Any]]:
        q = select(register_checkpoints).order_by(register_checkpoints.c.sequence)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(q)]

    async def checkpoint_entries(self) -> list[tuple[int, dict[str, Any]]]:
        """(sequence, details) of the register's `checkpoint` entries: the checkpoints the
        chain says were written."""
        q = (
            select(register.c.sequence, register.c.details)
            .where(register.c.event == CHECKPOINT_EVENT)
            .order_by(register.c.sequence)
        )
        async with self.engine.connect() as conn:
            return [(int(r.sequence), json.loads(r.details)) for r in await conn.execute(q)]

    async def pin_history(self) -> list[PinSnapshot]:
        """Every directory version's signing pins this gateway recorded, oldest first."""
        q = select(directory_pins).order_by(directory_pins.c.version)
        versions: dict[int, tuple[datetime, dict[str, set[str]]]] = {}
        async with self.engine.connect() as conn:
            for r in await conn.execute(q):
                _, pins = versions.setdefault(r.version, (r.published, {}))
                pins.setdefault(r.authority, set()).add(r.fingerprint)
        return [
            PinSnapshot(v, published, {code: frozenset(fps) for code, fps in pins.items()})
            for v, (published, pins) in sorted(versions.items())
        ]

    async def witnesses(self) -> list[dict[str, Any]]:
        """The peers' witnesses of this register the gateway holds, by sequence."""
        q = select(register_witnesses).order_by(
            register_witnesses.c.sequence, register_witnesses.c.holder
        )
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(q)]

    async def query_register(
        self,
        *,
        reference: str | None = None,
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
        limit: int = 100,
    ) -> list[RegisterEntry]:
        q = select(register).where(register.c.sequence > after)
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
        async with self.engine.connect() as conn:
            if since is not None or until is not None:
                window = select(func.min(register.c.sequence), func.max(register.c.sequence))
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
            return [_entry(r) for r in await conn.execute(q)]

    async def count_messages(self) -> int:
        async with self.engine.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(messages))).scalar_one()
            )
