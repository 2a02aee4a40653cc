"""The auditors' web page (Art. 40(9)) in headless Chromium: log in with the auditor token,
see the integrity badge, filter by reference, open an entry, download the CSV; open a case
with its transfer information (Art. 37) and health certificate (Art. 39) on the timeline
with their receipt times, download a proof and check it with xmlsec1, print the report."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import struct
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.cli import main
from tests.browser.chromium import CHROMIUM, FLAGS, NEEDS_CHROMIUM, playwright_api
from tests.integration.conftest import Harness, answered_request, make_harness
from tests.integration.test_audit_api import PERSONAL, full_case

pytestmark = NEEDS_CHROMIUM


@pytest.fixture
async def exchanged(tmp_path: Path) -> AsyncIterator[tuple[Harness, str]]:
    h = await make_harness(tmp_path)
    try:
        await h.start("BE-DU", "NL-DU")
        wanted = ""
        for i in range(3):
            sent, _ = await answered_request(h, f"WEB-{i}")
            if i == 1:
                wanted = sent["reference"]
        yield h, wanted
    finally:
        await h.close()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_art40_9_auditor_logs_in_filters_by_reference_and_downloads_csv(
    exchanged: tuple[Harness, str], tmp_path: Path
) -> None:
    h, reference = exchanged
    gw = h.net.gateways["BE-DU"]
    # BE-DU's administrator has NL-DU's register bundle checked: BE-DU then holds NL-DU's
    # witnesses of its register, and the badge checks them and says what they cover.
    bundle = tmp_path / "nl.bundle"
    nl_config = str(h.net.gateways["NL-DU"].config)
    assert (
        await asyncio.to_thread(
            main, ["register", "export", "--config", nl_config, "--out", str(bundle)]
        )
        == 0
    )
    assert (
        await asyncio.to_thread(
            main, ["register", "verify", "--config", str(gw.config), "--witnesses", str(bundle)]
        )
        == 0
    )
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = await browser.new_page(accept_downloads=True)
            await page.goto(gw.api_url + "/auditor", timeout=15_000)
            # a case officer's token is refused
            await page.fill("#token", gw.tokens["case-officer"])
            await page.click("#login-form button")
            await page.wait_for_selector("#login-error:has-text('failed')", timeout=10_000)
            await page.fill("#token", gw.tokens["auditor"])
            await page.click("#login-form button")
            await page.wait_for_selector("#badge.ok", timeout=15_000)
            badge = await page.inner_text("#badge")
            assert "intact" in badge and "3 peer witnesses" in badge, badge
            assert "witnessed by peers (NL-DU; 3 witnesses)" in badge, badge

            await page.fill("input[name=reference_prefix]", reference)
            await page.click("#search button[type=submit]")
            await page.wait_for_function(
                "ref => [...document.querySelectorAll('#rows tr')].length > 0 && "
                "[...document.querySelectorAll('#rows tr')].every("
                "tr => tr.children[6].textContent === ref)",
                arg=reference,
                timeout=10_000,
            )
            cells = await page.eval_on_selector_all(
                "#rows tr", "trs => trs.map(tr => [...tr.children].map(td => td.textContent))"
            )
            assert cells and all(row[6] == reference for row in cells)
            assert {row[2] for row in cells} >= {"submitted", "delivered", "received"}

            await page.click("#rows tr")
            assert reference in await page.inner_text("#detail")

            table = page.locator("#register-table")
            shot = await table.screenshot(path=str(tmp_path / "table.png"))
            width, height = png_size(shot)
            assert width > 300 and height >= 18 * (len(cells) + 1), (width, height, len(cells))

            async with page.expect_download(timeout=10_000) as info:
                await page.click("#csv")
            download = await info.value
            text = Path(await download.path()).read_text()
            rows = list(csv.DictReader(io.StringIO(text)))
            assert [r["sequence"] for r in rows] == [row[0] for row in cells]
            assert all(r["reference"] == reference for r in rows)
            assert "EXAMPLE-DOE" not in text
        finally:
            await browser.close()


@pytest.fixture
async def whole_case(tmp_path: Path) -> AsyncIterator[tuple[Harness, str]]:
    h = await make_harness(tmp_path)
    try:
        await h.start("BE-DU", "NL-DU")
        reference, _ = await full_case(h, "WEB-CASE")
        yield h, reference
    finally:
        await h.close()


async def test_art40_9_auditor_opens_a_case_timeline_downloads_a_proof_and_prints_the_report(
    whole_case: tuple[Harness, str], tmp_path: Path
) -> None:
    h, reference = whole_case
    gw = h.net.gateways["BE-DU"]
    case = await h.ctx("BE-DU").store.messages.of_case(reference)
    receipts = {m.message_type: m.receipt_time for m in case}
    deadlines = await h.ctx("BE-DU").store.deadlines.find(case=reference, limit=100)
    assert deadlines and set(receipts) >= {"transfer-information", "health-certificate"}
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = await browser.new_page(
                accept_downloads=True, viewport={"width": 800, "height": 900}
            )
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            await page.goto(gw.api_url + "/auditor", timeout=15_000)
            await page.fill("#token", gw.tokens["auditor"])
            await page.press("#token", "Enter")
            await page.wait_for_selector("#badge.ok", timeout=15_000)
            # From the register to the case, by keyboard: the row, Enter, the case button.
            await page.select_option("select[name=type]", "health-certificate")
            await page.click("#search button[type=submit]")
            await page.wait_for_function(
                "() => [...document.querySelectorAll('#rows tr')].length > 0 && "
                "[...document.querySelectorAll('#rows tr')].every("
                "tr => tr.children[5].textContent === 'health-certificate')",
                timeout=10_000,
            )
            await page.focus("#rows tr")
            await page.keyboard.press("Enter")
            await page.click("#open-entry-case")
            await page.wait_for_selector("#case:not([hidden]) g.tl-message", timeout=10_000)
            assert await page.inner_text("#case-ref") == reference

            # The timeline shows both forms that carry their own references, at their
            # receipt times, and the limits as bars with their state.
            points = await page.eval_on_selector_all(
                "#timeline g.tl-message",
                "gs => gs.map(g => [g.dataset.type, g.dataset.receipt, "
                "g.querySelectorAll('circle.tl-receipt').length])",
            )
            shown = {kind: (receipt, dots) for kind, receipt, dots in points}
            for kind in ("transfer-information", "health-certificate"):
                receipt, dots = shown[kind]
                stated = receipts[kind]
                assert stated is not None and dots == 1
                assert receipt.startswith(stated.strftime("%Y-%m-%dT%H:%M:%S")), (kind, receipt)
            bars = await page.eval_on_selector_all(
                "#timeline g.tl-deadline", "gs => gs.map(g => [g.dataset.rule, g.dataset.state])"
            )
            assert sorted(map(tuple, bars)) == sorted((d.rule, d.state) for d in deadlines)
            table = await page.inner_text("#case-messages")
            assert all(str(m.message_type) in table for m in case)
            html = await page.content()
            assert not any(value in html for value in PERSONAL)

            # The proof of receipt of the health certificate, checked by xmlsec1.
            row = page.locator("#case-messages tr", has_text="health-certificate")
            async with page.expect_download(timeout=10_000) as info:
                await row.locator("button.proof").click()
            proof = Path(await (await info.value).path())
            assert b"Acknowledgement" in proof.read_bytes()
            if shutil.which("xmlsec1"):
                checked = subprocess.run(
                    ["xmlsec1", "--verify", "--trusted-pem", str(h.net.pki.ca_cert), str(proof)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert checked.returncode == 0, checked.stderr

            # The signed bundle of the case downloads as a file.
            async with page.expect_download(timeout=10_000) as info:
                await page.click("#case-bundle")
            assert b'"signature"' in Path(await (await info.value).path()).read_bytes()

            # The printed report: every message and every limit, no buttons or forms.
            await page.emulate_media(media="print")
            assert await page.is_visible("#report-title")
            assert reference in await page.inner_text("#report-title")
            assert not await page.is_visible("#case-form")
            assert not await page.is_visible("#case-print")
            printed = await page.eval_on_selector_all(
                "#case-messages tbody tr, #case-deadlines tbody tr",
                "trs => trs.filter(tr => tr.offsetParent !== null).length",
            )
            assert printed == len(case) + len(deadlines)
            pdf = await page.pdf()
            assert pdf[:4] == b"%PDF"
            assert not errors, errors
        finally:
            await browser.close()
