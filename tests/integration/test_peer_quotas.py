"""Per-peer quotas on the peer listener (issue 14, item 6): a member holding its real TLS and
signing keys that floods a gateway with requests or large bodies gets 429 with Retry-After,
the register keeps one entry per limit and interval (not one per request), and an honest
sender's delivery worker waits as long as it is told, then delivers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from gateway.core.register import occurred_at
from gateway.examples import attachments_for
from gateway.transport.admission import ADMISSION

from .conftest import Harness, example, make_harness
from .test_rejections import header, post, with_files


async def _throttled_entries(h: Harness, code: str, total: int) -> list:  # type: ignore[type-arg]
    """The register's `throttled` entries, once their counts add up to `total`."""
    store = h.ctx(code).store
    for _ in range(200):
        entries = await store.register.query(reason="throttled", limit=100)
        if sum(e.details["count"] for e in entries) >= total:
            return entries
        await asyncio.sleep(0.05)
    raise AssertionError(f"throttled entries never added up to {total}: {entries}")


async def test_requests_beyond_the_burst_get_429_with_retry_after_and_one_entry_per_interval(
    tmp_path: Path,
) -> None:
    h = await make_harness(
        tmp_path,
        peer={"burst": 5, "requests_per_second": 0.5, "refusal_summary_seconds": 3.0},
    )
    try:
        await h.start("NL-DU")
        url = h.net.gateways["NL-DU"].peer_url + "/v1/health"
        answers = []
        async with h.session_as("BE-DU") as s:
            for _ in range(20):
                async with s.get(url) as resp:
                    answers.append(
                        (resp.status, resp.headers.get("Retry-After"), await resp.text())
                    )
            assert [a[0] for a in answers] == [200] * 5 + [429] * 15
            for _, retry_after, text in answers[5:]:
                assert retry_after is not None and 1 <= int(retry_after) <= 2
                assert "0.5 requests per second (burst 5)" in text
            # A peer that waits as long as it was told is admitted again.
            await asyncio.sleep(int(answers[-1][1] or 2))
            body = h.signer("BE-DU").sign(with_files(header()))
            status, _ = await post(s, h, body)
            assert status == 200
        entries = await _throttled_entries(h, "NL-DU", 15)
        assert [(e.peer, e.details["limit"], e.details["count"]) for e in entries] == [
            ("BE-DU", "requests-per-second", 1),
            ("BE-DU", "requests-per-second", 14),
        ]
        assert all(e.event == "rejected" and e.direction == "in" for e in entries)
        registry = h.ctx("NL-DU").metrics.registry
        sample = registry.get_sample_value(
            "gateway_peer_requests_throttled_total",
            {"peer": "BE-DU", "limit": "requests-per-second"},
        )
        assert sample == 15
    finally:
        await h.close()


async def _held_body(first: bytes, release: asyncio.Event) -> AsyncIterator[bytes]:
    """A body of undeclared length (chunked) whose end arrives only on `release`."""
    yield first
    await release.wait()


async def test_a_body_beyond_the_bytes_in_flight_limit_gets_429_until_the_other_is_done(
    tmp_path: Path,
) -> None:
    """One request of BE-DU is being received (chunked: it counts as the largest body);
    a second body that would pass peer.max_bytes_in_flight is refused with 429 before it is
    read, and accepted once the first is answered."""
    h = await make_harness(
        tmp_path,
        peer={"max_body_bytes": 200_000, "max_bytes_in_flight": 300_000},
    )
    try:
        await h.start("NL-DU")
        url = h.net.gateways["NL-DU"].peer_url + "/v1/transmissions"
        body = h.signer("BE-DU").sign(with_files(header()))
        padded = body.replace(b"?>", b"?>" + b" " * 150_000, 1)
        assert len(padded) > 150_000
        release = asyncio.Event()
        async with h.session_as("BE-DU") as slow, h.session_as("BE-DU") as s:
            held = asyncio.ensure_future(
                slow.post(
                    url,
                    data=_held_body(b"<?xml version='1.0'?>", release),
                    headers={"Content-Type": "application/xml"},
                )
            )
            for _ in range(100):  # until the first request is admitted and in flight
                if _in_flight(h) == (1, 200_000):
                    break
                await asyncio.sleep(0.02)
            assert _in_flight(h) == (1, 200_000)
            async with s.post(
                url, data=padded, headers={"Content-Type": "application/xml"}
            ) as resp:
                assert resp.status == 429
                assert resp.headers["Retry-After"] == "1"
                assert "300000 bytes of bodies in flight" in await resp.text()
            release.set()
            first = await held
            first.release()
            status, _ = await post(s, h, padded)
            assert status == 200
        entries = await _throttled_entries(h, "NL-DU", 1)
        assert [(e.peer, e.details["limit"]) for e in entries] == [("BE-DU", "bytes-in-flight")]
        assert _in_flight(h) == (0, 0)
    finally:
        await h.close()


def _in_flight(h: Harness) -> tuple[int, int]:
    app = h.running["NL-DU"].peer_runner.app
    return app[ADMISSION].quotas.in_flight("BE-DU")


async def test_the_delivery_worker_waits_for_the_retry_after_it_is_given(tmp_path: Path) -> None:
    """NL-DU admits one request of BE-DU every 4 seconds; BE-DU's worker, whose own retry
    delay is 0.1 s, reschedules each throttled message no earlier than the Retry-After, and
    every message is delivered once."""
    h = await make_harness(tmp_path, peer={"burst": 1, "requests_per_second": 0.25})
    try:
        await h.start("BE-DU", "NL-DU")
        be = h.api("BE-DU")
        sent = [
            await be.submit(
                "take-charge-request",
                "NL-DU",
                example("take-charge-request.json"),
                case_number=f"Q-{n}",
                attachments=attachments_for(example("take-charge-request.json")),
            )
            for n in range(3)
        ]
        for message in sent:
            await be.wait_for_state(message["message_id"], {"delivered"}, within=30)
        failed = await h.ctx("BE-DU").store.register.query(event="delivery-failed", limit=100)
        throttled = [e for e in failed if "HTTP 429" in e.details["error"]]
        assert throttled, "some attempts were throttled"
        for e in throttled:
            told = float(re.search(r"retry after ([\d.]+) s", e.details["error"]).group(1))  # type: ignore[union-attr]
            next_at = datetime.fromisoformat(e.details["next_attempt_at"])
            # From the attempt (the event's own time: the chain may register it a moment later).
            assert (next_at - occurred_at(e)).total_seconds() >= told
        assert await h.ctx("NL-DU").store.messages.count() == 3
    finally:
        await h.close()


async def test_refusals_counted_when_the_gateway_stops_are_recorded_not_lost(
    tmp_path: Path,
) -> None:
    """An interval of an hour has not ended when the gateway stops: the count of the
    refusals since the first is written then, not dropped."""
    h = await make_harness(
        tmp_path,
        peer={"burst": 1, "requests_per_second": 0.01, "refusal_summary_seconds": 3600.0},
    )
    try:
        await h.start("NL-DU")
        url = h.net.gateways["NL-DU"].peer_url + "/v1/health"
        async with h.session_as("BE-DU") as s:
            statuses = []
            for _ in range(10):
                async with s.get(url) as resp:
                    statuses.append(resp.status)
        assert statuses == [200] + [429] * 9
        await h.stop("NL-DU")
        await h.start("NL-DU")
        entries = await h.ctx("NL-DU").store.register.query(reason="throttled", limit=10)
        assert [e.details["count"] for e in entries] == [1, 8]
    finally:
        await h.close()
