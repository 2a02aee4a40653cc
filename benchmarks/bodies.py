"""Peak memory of a receiving gateway under large bodies (issue 14, item 6): BE-DU, holding
its real TLS and signing keys, posts N concurrent signed take charge requests of about 9 MB
each (two described attachments) straight to NL-DU's peer endpoint, the way a flooding member
would; NL-DU runs as its own process (`gateway serve`). Each refused body (429) is sent again
after the Retry-After the receiver gave, as the delivery worker does, until every body has
its signed acknowledgement. Reports NL-DU's resident memory before the burst and its peak
(VmHWM), the answers of the first round, and the time until every body was acknowledged.

    .venv/bin/python benchmarks/bodies.py [--bodies 8] [--megabytes 9] [--unthrottled]

By default NL-DU runs with the default [peer] limits (the target: peak < 200 MB);
--unthrottled runs it with limits no single peer reaches, for comparison. Prints one JSON
object."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp

from gateway.client import GatewayClient
from gateway.config import load_config
from gateway.core.conversations import basis_version
from gateway.core.forms import form_type
from gateway.core.policy import Header
from gateway.core.throttle import retry_after_seconds
from gateway.examples import load_example
from gateway.network import UNTHROTTLED_PEER, LocalNetwork, build_local_network
from gateway.pki.tls import client_context
from gateway.service.trust import load_trust
from gateway.xml.envelope import AttachmentFile, build_transmission
from gateway.xml.forms import form_to_element

TARGET_MB = 200.0


def rss_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (the peak so far) of a process, in MB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def signed_bodies(net: LocalNetwork, count: int, megabytes: float) -> list[bytes]:
    """`count` signed BE-DU -> NL-DU take charge requests, each opening its own case and
    carrying two random attachments that make the body about `megabytes` MB."""
    trust = load_trust(load_config(net.gateways["BE-DU"].config), datetime.now(UTC))
    # base64 makes 4 bytes of 3; two files share the body.
    per_file = int(megabytes * 1024 * 1024 * 3 / 4 / 2)
    bodies = []
    for n in range(count):
        form = load_example("take-charge-request.json", today=date.today())
        files = []
        for i in (1, 2):
            content = b"%PDF-1.4\n" + os.urandom(per_file)
            files.append(AttachmentFile(f"scan-{i}.pdf", "application/pdf", content))
        form["attachment"] = [
            {
                "fileName": f.file_name,
                "mediaType": f.media_type,
                "sha256": hashlib.sha256(f.content).hexdigest(),
                "size": len(f.content),
            }
            for f in files
        ]
        header = Header(
            str(uuid.uuid4()),
            f"BE01F-BODY{n}",
            "take-charge-request",
            "BE-DU",
            "NL-DU",
            datetime.now(UTC),
            legal_basis="2024-1351",
            rules_version=basis_version("2024-1351"),
        )
        element = form_to_element(form_type("take-charge-request"), form)
        bodies.append(trust.signer.sign(build_transmission(header, element, files)))
    return bodies


async def post_until_acknowledged(
    session: aiohttp.ClientSession, url: str, body: bytes, first: Counter[int]
) -> int:
    """POST one body, again after each 429/503's Retry-After; the number of attempts."""
    for attempt in range(1, 61):
        async with session.post(
            url, data=body, headers={"Content-Type": "application/xml"}
        ) as resp:
            await resp.read()
            if attempt == 1:
                first[resp.status] += 1
            if resp.status == 200:
                return attempt
            if resp.status not in (429, 503):
                raise SystemExit(f"unexpected HTTP {resp.status} from the receiver")
            wait = retry_after_seconds(resp.headers.get("Retry-After"), datetime.now(UTC))
        await asyncio.sleep(min(wait if wait is not None else 1.0, 30.0))
    raise SystemExit("a body was still refused after 60 attempts")


def spawn(config: Path) -> subprocess.Popen[bytes]:
    log = (config.parent / "gateway.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "--log-level", "warning", "serve",
         "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gw-bodies-") as tmp:
        peer = UNTHROTTLED_PEER if args.unthrottled else None
        net = build_local_network(Path(tmp) / "net", ["BE-DU", "NL-DU"], peer=peer)
        nl = net.gateways["NL-DU"]
        bodies = await asyncio.to_thread(signed_bodies, net, args.bodies, args.megabytes)
        proc = spawn(nl.config)
        try:
            async with GatewayClient(nl.api_url, nl.tokens["auditor"]) as client:
                await client.wait_until_up(within=60)
            before = rss_mb(proc.pid, "VmRSS")
            ssl = client_context(load_config(net.gateways["BE-DU"].config))
            connector = aiohttp.TCPConnector(ssl=ssl, limit=args.bodies)
            first: Counter[int] = Counter()
            url = nl.peer_url + "/v1/transmissions"
            started = time.perf_counter()
            async with aiohttp.ClientSession(connector=connector) as session:
                attempts = await asyncio.gather(
                    *(post_until_acknowledged(session, url, b, first) for b in bodies)
                )
            elapsed = time.perf_counter() - started
            peak = rss_mb(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        limits = load_config(nl.config).peer
    return {
        "limits": "unthrottled" if args.unthrottled else "defaults",
        "peer_limits": {
            "requests_per_second": limits.requests_per_second,
            "burst": limits.burst,
            "max_concurrent_requests": limits.max_concurrent_requests,
            "max_bytes_in_flight": limits.max_bytes_in_flight,
        },
        "bodies": args.bodies,
        "body_bytes": len(bodies[0]),
        "first_round": {str(status): n for status, n in sorted(first.items())},
        "attempts": sum(attempts),
        "all_acknowledged_s": round(elapsed, 2),
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "target_mb": TARGET_MB,
        "target_met": peak < TARGET_MB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=8)
    parser.add_argument("--megabytes", type=float, default=9.0)
    parser.add_argument("--unthrottled", action="store_true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
