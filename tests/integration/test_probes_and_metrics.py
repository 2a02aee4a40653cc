"""Probes and pipeline metrics of real gateways on loopback with real mutual TLS (issue 17,
items 3 and 4): `/livez` and `/readyz` answer without a token and name only the failing
checks; every message through the pipeline is counted where it becomes durable, once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Harness, make_harness, send_request

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def probe(h: Harness, code: str, path: str, token: str | None = None) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as s,
        s.get(h.net.gateways[code].api_url + path, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def scrape(h: Harness, code: str) -> Samples:
    text = await h.api(code, "administrator").metrics()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def eventually(
    h: Harness, code: str, check: Callable[[Samples], bool], within: float = 20
) -> Samples:
    """Scrape until `check` holds (a counter moves once its unit of work is durable, which
    may be a moment after the answer that made the test look)."""
    samples = await scrape(h, code)
    for _ in range(int(within / 0.05)):
        if check(samples):
            return samples
        await asyncio.sleep(0.05)
        samples = await scrape(h, code)
    raise AssertionError(f"{code}: metrics never reached the expected values")


async def test_probes_answer_without_a_token_and_say_nothing_else(harness: Harness) -> None:
    h = harness
    await h.start("BE-DU")
    for token in (None, "not-a-token", h.net.gateways["BE-DU"].tokens["case-officer"]):
        assert await probe(h, "BE-DU", "/livez", token) == (200, {"status": "ok"})
        assert await probe(h, "BE-DU", "/readyz", token) == (200, {"status": "ok"})
    async with (
        aiohttp.ClientSession() as s,
        s.head(h.net.gateways["BE-DU"].api_url + "/readyz") as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"


@contextlib.asynccontextmanager
async def database_folder_gone(h: Harness, code: str) -> AsyncIterator[None]:
    """The gateway's SQLite folder disappears (an unmounted volume): connections already
    open keep their files, new ones cannot open the database. The pool's idle connections
    are closed, as a restart of the database server would close them; then it comes back."""
    store = h.ctx(code).store
    path = store.sqlite_path()
    if path is None:
        pytest.skip("the database folder is SQLite's; PostgreSQL is reached over the network")
    folder = Path(path).parent
    away = folder.with_name(folder.name + "-unmounted")
    folder.rename(away)
    await store.engine.dispose()
    try:
        yield
    finally:
        away.rename(folder)
        await store.engine.dispose()


async def test_readyz_names_the_database_while_it_cannot_be_opened(harness: Harness) -> None:
    h = harness
    await h.start("BE-DU")
    assert await probe(h, "BE-DU", "/readyz") == (200, {"status": "ok"})
    async with database_folder_gone(h, "BE-DU"):
        status, body = await probe(h, "BE-DU", "/readyz")
        assert (status, body) == (503, {"status": "unavailable", "failing": ["database"]})
        assert await probe(h, "BE-DU", "/livez") == (200, {"status": "ok"})
    assert await probe(h, "BE-DU", "/readyz") == (200, {"status": "ok"})


async def test_readyz_names_own_certificates_and_crl_once_they_run_out(tmp_path: Path) -> None:
    """The demo network's certificates, directory publisher and CRL live two days here; the
    gateway's clock moves three days on. The process still serves (livez), but must not
    be sent traffic (readyz), and the metric says which of our certificates is at fault."""
    h = await make_harness(tmp_path, valid_days=2)
    try:
        await h.start("BE-DU")
        before = await scrape(h, "BE-DU")
        for purpose in ("tls", "signing"):
            assert value(before, "gateway_own_certificate_status", purpose=purpose) == 1.0
        await h.api("BE-DU", "administrator").advance_clock(3 * 86400)
        status, body = await probe(h, "BE-DU", "/readyz")
        assert status == 503
        assert body == {"status": "unavailable", "failing": ["directory", "certificates", "crl"]}
        assert await probe(h, "BE-DU", "/livez") == (200, {"status": "ok"})
        after = await scrape(h, "BE-DU")
        for purpose in ("tls", "signing"):
            assert value(after, "gateway_own_certificate_status", purpose=purpose) == 0.0
    finally:
        await h.close()


async def test_a_delivered_request_is_counted_once_on_each_side(harness: Harness) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    be = h.api("BE-DU")
    sent = await send_request(be, case_number="METRICS-1")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    await be.message(sent["message_id"])

    def delivered(samples: Samples) -> bool:
        return value(samples, "gateway_deliveries_total", outcome="accepted") == 1.0

    sender = await eventually(h, "BE-DU", delivered)
    assert value(sender, "gateway_deliveries_total", outcome="refused") == 0.0
    assert value(sender, "gateway_deliveries_total", outcome="failed") == 0.0
    assert value(sender, "gateway_outbox_messages", state="queued") == 0.0
    assert value(sender, "gateway_outbox_messages", state="undeliverable") == 0.0
    open_limits = await be.deadlines(state="open")
    assert value(sender, "gateway_deadlines_open") == len(open_limits["items"]) > 0

    # The route pattern, never the concrete path with the message id.
    posted = value(
        sender,
        "gateway_http_request_duration_seconds_count",
        route="/api/v1/messages",
        method="POST",
    )
    assert posted == 1.0
    read = value(
        sender,
        "gateway_http_request_duration_seconds_count",
        route="/api/v1/messages/{message_id}",
        method="GET",
    )
    assert read is not None and read >= 1.0
    routes = {dict(labels).get("route") for _, labels in sender}
    assert not any(sent["message_id"] in (r or "") for r in routes)
    # The platform's own collectors, on this gateway's registry.
    assert value(sender, "process_cpu_seconds_total") is not None
    assert value(sender, "process_resident_memory_bytes") is not None
    assert any(name == "python_info" for name, _ in sender)

    receiver = await scrape(h, "NL-DU")
    accepted = value(receiver, "gateway_transmissions_received_total", status="accepted", reason="")
    assert accepted == 1.0
    assert (
        value(
            receiver,
            "gateway_http_request_duration_seconds_count",
            route="/v1/transmissions",
            method="POST",
        )
        == 1.0
    )


async def test_a_rejected_transmission_is_counted_with_its_reason(harness: Harness) -> None:
    h = harness
    await h.start("NL-DU")
    status, ack = await h.post_signed("BE-DU", "NL-DU", b"<Transmission><unclosed>")
    assert status == 422 and ack.reason_code == "malformed-xml"
    samples = await scrape(h, "NL-DU")
    rejected = value(
        samples,
        "gateway_transmissions_received_total",
        status="rejected",
        reason="malformed-xml",
    )
    assert rejected == 1.0
    assert (
        value(samples, "gateway_transmissions_received_total", status="accepted", reason="") == 0.0
    )


async def test_an_expired_limit_is_counted_with_its_consequence(harness: Harness) -> None:
    """Art. 30(8): silence for two months is deemed acceptance, counted once on each side."""
    h = harness
    await h.start("BE-DU", "NL-DU")
    be = h.api("BE-DU")
    sent = await send_request(be, case_number="METRICS-SILENT")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    for code in ("BE-DU", "NL-DU"):
        await h.api(code, "administrator").advance_clock(40 * 86400)

    def deemed(samples: Samples) -> bool:
        counted = value(samples, "gateway_deadlines_expired_total", consequence="deemed-acceptance")
        return counted == 1.0

    for code in ("BE-DU", "NL-DU"):
        await eventually(h, code, deemed)
        case = await h.api(code).case(sent["reference"])
        assert case["state"] == "deemed-accepted"


async def test_a_refused_trust_reload_is_counted(harness: Harness) -> None:
    h = harness
    await h.start("BE-DU")
    admin = h.api("BE-DU", "administrator")
    assert value(await scrape(h, "BE-DU"), "gateway_trust_reloads_refused_total") == 0.0
    crl = h.net.pki.crl
    good = crl.read_bytes()
    crl.write_bytes(b"not a CRL")
    try:
        with pytest.raises(Exception) as refused:
            await admin.reload_trust()
        assert getattr(refused.value, "status", None) == 409
    finally:
        crl.write_bytes(good)
    entries = await h.ctx("BE-DU").store.register.query(event="trust-reload-refused")
    samples = await scrape(h, "BE-DU")
    assert value(samples, "gateway_trust_reloads_refused_total") == len(entries) >= 1
