"""The auditors' web page (Art. 40(9)) in headless Chromium: log in with the auditor token,
see the integrity badge, filter by reference, open an entry, download the CSV."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.cli import main
from tests.integration.conftest import Harness, answered_request, make_harness

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip(
    "playwright.async_api", reason="needs playwright (installed by `make test`)"
)
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)"
)
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


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

            await page.fill("input[name=reference]", reference)
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

            shot = await page.locator("table").screenshot(path=str(tmp_path / "table.png"))
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
