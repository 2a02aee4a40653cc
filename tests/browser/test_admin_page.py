"""The administrators' web page (issue 18) in headless Chromium at 800 px: log in with the
administrator token (a case officer's is refused), see certificates about to expire with
their days left, the peers' reachability and pinned identity, an undeliverable message
retried from the keyboard, and the traffic charts drawn for the hours that had traffic; all
under the page's Content-Security-Policy, with nothing it refuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from gateway.client import ApiError
from gateway.pki.certs import fingerprint, load_certificate
from tests.browser.chromium import CHROMIUM, FLAGS, NEEDS_CHROMIUM, playwright_api
from tests.integration.conftest import Harness, answered_request, make_harness, send_request

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = NEEDS_CHROMIUM
VALID_DAYS = 10
"""The demo network's certificates expire in 10 days: inside the 30-day warning window."""


@dataclass
class Scene:
    h: Harness
    undeliverable: str


async def _undeliverable(h: Harness) -> str:
    """A request to GR-DU, which is down, tried and then cancelled by the administrator."""
    be, admin = h.api("BE-DU"), h.api("BE-DU", "administrator")
    message_id = str((await send_request(be, "GR-DU", case_number="ADMIN-QUEUE"))["message_id"])
    for _ in range(200):
        (item,) = (await admin.outbox("queued"))["items"]
        if item["attempts"]:
            break
        await asyncio.sleep(0.05)
    for _ in range(200):
        try:
            await admin.cancel_delivery(message_id)
            return message_id
        except ApiError as exc:  # the worker holds it this very moment
            assert exc.status == 409
            await asyncio.sleep(0.02)
    raise AssertionError("the message was never cancelled")


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    h = await make_harness(tmp_path, valid_days=VALID_DAYS)
    try:
        await h.start("BE-DU", "NL-DU")  # GR-DU stays down
        await answered_request(h, "ADMIN-WEB")
        async with (
            h.session_as("NL-DU") as s,
            s.post(
                h.net.gateways["BE-DU"].peer_url + "/v1/transmissions",
                data=b"<not-closed>",
                headers={"Content-Type": "application/xml"},
            ) as resp,
        ):
            assert resp.status == 422
        yield Scene(h, await _undeliverable(h))
    finally:
        await h.close()


async def test_administrator_sees_expiring_certificates_peers_queue_and_traffic(
    scene: Scene,
) -> None:
    h = scene.h
    gw = h.net.gateways["BE-DU"]
    refused_by_csp: list[str] = []
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 1000})
            page.on(
                "console",
                lambda m: refused_by_csp.append(m.text) if "Content Security" in m.text else None,
            )
            await page.goto(gw.api_url + "/admin", timeout=15_000)
            await page.fill("#token", gw.tokens["case-officer"])
            await page.click("#login-form button")
            await page.wait_for_selector("#login-error:has-text('failed')", timeout=10_000)
            assert await page.is_hidden("#main")
            await page.fill("#token", gw.tokens["administrator"])
            await page.press("#token", "Enter")
            await page.wait_for_selector("#updated:has-text('Updated')", timeout=20_000)

            await _certificates(page)
            await _trust_facts(page)
            await _peers(page, h)
            await _charts(page, h)
            await _retry(page, scene.undeliverable)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 800, f"the page is {width} px wide at 800 px"
        finally:
            await browser.close()
    assert refused_by_csp == []


async def _rows(page: Page, table: str) -> list[list[str]]:
    rows: list[list[str]] = await page.eval_on_selector_all(
        f"#{table} tbody tr", "trs => trs.map(tr => [...tr.children].map(td => td.textContent))"
    )
    return rows


async def _certificates(page: Page) -> None:
    rows = await _rows(page, "certs")
    ours = [r for r in rows if r[:2] == ["BE-DU", "tls"]]
    assert len(ours) == 1, rows
    *_, not_after, days_left, status = ours[0]
    assert status == "expiring" and not_after.endswith(" UTC")
    assert VALID_DAYS - 1 < float(days_left) <= VALID_DAYS
    summary = await page.inner_text("#certs-summary")
    assert f"{len(rows)} of {len(rows)} certificates need attention" in summary
    assert "within 30 days" in summary


