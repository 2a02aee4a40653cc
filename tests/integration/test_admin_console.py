"""The administrators' console reads (issue 18) with real gateways on loopback: only the
administrator role reads them; the traffic figures count the register's deliveries,
receptions and rejections per hour; a refused trust reload is shown with its cause and its
register entry (Art. 41: the previous trust stays in force); every peer is called with the
gateway's own TLS client and reported reachable with the certificate the directory pins, or
unreachable with the error."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from gateway.core.times import utc_text
from gateway.pki.certs import fingerprint, load_certificate

from .conftest import Harness, answered_request, make_harness

OPERATIONS = ("/api/v1/admin/trust", "/api/v1/admin/peers", "/api/v1/admin/stats")


async def call(
    h: Harness, code: str, path: str, role: str | None = "administrator", method: str = "GET"
) -> tuple[int, Any]:
    gw = h.net.gateways[code]
    headers = {} if role is None else {"Authorization": f"Bearer {gw.tokens[role]}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session,
        session.request(method, gw.api_url + path, headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def test_only_the_administrator_reads_the_console(harness: Harness) -> None:
    await harness.start("BE-DU")
    for path in OPERATIONS:
        status, body = await call(harness, "BE-DU", path)
        assert status == 200, (path, body)
        for role in ("case-officer", "health-practitioner", "auditor"):
            status, body = await call(harness, "BE-DU", path, role)
            assert (status, body["rule"]) == (403, "administer"), (path, role)
        status, body = await call(harness, "BE-DU", path, None)
        assert status == 401 and body["title"] == "Unauthorized", path


async def test_the_page_is_served_with_its_protections(harness: Harness) -> None:
    await harness.start("BE-DU")
    gw = harness.net.gateways["BE-DU"]
    async with aiohttp.ClientSession() as session:
        for name, kind in (("", "text/html"), ("/admin.js", "javascript"), ("/console.css", "css")):
            async with session.get(gw.api_url + "/admin" + name) as resp:
                assert resp.status == 200 and kind in resp.content_type, name
                csp = resp.headers["Content-Security-Policy"]
                assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
                assert resp.headers["X-Frame-Options"] == "DENY"
        async with session.get(gw.api_url + "/admin/auditor.js") as resp:
            assert resp.status == 404  # only the console's own files


async def test_stats_count_deliveries_receptions_and_rejections_per_hour(
    harness: Harness,
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    for i in range(2):
        await answered_request(h, f"STATS-{i}")
    async with (
        h.session_as("BE-DU") as s,
        s.post(
            h.net.gateways["NL-DU"].peer_url + "/v1/transmissions",
            data=b"<not-closed>",
            headers={"Content-Type": "application/xml"},
        ) as resp,
    ):
        assert resp.status == 422

    status, be = await call(h, "BE-DU", "/api/v1/admin/stats")
    assert status == 200, be
    assert be["totals"] == {"sent": 2, "received": 2, "failures": 0, "rejections": 0}
    now = h.ctx("BE-DU").clock()
    assert len(be["hours"]) in (7 * 24, 7 * 24 + 1)  # whole hours from 7 days ago until now
    assert be["hours"][-1]["hour"] == utc_text(now.replace(minute=0, second=0, microsecond=0))
    busy = [x for x in be["hours"] if x["sent"] or x["received"]]
    assert sum(x["sent"] for x in busy) == 2 and sum(x["received"] for x in busy) == 2
    assert be["entries_read"] >= 4

    status, nl = await call(h, "NL-DU", "/api/v1/admin/stats")
    assert status == 200
    assert nl["totals"] == {"sent": 2, "received": 2, "failures": 0, "rejections": 1}
    assert nl["rejections_by_reason"] == {"malformed-xml": 1}


async def test_stats_since_is_checked(harness: Harness) -> None:
    await harness.start("BE-DU")
    now = harness.ctx("BE-DU").clock()
    since = utc_text(now - timedelta(hours=5))
    status, body = await call(harness, "BE-DU", f"/api/v1/admin/stats?since={since}")
    assert status == 200 and body["since"] == since and len(body["hours"]) in (5, 6)
    for bad, words in (
        (utc_text(now + timedelta(hours=1)), "future"),
        (utc_text(now - timedelta(days=32)), "31 days"),
        ("2026-12-01T10:00:00", "offset"),
        ("yesterday", "offset"),
    ):
        status, body = await call(harness, "BE-DU", f"/api/v1/admin/stats?since={bad}")
        assert status == 400 and body["field"] == "since" and words in body["detail"], bad
    status, body = await call(harness, "BE-DU", "/api/v1/admin/stats?from=x")
    assert status == 400 and body["field"] == "from"


async def test_art41_a_refused_reload_is_shown_with_its_cause(tmp_path: Path) -> None:
    """The directory is tampered with; the administrator's reload is refused (the previous
    trust stays in force) and the console names the cause and the register entry."""
    h = await make_harness(tmp_path)
    config = h.net.gateways["BE-DU"].config
    # Only the administrator's reload, not the file watcher, may see the tampered file.
    config.write_text(
        config.read_text().replace("reload_check_seconds = 0.5", "reload_check_seconds = 3600")
    )
    try:
        await h.start("BE-DU")
        status, before = await call(h, "BE-DU", "/api/v1/admin/trust")
        assert status == 200 and before["refusals"] == 0 and before["last_refusal"] is None

        directory = h.net.pki.directory
        directory.write_bytes(directory.read_bytes().replace(b"Dublin unit of", b"Dublin unit 0f"))
        status, refused = await call(h, "BE-DU", "/api/v1/admin/reload", method="POST")
        assert status == 409, refused

        status, after = await call(h, "BE-DU", "/api/v1/admin/trust")
        assert status == 200 and after["refusals"] == 1
        last = after["last_refusal"]
        assert last["trigger"] == "admin-api"
        assert "signature" in last["error"]
        assert last["register_sequence"] == refused["register_sequence"]
        (entry,) = await h.ctx("BE-DU").store.register.query(event="trust-reload-refused")
        assert (entry.sequence, utc_text(entry.time)) == (last["register_sequence"], last["time"])
        assert entry.details["text"] == last["error"]
    finally:
        await h.close()


def _peer_identity(h: Harness, code: str) -> tuple[str, str]:
    cert = load_certificate(h.net.pki.authorities[code].tls_cert)
    return cert.subject.rfc4514_string(), fingerprint(cert)


async def test_art41_peers_are_reachable_with_their_pinned_identity_until_one_stops(
    harness: Harness,
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU", "GR-DU")
    status, body = await call(h, "BE-DU", "/api/v1/admin/peers")
    assert status == 200, body
    assert [p["authority"] for p in body["peers"]] == ["GR-DU", "NL-DU"]  # never ourselves
    for peer in body["peers"]:
        subject, fp = _peer_identity(h, peer["authority"])
        assert (peer["reachable"], peer["outcome"], peer["error"]) == (True, "ok", None)
        assert (peer["subject"], peer["fingerprint"], peer["pinned"]) == (subject, fp, True)
        assert fp in peer["pins"]

    await h.stop("GR-DU")
    status, body = await call(h, "BE-DU", "/api/v1/admin/peers")
    assert status == 200
    gr, nl = body["peers"]
    port = h.net.gateways["GR-DU"].peer_port
    assert (gr["authority"], gr["reachable"], gr["outcome"]) == ("GR-DU", False, "unreachable")
    assert f"peer unreachable: 127.0.0.1:{port}" in gr["error"]
    assert (gr["fingerprint"], gr["subject"], gr["pinned"]) == (None, None, False)
    assert (nl["reachable"], nl["pinned"]) == (True, True)
