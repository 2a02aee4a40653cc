"""How the deadline scheduler scales with the number of open deadlines.

Creates COUNT open deadlines in a fresh gateway store (SQLite by default, or --database-url),
DUE of them already expired, then reports:
- next_event_ms: finding the next deadline event (what the scheduler does before sleeping),
  median of repeated runs;
- pass_ms: one scheduler pass over the due deadlines (each expired once, with its register
  entry), and the per-deadline cost.

    .venv/bin/python benchmarks/deadline_scheduler.py --count 1000000 --due 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from gateway.config import load_config
from gateway.context import open_context
from gateway.core.deadlines import load_rule_set
from gateway.logs import configure_logging
from gateway.network import build_local_network
from gateway.service.deadline_keeper import DeadlineKeeper
from gateway.store.schema import deadlines

CHUNK = 20_000


async def run(count: int, due: int, database_url: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
        net = build_local_network(Path(tmp), ["BE-DU", "NL-DU"])
        config_path = net.gateways["BE-DU"].config
        if database_url:
            config_path.write_text(
                f"database_url = {json.dumps(database_url)}\n" + config_path.read_text()
            )
        ctx = await open_context(load_config(config_path))
        keeper = DeadlineKeeper(ctx, load_rule_set())
        now = ctx.clock()
        started = time.perf_counter()
        for first in range(0, count, CHUNK):
            rows = []
            for i in range(first, min(count, first + CHUNK)):
                expires = (
                    now - timedelta(minutes=1)
                    if i < due
                    else now + timedelta(minutes=1 + i % 500_000)
                )
                rows.append(
                    {
                        "case_reference": f"BE1BENCH-{i}",
                        "rule": "info_reply",
                        "legal_basis": "COM(2020) 610",
                        "acting": "NL-DU",
                        "opened_by": None,
                        "started_at": now,
                        "due_date": expires.date().isoformat(),
                        "expires_at": expires,
                        "state": "open",
                        "next_event_at": expires,
                        "reminders_sent": 2,
                    }
                )
            async with ctx.store.transaction() as tx:
                await tx.conn.execute(deadlines.insert(), rows)
            done = min(count, first + CHUNK)
            print(f"\rcreating deadlines: {done:,}/{count:,}", end="", file=sys.stderr)
        print(file=sys.stderr)
        create_s = time.perf_counter() - started

        samples = []
        for _ in range(50):
            t0 = time.perf_counter()
            await ctx.store.deadlines.next_event()
            samples.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        handled = await keeper.process_due()
        pass_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = await keeper.process_due()
        idle_pass_s = time.perf_counter() - t0
        await ctx.store.close()
        assert handled == due and again == 0, (handled, again)
        return {
            "open_deadlines": count,
            "due": due,
            "create_s": round(create_s, 2),
            "next_event_ms": round(statistics.median(samples) * 1000, 3),
            "pass_ms": round(pass_s * 1000, 1),
            "pass_per_deadline_ms": round(pass_s * 1000 / max(due, 1), 3),
            "idle_pass_ms": round(idle_pass_s * 1000, 3),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument(
        "--database-url",
        default=None,
        help="e.g. postgresql+asyncpg://postgres@127.0.0.1/test (default SQLite)",
    )
    args = parser.parse_args()
    configure_logging("warning")
    if not 0 <= args.due <= args.count:
        parser.error("--due must be between 0 and --count")
    print(json.dumps(asyncio.run(run(args.count, args.due, args.database_url))))


if __name__ == "__main__":
    main()