async def _trust_facts(page: Page) -> None:
    facts = {
        dl: await page.eval_on_selector(
            f"#{dl}",
            "dl => [...dl.querySelectorAll('dt:not(.caption)')].map(dt => "
            "[dt.textContent, dt.nextElementSibling.textContent])",
        )
        for dl in ("directory", "crl", "reloads")
    }
    directory, crl, reloads = (dict(facts[k]) for k in ("directory", "crl", "reloads"))
    assert directory["Version"] == "1" and "directory publisher" in directory["Publisher"]
    assert directory["Authorities"] == "BE-DU, GR-DU, NL-DU"
    assert crl["Next update"].endswith(f"UTC (in {VALID_DAYS:.1f} days)"), crl
    assert reloads == {"Applied": "0", "Refused": "0", "Last refusal": "none"}


async def _peers(page: Page, h: Harness) -> None:
    rows = {r[0]: r for r in await _rows(page, "peers")}
    assert set(rows) == {"NL-DU", "GR-DU"}
    nl_cert = load_certificate(h.net.pki.authorities["NL-DU"].tls_cert)
    _, endpoint, reachable, identity, subject, fp, error = rows["NL-DU"]
    assert endpoint == h.net.gateways["NL-DU"].peer_url
    assert (reachable, identity, error) == ("reachable", "pinned", "")
    assert (subject, fp) == (nl_cert.subject.rfc4514_string(), fingerprint(nl_cert))
    gr = rows["GR-DU"]
    assert gr[2] == "unreachable" and "peer unreachable" in gr[6] and gr[5] == ""


async def _stats(h: Harness) -> dict[str, Any]:
    gw = h.net.gateways["BE-DU"]
    headers = {"Authorization": f"Bearer {gw.tokens['administrator']}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session,
        session.get(gw.api_url + "/api/v1/admin/stats", headers=headers) as resp,
    ):
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def _charts(page: Page, h: Harness) -> None:
    """One bar per hour with traffic, as tall as its count allows, and none elsewhere."""
    stats = await _stats(h)
    for series in ("sent", "received"):
        wanted = {x["hour"]: x[series] for x in stats["hours"] if x[series]}
        drawn = await page.eval_on_selector_all(
            f"#chart-messages svg rect[data-series={series}]",
            "rs => rs.map(r => [r.dataset.hour, Number(r.dataset.count), r.getBBox().height])",
        )
        assert {hour: count for hour, count, _ in drawn} == wanted, (series, drawn)
        assert sum(wanted.values()) == 1 and all(height > 0 for _, _, height in drawn)
    failures = await page.eval_on_selector_all(
        "#chart-failures svg rect[data-series=failures]", "rs => rs.map(r => r.dataset.hour)"
    )
    assert failures, "the failed attempts to GR-DU are drawn"
    assert set(failures) <= {x["hour"] for x in stats["hours"] if x["failures"]}
    reasons = await page.eval_on_selector_all(
        "#chart-rejections svg rect", "rs => rs.map(r => [r.dataset.reason, r.dataset.count])"
    )
    assert reasons == [["malformed-xml", "1"]]
    label = await page.get_attribute("#chart-messages svg", "aria-label")
    assert label and "per hour (UTC)" in label


async def _retry(page: Page, message_id: str) -> None:
    row = f"#outbox tr[data-message-id='{message_id}']"
    assert await page.get_attribute(row, "data-state") == "undeliverable"
    assert await page.inner_text(f"{row} td:first-child") == "undeliverable"
    retry = page.locator(f"{row} button", has_text="Retry")
    assert await page.locator(f"{row} button", has_text="Cancel").count() == 0
    await retry.focus()
    await page.keyboard.press("Enter")
    await page.wait_for_selector(f"{row}[data-state=queued]", timeout=10_000)
    assert await page.inner_text(f"{row} td:first-child") == "queued"
    status = await page.inner_text("#outbox-status")
    assert status == f"{message_id}: undeliverable -> queued"
