"""The register at scale (Art. 40(9)): append cost, auditor queries and full verification
over COUNT entries, on SQLite (default) or on a fresh PostgreSQL database.

    .venv/bin/python benchmarks/register.py --count 1000000 [--database postgres]

Reports append_ms_per_entry (each append is its own durable transaction, as in the gateway),
query_reference_ms and query_time_range_ms (medians; target under 50 ms) and
verify_entries_per_s (full chain, head and checkpoint verification; target over 200,000).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.config import load_config
from gateway.context import open_context
from gateway.core.register import next_entry
from gateway.logs import configure_logging
from gateway.network import LocalNetwork, build_local_network
from gateway.pki.certs import load_certificate
from gateway.service.audit import verify_store
from gateway.store.schema import register, register_head

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import Databases

CHUNK = 20_000
SAMPLE_APPENDS = 2_000


async def run(count: int, postgres_url: str | None) -> dict[str, float | str]:
    postgres = Databases(postgres_url) if postgres_url else None
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
        net = build_local_network(
            Path(tmp), ["BE-DU", "NL-DU"], databases=postgres.create if postgres else None
        )
        if postgres:
            await postgres.create_all()
        try:
            return await measure(net, count) | {"database": "postgres" if postgres else "sqlite"}
        finally:
            if postgres:
                await postgres.drop_all()


async def measure(net: LocalNetwork, count: int) -> dict[str, float | str]:
    config = load_config(net.gateways["BE-DU"].config)
    ctx = await open_context(config)
    store = ctx.store
    # Now, not a fixed date: checkpoints count only when signed while the demo signing
    # certificate (minted now) is valid.
    t0 = datetime.now(UTC)
    seq, head = 0, "0" * 64
    started = time.perf_counter()
    bulk = max(0, count - SAMPLE_APPENDS)
    while seq < bulk:
        rows = []
        for _ in range(min(CHUNK, bulk - seq)):
            e = next_entry(
                seq,
                head,
                time=t0 + timedelta(seconds=seq),
                event="received",
                direction="in",
                peer="NL-DU",
                message_id=f"m-{seq + 1}",
                message_type="take-charge-request",
                reference=f"NL1CASE-{(seq + 1) // 4}",
                digest="ab" * 32,
                status="accepted",
            )
            d = e.to_dict()
            d["time"] = e.time
            d["details"] = "{}"
            rows.append(d)
            seq, head = e.sequence, e.hash
        async with store.transaction() as tx:
            await tx.conn.execute(register.insert(), rows)
            await tx.conn.execute(register_head.update().values(sequence=seq, hash=head))
        print(f"\rloading register: {seq:,}/{count:,}", end="", file=sys.stderr)
    load_s = time.perf_counter() - started
    t_append = time.perf_counter()
    for i in range(count - seq):
        async with store.transaction() as tx:
            await tx.register.append(
                time=t0 + timedelta(seconds=seq + i),
                event="submitted",
                direction="out",
                peer="NL-DU",
                message_id=f"s-{i}",
                message_type="take-charge-request",
                reference=f"BE1APPEND-{i}",
                digest="cd" * 32,
                status="queued",
            )
    appended = count - seq
    append_ms = (time.perf_counter() - t_append) * 1000 / max(appended, 1)
    print(f"\rloading register: {count:,}/{count:,}", file=sys.stderr)

    def median_ms(samples: list[float]) -> float:
        return round(statistics.median(samples) * 1000, 3)

    ref_samples, range_samples = [], []
    for i in range(30):
        a = time.perf_counter()
        rows_ref = await store.register.query(reference=f"NL1CASE-{(i * 7919) % (bulk // 4)}")
        ref_samples.append(time.perf_counter() - a)
        start = t0 + timedelta(seconds=(i * 104729) % max(count - 200, 1))
        a = time.perf_counter()
        rows_range = await store.register.query(since=start, until=start + timedelta(seconds=100))
        range_samples.append(time.perf_counter() - a)
    assert rows_ref and rows_range
    ca = load_certificate(config.ca_cert)

    def progress(done: int, total: int) -> None:
        print(f"\rverifying: {done:,}/{total:,}", end="", file=sys.stderr)

    a = time.perf_counter()
    report = await verify_store(store, config.authority, ca, progress)
    verify_s = time.perf_counter() - a
    print(file=sys.stderr)
    await store.close()
    return {
        "entries": report.entries,
        "load_s": round(load_s, 1),
        "append_ms_per_entry": round(append_ms, 3),
        "query_reference_ms": median_ms(ref_samples),
        "query_time_range_ms": median_ms(range_samples),
        "verify_s": round(verify_s, 2),
        "verify_entries_per_s": round(report.entries / verify_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "GATEWAY_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
        help="the server on which a fresh database is created and dropped (--database postgres)",
    )
    args = parser.parse_args()
    if args.count < SAMPLE_APPENDS * 2:
        parser.error(f"--count must be at least {SAMPLE_APPENDS * 2}")
    configure_logging("warning")
    url = args.postgres_url if args.database == "postgres" else None
    print(json.dumps(asyncio.run(run(args.count, url))))


if __name__ == "__main__":
    main()
