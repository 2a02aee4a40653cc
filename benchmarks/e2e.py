"""End-to-end throughput and latency of two gateways on loopback, against two floors measured
in the same run on the same machine:

- e2e: BE-DU and NL-DU as separate processes (durable storage: nothing is acknowledged
  before it is committed), N concurrent case-system submitters posting a mix of forms to
  BE-DU's API and following its events feed; throughput = acknowledged messages per second,
  latency = from the submission's POST to the `delivered` register entry, which is written
  once the peer's signed acknowledgement is verified; peak RSS and CPU per message of each
  gateway process;
- crypto floor: per message the cryptographic and parsing work alone, in a tight loop: build
  and sign the transmission, safe-parse, validate and verify it, sign the acknowledgement,
  parse and verify the acknowledgement;
- native floor: the same message and acknowledgement bytes through xmlsec's native sign and
  verify alone (2 signs and 2 verifies per message), timed around those calls only: what
  no wrapper of ours can go below (issue 20);
- TLS floor: a bare mutual-TLS echo with the same HTTP stack (aiohttp server and client,
  keep-alive, the same contexts), POSTing a body of the same size.

    .venv/bin/python benchmarks/e2e.py --messages 2000 --submitters 16 [--rate 100]
        [--sequential] [--database postgres] [--nodes 2]

With --rate the submitters are paced to that many messages per second overall; with
--sequential one submitter sends each message once the one before is acknowledged, so that
each meets idle gateways (issue 20: p99 at 100/s at most 3 times this p50). --database
postgres gives each authority a fresh PostgreSQL database on the server
GATEWAY_BENCH_POSTGRES_URL names (default: the local server), dropped afterwards; --nodes N
runs BE-DU as N processes sharing that database and one address (peer and API ports bound
with SO_REUSEPORT). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from gateway.client import GatewayClient
from gateway.config import load_config
from gateway.core.forms import form_type
from gateway.core.policy import Header
from gateway.examples import attachments_for, load_example
from gateway.network import UNTHROTTLED_PEER, LocalNetwork, build_local_network
from gateway.pki.tls import client_context, server_context
from gateway.service.trust import load_trust
from gateway.xml.envelope import (
    Acknowledgement,
    build_acknowledgement,
    build_transmission,
    read_acknowledgement,
    read_header,
    validate_envelope,
)
from gateway.xml.forms import form_to_element
from gateway.xml.parser import parse_untrusted
from gateway.xml.signature import verify

# The mix a Dublin unit sends most: requests (with a scanned document) and information.
MIX = (
    ("take-charge-request", "take-charge-request.json"),
    ("info-request", "info-request.json"),
    ("take-back-notification", "take-back-notification.json"),
)


POLL_SECONDS = 0.05
"""How often the load generator reads the events feed while it has nothing more to read."""


def peak_rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds() -> float | None:
    """CPU time of the local PostgreSQL server so far: its live processes, and what the
    postmaster has reaped of exited ones (None: no server process is visible here)."""
    total, found = 0.0, False
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = stat.read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            if not name.startswith("postgres"):
                continue
            fields = text.rsplit(")", 1)[1].split()
            # utime + stime, and cutime + cstime: what the postmaster reaped of its children
            total += sum(int(f) for f in fields[11:15])
            found = True
    return total / tick if found else None


def spawn(net: LocalNetwork, code: str, node: int = 0) -> subprocess.Popen[bytes]:
    gw = net.gateways[code]
    log = (gw.config.parent / f"gateway-{node}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "--log-level", "warning", "--log-json", "serve",
         "--config", str(gw.config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop(net: LocalNetwork, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM every gateway, and wait for each to stop as `gateway serve` does (in-flight
    work finished, the database closed). One that has not stopped within 60 s is a defect:
    it is killed, and the error quotes the end of its log."""
    for proc in procs.values():
        proc.terminate()
    stuck = []
    for code, proc in procs.items():
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
            authority, _, node = code.partition("/")
            log = net.gateways[authority].config.parent / f"gateway-{node or 0}.log"
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else "(no log)"
            stuck.append(f"{code} did not stop within 60 s of SIGTERM; its log ends:\n{tail}")
    if stuck:
        raise SystemExit("\n".join(stuck))


