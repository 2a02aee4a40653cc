"""The adapter's durable state: a delivery queue and the events cursor, in one SQLite file.

SQLite in WAL mode with synchronous=FULL: a committed transaction survives a crash or a power
loss. The calls block; the adapter runs them in a thread (asyncio.to_thread) and a lock
serialises them on the one connection. The administrator's commands (`dead-letters`,
`requeue`) open the same file from another process while the adapter runs; WAL lets them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DB_NAME = "webhook.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('message', 'event')),
    case_reference TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    last_status INTEGER,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
-- The items not yet delivered, per case in intake order: the head of each case is the only
-- one that may be in flight.
CREATE INDEX IF NOT EXISTS queue_open ON queue (case_reference, id) WHERE state != 'delivered';
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class StateError(Exception):
    """The state directory is missing or belongs to another gateway or role."""


@dataclass(frozen=True)
class Item:
    id: int
    delivery_id: str
    kind: str
    case_reference: str
    payload: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    last_status: int | None
    state: str
    created_at: float
    updated_at: float

    def summary(self) -> dict[str, Any]:
        """Everything but the payload (which holds personal data)."""
        return {
            "id": self.id,
            "delivery_id": self.delivery_id,
            "kind": self.kind,
            "case": self.case_reference,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "last_status": self.last_status,
            "state": self.state,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


_NAMES = (
    "id",
    "delivery_id",
    "kind",
    "case_reference",
    "payload",
    "attempts",
    "next_attempt_at",
    "last_error",
    "last_status",
    "state",
    "created_at",
    "updated_at",
)
_COLUMNS = ", ".join(_NAMES)
_Q_COLUMNS = ", ".join("q." + name for name in _NAMES)


def _item(row: Sequence[Any]) -> Item:
    return Item(*row)


class Queue:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=30000")
        with self._lock:
            self._db.executescript(SCHEMA)

    @classmethod
    def open(cls, state_dir: Path, *, create: bool) -> Queue:
        path = state_dir / DB_NAME
        if not create and not path.exists():
            raise StateError(f"no adapter state in {state_dir} (expected {path})")
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- transactions ------------------------------------------------------------------------

    def _write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run the statements in one IMMEDIATE transaction; their row counts."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                counts = []
                for sql, params in statements:
                    cur.execute(sql, params)
                    counts.append(cur.rowcount)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            return counts

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # -- settings ----------------------------------------------------------------------------

    def bind(self, **expected: str) -> None:
        """Record which gateway (API URL) and role this state belongs to; refuse another: the
        events cursor and the queue mean nothing against a different gateway."""
        rows = dict(self._read("SELECT name, value FROM settings"))
        for name, value in expected.items():
            if name in rows and rows[name] != value:
                raise StateError(
                    f"this state directory belongs to {name} {rows[name]!r}, not {value!r}; "
                    "use another --state directory"
                )
        self._write(
            ("INSERT OR IGNORE INTO settings (name, value) VALUES (?, ?)", (name, value))
            for name, value in expected.items()
        )

    def events_cursor(self, name: str = "events_cursor") -> str:
        rows = self._read("SELECT value FROM settings WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else "0"

    # -- intake ------------------------------------------------------------------------------

    def add_message(self, delivery_id: str, case: str, payload: str) -> bool:
        """Queue a received message, committed before the adapter consumes it at the gateway;
        False if it was already queued (a crash between commit and consume)."""
        now = time.time()
        (count,) = self._write(
            [
                (
                    "INSERT OR IGNORE INTO queue (delivery_id, kind, case_reference, payload, "
                    "next_attempt_at, created_at, updated_at) VALUES (?, 'message', ?, ?, ?, ?, ?)",
                    (delivery_id, case, payload, now, now, now),
                )
            ]
        )
        return count == 1

    def add_events(
        self,
        items: Sequence[tuple[str, str, str]],
        cursor: str,
        *,
        cursor_name: str = "events_cursor",
    ) -> int:
        """Queue events (delivery id, case, payload) and advance the cursor past them, in one
        transaction: after a crash either both happened or neither. The number queued. Items
        of the operational family come the same way, with their own cursor (their body says
        `"kind": "item"`; the queue keeps them as events)."""
        now = time.time()
        statements: list[tuple[str, Sequence[Any]]] = [
            (
                "INSERT OR IGNORE INTO queue (delivery_id, kind, case_reference, payload, "
                "next_attempt_at, created_at, updated_at) VALUES (?, 'event', ?, ?, ?, ?, ?)",
                (delivery_id, case, payload, now, now, now),
            )
            for delivery_id, case, payload in items
        ]
        statements.append(
            (
                "INSERT INTO settings (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (cursor_name, cursor),
            )
        )
        return sum(self._write(statements)[:-1])

    # -- delivery ----------------------------------------------------------------------------

    _HEADS = "SELECT MIN(id) AS id FROM queue WHERE state != 'delivered' GROUP BY case_reference"

    def due(self, now: float, limit: int, busy: Iterable[str] = ()) -> list[Item]:
        """Up to `limit` items to attempt now: the head (oldest undelivered item) of each case
        whose head is pending (not dead) and due, skipping the cases in `busy`."""
        busy = list(busy)
        skip = f"AND q.case_reference NOT IN ({', '.join('?' * len(busy))})" if busy else ""
        rows = self._read(
            f"SELECT {_Q_COLUMNS} "  # noqa: S608
            f"FROM queue q JOIN ({self._HEADS}) h ON q.id = h.id "
            f"WHERE q.state = 'pending' AND q.next_attempt_at <= ? {skip} "
            "ORDER BY q.next_attempt_at, q.id LIMIT ?",
            [now, *busy, limit],
        )
        return [_item(r) for r in rows]

    def next_due_at(self, busy: Iterable[str] = ()) -> float | None:
        """When the earliest pending head of a case not in `busy` falls due (None if there is
        none)."""
        busy = list(busy)
        skip = f"AND q.case_reference NOT IN ({', '.join('?' * len(busy))})" if busy else ""
        rows = self._read(
            f"SELECT MIN(q.next_attempt_at) FROM queue q JOIN ({self._HEADS}) h "  # noqa: S608
            f"ON q.id = h.id WHERE q.state = 'pending' {skip}",
            busy,
        )
        value = rows[0][0] if rows else None
        return None if value is None else float(value)

    def record_attempt(
        self,
        item_id: int,
        *,
        attempts: int,
        state: str,
        status: int | None,
        error: str | None,
        next_attempt_at: float,
    ) -> None:
        self._write(
            [
                (
                    "UPDATE queue SET attempts = ?, state = ?, last_status = ?, last_error = ?, "
                    "next_attempt_at = ?, updated_at = ? WHERE id = ? AND state = 'pending'",
                    (attempts, state, status, error, next_attempt_at, time.time(), item_id),
                )
            ]
        )

    # -- administration ----------------------------------------------------------------------

    def get(self, delivery_id: str) -> Item | None:
        rows = self._read(f"SELECT {_COLUMNS} FROM queue WHERE delivery_id = ?", (delivery_id,))  # noqa: S608
        return _item(rows[0]) if rows else None

    def items(self, state: str | None = None) -> list[Item]:
        if state is None:
            rows = self._read(f"SELECT {_COLUMNS} FROM queue ORDER BY id")  # noqa: S608
        else:
            rows = self._read(
                f"SELECT {_COLUMNS} FROM queue WHERE state = ? ORDER BY id",  # noqa: S608
                (state,),
            )
        return [_item(r) for r in rows]

    def dead_letters(self) -> list[tuple[Item, int]]:
        """Dead items with the number of later items of their case waiting behind them."""
        rows = self._read(
            f"SELECT {_COLUMNS}, (SELECT COUNT(*) FROM queue w WHERE "  # noqa: S608
            "w.case_reference = queue.case_reference AND w.id > queue.id "
            "AND w.state = 'pending') FROM queue WHERE state = 'dead' ORDER BY id"
        )
        return [(_item(r[:-1]), int(r[-1])) for r in rows]

    def requeue(self, ids: Sequence[str] | None) -> tuple[list[str], list[str]]:
        """Make dead items pending again with their attempts reset, due now; `ids` are queue
        ids or delivery ids, None for every dead item. Returns (requeued, not found) where
        "not found" means no dead item has that id."""
        now = time.time()
        if ids is None:
            targets = [item.delivery_id for item, _ in self.dead_letters()]
        else:
            targets = []
            for ident in ids:
                column = "id" if ident.isdigit() else "delivery_id"
                rows = self._read(
                    f"SELECT delivery_id FROM queue WHERE {column} = ? AND state = 'dead'",  # noqa: S608
                    (int(ident) if column == "id" else ident,),
                )
                targets.append(rows[0][0] if rows else "")
        missing = [i for i, t in zip(ids or targets, targets, strict=True) if not t]
        found = [t for t in targets if t]
        counts = self._write(
            (
                "UPDATE queue SET state = 'pending', attempts = 0, next_attempt_at = ?, "
                "updated_at = ? WHERE delivery_id = ? AND state = 'dead'",
                (now, now, delivery_id),
            )
            for delivery_id in found
        )
        done = [d for d, n in zip(found, counts, strict=True) if n == 1]
        return done, missing
