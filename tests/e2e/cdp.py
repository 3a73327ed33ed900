"""A small Chrome DevTools Protocol driver for the browser tests: headless Chromium, one page, navigate, run
JavaScript, wait for a condition, set a file input, take a screenshot. Only aiohttp (already a dependency), so
the tests need no Selenium or Playwright download."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserError(Exception):
    pass


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._id = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._waiting:
                self._waiting.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._id] = future
        await self.ws.send_str(json.dumps({"id": self._id, "method": method, "params": params}))
        answer = await asyncio.wait_for(future, 60)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        return dict(answer.get("result", {}))

    async def eval(self, expression: str) -> Any:
        got = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in got:
            raise BrowserError(f"{expression[:80]}: {got['exceptionDetails']}")
        return got["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.eval(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise BrowserError(f"timed out waiting for {what or expression}; page: {await self.eval('location.href')}")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'", what=url)

    async def click(self, selector: str) -> None:
        """Click and wait for the page that follows (a form submit or a link)."""
        await self.eval("window.__hpgcBefore = true")
        await self.eval(f"document.querySelector({json.dumps(selector)}).click()")
        await self.wait_for("!window.__hpgcBefore && document.readyState === 'complete'", what=f"after {selector}")

    async def fill(self, selector: str, value: str) -> None:
        await self.eval(f"(e => {{ e.value = {json.dumps(value)}; e.dispatchEvent(new Event('input')); }})"
                        f"(document.querySelector({json.dumps(selector)}))")

    async def set_file(self, selector: str, path: Path) -> None:
        doc = await self.send("DOM.getDocument")
        node = await self.send("DOM.querySelector", nodeId=doc["root"]["nodeId"], selector=selector)
        await self.send("DOM.setFileInputFiles", nodeId=node["nodeId"], files=[str(path)])

    async def screenshot(self, path: Path, width: int, height: int, mobile: bool = False) -> None:
        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=1, mobile=mobile)
        full = await self.eval("Math.min(document.documentElement.scrollHeight, 2400)")
        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=max(height, int(full)),
                        deviceScaleFactor=1, mobile=mobile)
        shot = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        await self.send("Emulation.clearDeviceMetricsOverride")


class Browser:
    """`async with Browser() as page:` headless Chromium with a fresh profile; downloads go to `downloads`."""

    def __init__(self) -> None:
        self.profile = tempfile.TemporaryDirectory()
        self.downloads = Path(self.profile.name) / "downloads"
        self.proc: subprocess.Popen[str] | None = None

    async def __aenter__(self) -> Page:
        if CHROMIUM is None:
            raise BrowserError("chromium is not installed")
        self.downloads.mkdir()
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile.name}/profile", "about:blank"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        assert self.proc.stderr is not None
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = await asyncio.to_thread(self.proc.stderr.readline)
            if not line and self.proc.poll() is not None:
                raise BrowserError("chromium exited")
            if m := re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line):
                port = int(m.group(1))
        if port is None:
            raise BrowserError("chromium did not start")
        self.http = aiohttp.ClientSession()
        async with self.http.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json(content_type=None)
        target = next(t for t in targets if t.get("type") == "page")
        ws = await self.http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024)
        page = Page(ws)
        for domain in ("Page", "Runtime", "DOM"):
            await page.send(f"{domain}.enable")
        await page.send("Page.setDownloadBehavior", behavior="allow", downloadPath=str(self.downloads))
        self.page = page
        return page

    async def __aexit__(self, *exc: object) -> None:
        await self.page.ws.close()
        self.page._reader.cancel()
        await self.http.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.profile.cleanup()