async def warm_up(
    be: GatewayClient, forms: list[tuple[str, dict[str, Any]]], count: int, submitters: int
) -> None:
    """Send `count` messages before measuring and wait until each is acknowledged: the first
    messages after a start meet cold caches (connections opened, statements prepared, form
    plans built), which is start-up, not the steady state a rate is measured in."""
    if count <= 0:
        return
    cursor = (await be.events("0", 1000))["next_cursor"]
    slots = asyncio.Semaphore(submitters)

    async def one(n: int) -> str:
        message_type, form = forms[n % len(forms)]
        extra: dict[str, Any] = {"case_number": f"W{n}"}
        if message_type == "take-charge-request":
            extra["attachments"] = attachments_for(form)
        async with slots:
            return str((await be.submit(message_type, "NL-DU", form, **extra))["message_id"])

    waiting = set(await asyncio.gather(*(one(n) for n in range(count))))
    limit = time.perf_counter() + 120
    while waiting:
        if time.perf_counter() > limit:
            raise TimeoutError(f"{len(waiting)} warm-up messages never acknowledged")
        page = await be.events(cursor, 1000)
        waiting -= {i["message_id"] for i in page["items"] if i["event"] == "delivered"}
        if len(page["items"]) < 1000:
            await asyncio.sleep(POLL_SECONDS)
        cursor = page["next_cursor"]


