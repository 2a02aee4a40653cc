"""CPU the store spends per message, without the HTTP, TLS and XML work around it.

Per message, the two units of work a sender's store runs for it: the submission (its case
read and written, the message, its outbox row, a time limit, a register entry) and the
acknowledgement (the message updated, the outbox row removed, a register entry), 32 messages
at a time so that units share commits as under load (gateway/store/group.py). Reports this
process's CPU per message (the commits' threads included; on PostgreSQL the server's is
not), which is what a change to the storage layer moves, apart from the end-to-end noise.

    .venv/bin/python benchmarks/store_units.py --messages 3000
    .venv/bin/python benchmarks/store_units.py --messages 3000 --database-url \\
        postgresql+asyncpg://postgres@127.0.0.1:5432/test   (a scratch database: it is filled)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.core.conversations import Conversation, State
from gateway.core.register import Event
from gateway.store.records import NewDeadline, NewMessage
from gateway.store.store import Store

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
BATCH = 32


async def one_message(store: Store, run: str, n: int) -> None:
    message_id = str(uuid.uuid4())
    reference = f"BE1F-{run}-{n}"
    async with store.transaction() as tx:
        found = await tx.conversations.get(reference)
        case = Conversation(reference, "take-charge", "BE-DU", "NL-DU", State.REQUESTED)
        await tx.conversations.save(case, NOW, new=found is None)
        await tx.messages.insert(
            NewMessage(message_id, "out", "NL-DU", "take-charge-request", reference, None,
                       False, NOW, NOW, "ab" * 32, b"x" * 4900, "queued", reference)
        )  # fmt: skip
        await tx.outbox.enqueue(message_id, NOW, NOW + timedelta(seconds=60))
        await tx.deadlines.open(
            NewDeadline(reference, "reply", "2024/1351", "NL-DU", message_id, NOW,
                        "2026-12-08", NOW + timedelta(days=1), NOW + timedelta(days=1))
        )  # fmt: skip
        await tx.register.append(time=NOW, event=Event.SUBMITTED, direction="out", peer="NL-DU",
                                 message_id=message_id, reference=reference)  # fmt: skip
    async with store.transaction() as tx:
        await tx.messages.update(message_id, state="delivered", receipt_time=NOW,
                                 ack_xml=b"y" * 2400)  # fmt: skip
        await tx.outbox.finish(message_id)
        await tx.register.append(time=NOW, event=Event.DELIVERED, direction="out", peer="NL-DU",
                                 message_id=message_id, reference=reference)  # fmt: skip


async def run(url: str, messages: int) -> dict[str, object]:
    store = await Store.open(url)
    run_id = uuid.uuid4().hex[:8]
    try:
        await asyncio.gather(*(one_message(store, run_id, -1 - i) for i in range(2 * BATCH)))
        cpu, wall = time.process_time(), time.perf_counter()
        for start in range(0, messages, BATCH):
            count = min(BATCH, messages - start)
            await asyncio.gather(*(one_message(store, run_id, start + i) for i in range(count)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        stats = store._writer.stats
    finally:
        await store.close()
    return {
        "database": url.split(":", 1)[0],
        "messages": messages,
        "cpu_us_per_message": round(cpu / messages * 1e6),
        "messages_per_s": round(messages / wall, 1),
        "units_per_commit": round(stats.units / max(stats.commits, 1), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    args = parser.parse_args()
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    with tempfile.TemporaryDirectory() as scratch:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(scratch) / 'gw.db'}"
        print(json.dumps(asyncio.run(run(url, args.messages))))


if __name__ == "__main__":
    main()
