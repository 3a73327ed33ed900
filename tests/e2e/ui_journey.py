"""A scientist's whole path through the web interface in headless Chromium, with auth on: sign in at the
development issuer, deploy a CWL tool by upload, run it from its generated form, watch its progress change on
the job page without a reload, see the PNG preview, download the result, sign out and be refused. Every page is
checked with axe-core (offline, vendored) on the way. The test (test_ui.py) and the screenshot script
(screenshots.py) both walk it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.cdp import Browser, Page

REPO = Path(__file__).resolve().parents[2]
MAKE_PNG = REPO / "tests" / "data" / "ui" / "make-png.cwl"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
UI_ENV = {"HPGC_AUTH__ENABLED": "true", "HPGC_LOCAL__ALLOW_USER_DEPLOY": "true"}
LAPTOP, PHONE = (1280, 800), (390, 844)


@dataclass
class Walk:
    url: str
    shots: Path | None = None  # where screenshots go (None: none)
    accessibility: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # page → serious violations
    progress_seen: list[int] = field(default_factory=list)
    downloaded: bytes = b""
    after_signout: tuple[int, str] = (0, "")


async def check(page: Page, walk: Walk, name: str) -> None:
    """axe-core's serious and critical violations of the page, and its screenshots (laptop and phone)."""
    if not await page.eval("typeof window.axe !== 'undefined'"):
        await page.eval(AXE.read_text())
    found = await page.eval("axe.run(document, {resultTypes: ['violations']}).then(r => r.violations"
                            ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
                            ".map(v => ({id: v.id, impact: v.impact, help: v.help, "
                            "nodes: v.nodes.slice(0, 3).map(n => n.html)})))")
    walk.accessibility[name] = found
    if walk.shots is not None:
        await page.screenshot(walk.shots / f"{name}.png", *LAPTOP)
        await page.screenshot(walk.shots / f"{name}-phone.png", *PHONE, mobile=True)


async def walk_through(walk: Walk, downloads_to: Path | None = None) -> Walk:
    browser = Browser()
    async with browser as page:
        url = walk.url
        await page.goto(f"{url}/jobs")  # a page without a session: to the sign-in
        await page.wait_for("location.pathname === '/auth/authorize'", what="the sign-in page")
        await check(page, walk, "signin")
        await page.fill("#user", "alice")
        await page.click("form button[type=submit]")
        await page.wait_for("location.pathname === '/jobs'", what="back on the jobs page")

        await page.goto(f"{url}/ui/deploy")
        await check(page, walk, "deploy")
        await page.set_file("#d-file", MAKE_PNG)
        await page.click("main form button[type=submit]")
        await page.wait_for("location.pathname === '/processes/make-png'", what="the deployed process")
        await page.wait_for("document.querySelector('form.runform') !== null", what="the run form")

        await page.goto(f"{url}/processes?f=html")
        await page.fill("#search", "png")
        await page.wait_for("document.querySelectorAll('.card:not([hidden])').length === 1", what="search")
        await check(page, walk, "processes")

        await page.goto(f"{url}/processes/make-png?f=html")
        await page.fill("[name='in.steps']", "6")
        await page.fill("[name='in.size']", "64")
        await page.eval("document.querySelector(\"[name='in.tint']\").value = 'red'")
        await check(page, walk, "process")
        await page.click("form.runform button[type=submit]")
        await page.wait_for("location.pathname.startsWith('/jobs/')", what="the job page")
        await page.eval("window.__sameDocument = true")  # gone if the page reloads
        while len(set(walk.progress_seen)) < 3:  # three different progress values, all in this document
            if not await page.eval("window.__sameDocument === true"):
                break
            value = await page.eval("parseInt(document.querySelector('[data-field=progress-text]').textContent)")
            if value is not None and value not in walk.progress_seen:
                walk.progress_seen.append(value)
            await asyncio.sleep(0.1)
        await page.wait_for("document.querySelector('.preview img') !== null && "
                            "document.querySelector('.preview img').complete && "
                            "document.querySelector('.preview img').naturalWidth === 64", 120, "the image preview")
        await check(page, walk, "job")

        await page.eval("document.querySelector('.preview[data-output=image] a[download]').click()")
        for _ in range(300):
            done = [p for p in browser.downloads.iterdir() if not p.name.endswith(".crdownload")]
            if done:
                walk.downloaded = done[0].read_bytes()
                break
            await asyncio.sleep(0.1)

        await page.goto(f"{url}/jobs?f=html")
        await check(page, walk, "jobs")
        await page.goto(f"{url}/")
        await check(page, walk, "landing")

        await page.click("form[action$='/ui/signout'] button")
        await page.wait_for("location.pathname === '/ui/signedout'", what="signed out")
        status = await page.eval("fetch('/jobs', {headers: {Accept: 'application/json'}}).then(r => r.status)")
        await page.goto(f"{url}/jobs?f=html")
        walk.after_signout = (int(status), str(await page.eval("location.pathname")))
    return walk


def report(walk: Walk) -> str:
    return json.dumps(walk.accessibility, indent=1)