async def end_to_end(
    net: LocalNetwork,
    messages: int,
    submitters: int,
    rate: float | None,
    nodes: int = 1,
    database: str = "sqlite",
    sequential: bool = False,
    warmup: int = 0,
) -> dict[str, Any]:
    """Submit `messages` forms from `submitters` concurrent case-system clients and follow
    the events feed, as a case system does, until each has its verified acknowledgement.
    `sequential`: one client that submits each message only once the one before is
    acknowledged, so that every message meets idle gateways (the latency baseline)."""
    procs = {f"BE-DU/{n}": spawn(net, "BE-DU", n) for n in range(nodes)}
    procs["NL-DU"] = spawn(net, "NL-DU")
    be_gw = net.gateways["BE-DU"]
    try:
        async with GatewayClient(be_gw.api_url, be_gw.tokens["case-officer"]) as be:
            await be.wait_until_up(within=60)
            await asyncio.sleep(1.0 if nodes > 1 else 0)  # every node listening
            forms = [(t, load_example(f, today=date.today())) for t, f in MIX]
            await warm_up(be, forms, warmup, submitters)
            queue: asyncio.Queue[int] = asyncio.Queue()
            for n in range(messages):
                queue.put_nowait(n)
            sent_at: dict[str, float] = {}  # message id -> wall clock when its POST began
            acked_at: dict[str, float] = {}  # message id -> register time of `delivered`
            cursor = (await be.events("0", 1000))["next_cursor"]
            cpu_before = {code: cpu_seconds(proc.pid) for code, proc in procs.items()}
            server_before = server_cpu_seconds() if database == "postgres" else None
            started = time.perf_counter()

            async def submitter() -> None:
                while not queue.empty():
                    n = queue.get_nowait()
                    if rate:
                        # Message n is due at n / rate: arrivals evenly spread at the rate, as
                        # from many case systems, not in bursts of one per submitter.
                        await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
                    message_type, form = forms[n % len(forms)]
                    extra: dict[str, Any] = {"case_number": f"B{n}"}
                    if message_type == "take-charge-request":
                        extra["attachments"] = attachments_for(form)
                    wall = time.time()
                    result = await be.submit(message_type, "NL-DU", form, **extra)
                    sent_at[result["message_id"]] = wall
                    if sequential:
                        limit = time.perf_counter() + 60
                        while result["message_id"] not in acked_at:
                            if time.perf_counter() > limit or watching.done():
                                raise TimeoutError(f"message {n} not acknowledged within 60 s")
                            await asyncio.sleep(0.002)

            async def watcher() -> None:
                nonlocal cursor
                limit = time.perf_counter() + 600
                while len(acked_at) < messages:
                    if time.perf_counter() > limit:
                        raise TimeoutError(f"{messages - len(acked_at)} never acknowledged")
                    page = await be.events(cursor, 1000)
                    for item in page["items"]:
                        if item["event"] == "delivered":
                            when = datetime.fromisoformat(item["time"].replace("Z", "+00:00"))
                            acked_at[item["message_id"]] = when.timestamp()
                    if len(page["items"]) < 1000:
                        # As a case system follows the feed: a page now and then, at once
                        # only while pages come full. Polling again as soon as an answer
                        # came (as this did) spent the sender's CPU on pages of one or two
                        # entries: 8 ms per message at 100/s against 3.5 unpaced.
                        await asyncio.sleep(POLL_SECONDS)
                    cursor = page["next_cursor"]

            watching = asyncio.create_task(watcher())
            await asyncio.gather(*(submitter() for _ in range(1 if sequential else submitters)))
            submitted_s = time.perf_counter() - started
            await watching
            total_s = time.perf_counter() - started
            cpu = {code: cpu_seconds(proc.pid) - cpu_before[code] for code, proc in procs.items()}
            server_after = server_cpu_seconds() if server_before is not None else None
        rss = {code: peak_rss_mb(proc.pid) for code, proc in procs.items()}
    finally:
        stop(net, procs)
    assert set(acked_at) == set(sent_at), "every submitted message acknowledged, no other"
    latencies = sorted((acked_at[m] - sent_at[m]) * 1000 for m in sent_at)
    first = min(sent_at.values())
    slowest = sorted(sent_at, key=lambda m: acked_at[m] - sent_at[m])[-10:]
    return {
        "messages": messages,
        "submitters": 1 if sequential else submitters,
        "paced_rate": rate,
        "sequential": sequential,
        "submit_s": round(submitted_s, 2),
        "total_s": round(total_s, 2),
        "acknowledged_per_s": round(messages / total_s, 1),
        "latency_p50_ms": round(statistics.median(latencies), 1),
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1),
        "rss_mb": rss,
        # CPU per message and process, which contention on the machine changes little.
        "cpu_ms_per_message": {code: round(1000 * c / messages, 2) for code, c in cpu.items()},
        # The PostgreSQL server's own CPU per message (both gateways' databases), when the
        # server runs on this machine: what each statement costs beyond the gateway process.
        "database_cpu_ms_per_message": (
            None
            if server_before is None or server_after is None
            else round(1000 * (server_after - server_before) / messages, 2)
        ),
        "nodes": nodes,
        # When the slowest ten were submitted (s after the first) and how long each took (ms):
        # a pause of the whole process shows as a cluster, queueing as a spread.
        "slowest": [
            [round(sent_at[m] - first, 2), round((acked_at[m] - sent_at[m]) * 1000, 1)]
            for m in slowest
        ],
    }


