"""The HTML pages and Swagger UI in a real (headless) browser, offline: every asset comes from hpgc."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

import httpx
import pytest

from tests.e2e.conftest import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/test installs it)")


def rendered_dom(url: str, wait_ms: int = 4000) -> str:
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--virtual-time-budget={wait_ms}", "--dump-dom", url],
            capture_output=True, text=True, timeout=90,
        )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_swagger_ui_renders_the_api_offline(server: Server) -> None:
    dom = rendered_dom(server.url + "/api.html")
    # these exist only once Swagger UI's JavaScript ran and fetched /api from hpgc itself
    assert "hpgc — OGC API - Processes" in dom
    assert "/processes/{processId}/execution" in dom
    assert "Failed to load API definition" not in dom


def test_html_pages_in_a_browser(server: Server) -> None:
    job = httpx.post(f"{server.url}/processes/echo/execution", json={"inputs": {"stringInput": "browser"}},
                     headers={"Prefer": "respond-async, wait=60"}, timeout=90).json()["jobID"]
    # finished first: a page of a running job keeps a live event stream open, and --dump-dom's virtual time
    # stands still while a request is open (tests/e2e/test_ui.py watches the live pages)
    assert httpx.get(f"{server.url}/jobs/{job}").json()["status"] == "successful"
    landing = rendered_dom(server.url + "/")  # a browser's Accept header asks for HTML
    assert "<h1>hpgc</h1>" in landing and "/processes?f=html" in landing
    process = rendered_dom(server.url + "/processes/echo")
    assert "stringInput" in process and "Inputs" in process
    jobs = rendered_dom(server.url + "/jobs")
    assert job[:8] in jobs
    page = rendered_dom(f"{server.url}/jobs/{job}")
    assert job in page and "echo" in page