def crypto_floor(net: LocalNetwork, seconds: float) -> dict[str, Any]:
    """Messages per second through sign, parse, validate, verify (message and ack) alone."""
    now = datetime.now(UTC)
    be = load_trust(load_config(net.gateways["BE-DU"].config), now)
    nl = load_trust(load_config(net.gateways["NL-DU"].config), now)
    directory = be.directory

    def resolve(fp: str) -> str | None:
        auth = directory.by_signing_fingerprint(fp)
        return None if auth is None else auth.code

    form = load_example("take-charge-request.json", today=date.today())
    files = attachments_for(form)
    from gateway.service.submission import attachment_files

    attachments = attachment_files({"attachments": files})
    n, size = 0, 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        header = Header(str(uuid.uuid4()), f"BE1F-{n}", "take-charge-request", "BE-DU",
                        "NL-DU", datetime.now(UTC))  # fmt: skip
        element = form_to_element(form_type("take-charge-request"), form)
        body = be.signer.sign(build_transmission(header, element, attachments))
        size = len(body)
        root = parse_untrusted(body)
        validate_envelope(root)
        verified = verify(root, resolve)
        read_header(verified.root)
        ack = nl.signer.sign(
            build_acknowledgement(
                Acknowledgement.of_acceptance(
                    header.message_id,
                    "NL-DU",
                    "BE-DU",
                    "ab" * 32,
                    datetime.now(UTC),
                    (1, "cd" * 32),
                )
            )
        )
        ack_root = parse_untrusted(ack)
        validate_envelope(ack_root)
        read_acknowledgement(verify(ack_root, resolve).root)
        n += 1
    elapsed = time.perf_counter() - started
    return {"messages_per_s": round(n / elapsed, 1), "transmission_bytes": size}


def native_floor(net: LocalNetwork, seconds: float) -> dict[str, Any]:
    """Messages per second of native xmlsec work alone: per message, sign the transmission's
    and the acknowledgement's prepared templates and verify both signed documents, each call
    timed on its own (the copies and setup around them are not counted)."""
    import copy

    import xmlsec
    from lxml import etree

    now = datetime.now(UTC)
    be = load_trust(load_config(net.gateways["BE-DU"].config), now)
    nl = load_trust(load_config(net.gateways["NL-DU"].config), now)
    form = load_example("take-charge-request.json", today=date.today())
    from gateway.service.submission import attachment_files

    attachments = attachment_files({"attachments": attachments_for(form)})
    header = Header(str(uuid.uuid4()), "BE1F-1", "take-charge-request", "BE-DU", "NL-DU", now)
    body = be.signer.sign(
        build_transmission(
            header, form_to_element(form_type("take-charge-request"), form), attachments
        )
    )
    ack = nl.signer.sign(
        build_acknowledgement(
            Acknowledgement.of_acceptance(
                header.message_id, "NL-DU", "BE-DU", "ab" * 32, now, (1, "cd" * 32)
            )
        )
    )
    ds = "{http://www.w3.org/2000/09/xmldsig#}"
    cases = []
    for signed, signer in ((body, be.signer), (ack, nl.signer)):
        tree = etree.fromstring(signed)
        sig = tree.find(f"{ds}Signature")
        assert sig is not None
        for value in sig.iter(f"{ds}SignatureValue", f"{ds}DigestValue"):
            value.text = ""  # the template: what sign() fills in
        public = xmlsec.Key.from_memory(
            signer.certificate.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            xmlsec.constants.KeyDataFormatPem,
        )
        cases.append((tree, signer._key(), etree.fromstring(signed), public))
    spent, n = 0.0, 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for template, private, signed_tree, public in cases:
            tree = copy.deepcopy(template)
            sig = tree.find(f"{ds}Signature")
            ctx = xmlsec.SignatureContext()
            ctx.key = private
            started = time.perf_counter()
            ctx.sign(sig)
            spent += time.perf_counter() - started
            check = xmlsec.SignatureContext()
            check.key = public
            node = signed_tree.find(f"{ds}Signature")
            started = time.perf_counter()
            check.verify(node)
            spent += time.perf_counter() - started
        n += 1
    return {"messages_per_s": round(n / spent, 1)}


async def tls_floor(
    net: LocalNetwork, seconds: float, concurrency: int, size: int
) -> dict[str, Any]:
    """Requests per second of a bare mutual-TLS echo with the gateway's HTTP stack."""
    config_nl = load_config(net.gateways["NL-DU"].config)
    config_be = load_config(net.gateways["BE-DU"].config)
    answer = b"x" * 2500  # about an acknowledgement's size

    async def echo(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=answer, content_type="application/xml")

    app = web.Application(client_max_size=size * 2)
    app.router.add_post("/v1/transmissions", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(config_nl))
    await site.start()
    port = runner.addresses[0][1]
    body = b"y" * size
    count = 0
    try:
        connector = aiohttp.TCPConnector(ssl=client_context(config_be), limit_per_host=8)
        async with aiohttp.ClientSession(connector=connector) as session:
            deadline = time.perf_counter() + seconds
            started = time.perf_counter()

            async def worker() -> None:
                nonlocal count
                while time.perf_counter() < deadline:
                    async with session.post(
                        f"https://localhost:{port}/v1/transmissions",
                        data=body,
                        headers={"Content-Type": "application/xml"},
                    ) as resp:
                        await resp.read()
                    count += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
    finally:
        await runner.cleanup()
    return {"requests_per_s": round(count / elapsed, 1), "body_bytes": size}


class Databases:
    """Fresh PostgreSQL databases for one run, dropped at the end."""

    def __init__(self, server: str) -> None:
        self.server = make_url(server)
        self.names: list[str] = []

    def create(self, code: str) -> str:
        name = f"gw_bench_{uuid.uuid4().hex[:10]}_{code.lower().replace('-', '_')}"
        self.names.append(name)
        return self.server.set(database=name).render_as_string(hide_password=False)

    async def _ddl(self, *statements: str) -> None:
        admin = create_async_engine(self.server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            async with admin.connect() as conn:
                for statement in statements:
                    await conn.execute(text(statement))
        finally:
            await admin.dispose()

    async def create_all(self) -> None:
        await self._ddl(*(f'CREATE DATABASE "{n}"' for n in self.names))

    async def drop_all(self) -> None:
        await self._ddl(*(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in self.names))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    postgres = Databases(args.postgres_url) if args.database == "postgres" else None
    if args.nodes > 1 and postgres is None:
        raise SystemExit("--nodes > 1 needs --database postgres (SQLite serves one process)")
    with tempfile.TemporaryDirectory(prefix="gw-e2e-") as tmp:
        net = build_local_network(
            Path(tmp) / "net",
            ["BE-DU", "NL-DU"],
            delivery={"poll_interval_seconds": 0.2, "concurrency": 16, "max_attempts": 100},
            peer=UNTHROTTLED_PEER | {"reuse_port": args.nodes > 1},
            api={"reuse_port": args.nodes > 1},
            databases=postgres.create if postgres else None,
        )
        if postgres:
            await postgres.create_all()
        try:
            native = await asyncio.to_thread(native_floor, net, args.floor_seconds)
            crypto = await asyncio.to_thread(crypto_floor, net, args.floor_seconds)
            tls = await tls_floor(net, args.floor_seconds, 8, crypto["transmission_bytes"])
            e2e = await end_to_end(
                net,
                args.messages,
                args.submitters,
                args.rate,
                args.nodes,
                args.database,
                args.sequential,
                args.warmup,
            )
        finally:
            if postgres:
                await postgres.drop_all()
    return {
        "database": args.database,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "e2e": e2e,
        "native_floor": native,
        "crypto_floor": crypto,
        "crypto_to_native": round(crypto["messages_per_s"] / native["messages_per_s"], 3),
        "tls_floor": tls,
        "ratio_to_crypto_floor": round(e2e["acknowledged_per_s"] / crypto["messages_per_s"], 3),
        "ratio_to_tls_floor": round(e2e["acknowledged_per_s"] / tls["requests_per_s"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--submitters", type=int, default=16)
    parser.add_argument("--rate", type=float, default=None, help="pace submissions (msg/s)")
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="one message at a time, each once the one before is acknowledged (idle gateways)",
    )
    parser.add_argument("--floor-seconds", type=float, default=5.0)
    parser.add_argument(
        "--warmup",
        type=int,
        default=60,
        help="messages sent and acknowledged before measuring (not counted)",
    )
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--nodes", type=int, default=1, help="BE-DU processes (PostgreSQL)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "GATEWAY_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    from gateway.logs import configure_logging

    configure_logging("warning")
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
