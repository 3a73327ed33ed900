"""Signed result links on a real server with auth on: curl opens them without a header, GDAL's /vsicurl/ reads
the image through them (Range requests), and dismissing the job revokes them (docs/ui.md)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import REPO, start_server
from tests.e2e.test_auth_e2e import hpgc_token

MAKE_PNG = REPO / "tests" / "data" / "ui" / "make-png.cwl"
UI_ENV = {"HPGC_AUTH__ENABLED": "true", "HPGC_LOCAL__ALLOW_USER_DEPLOY": "true"}
pytestmark = pytest.mark.skipif(shutil.which("gdalinfo") is None or shutil.which("curl") is None,
                                reason="gdalinfo and curl are needed (.ci/test installs gdal-bin and curl)")


def test_a_signed_link_works_with_curl_and_gdal_until_the_job_is_dismissed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data, env=UI_ENV)
    try:
        alice = {"Authorization": f"Bearer {hpgc_token(str(data), 'alice', 'hpgc:execute hpgc:deploy')}"}
        resp = httpx.post(f"{server.url}/processes", content=MAKE_PNG.read_bytes(), timeout=60,
                          headers={**alice, "Content-Type": "application/cwl+yaml"})
        assert resp.status_code == 201, resp.text
        run = httpx.post(f"{server.url}/processes/make-png/execution", timeout=120,
                         json={"inputs": {"steps": 0, "size": 48}, "response": "document"},
                         headers={**alice, "Prefer": "wait=100"})
        assert run.status_code == 200, run.text
        href = run.json()["image"]["href"]
        assert "sig=" in href and "exp=" in href
        job = run.headers["Location"].rsplit("/", 1)[1]

        curl = subprocess.run(["curl", "-sS", "-o", str(tmp_path / "got.png"), "-w", "%{http_code}", href],
                              capture_output=True, text=True, timeout=60)
        assert curl.stdout == "200", curl.stderr
        assert (tmp_path / "got.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        ranged = subprocess.run(["curl", "-sS", "-r", "0-7", "-w", "%{http_code}", href], capture_output=True,
                                timeout=60)
        assert ranged.stdout == b"\x89PNG\r\n\x1a\n206"

        info = subprocess.run(["gdalinfo", f"/vsicurl/{href}"], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "GDAL_HTTP_TIMEOUT": "30"})
        assert info.returncode == 0, info.stderr
        assert "Driver: PNG/Portable Network Graphics" in info.stdout and "Size is 48, 48" in info.stdout

        assert httpx.get(href.replace("sig=", "sig=x")).status_code == 403
        assert httpx.delete(f"{server.url}/jobs/{job}", headers=alice).status_code == 200
        assert httpx.get(href).status_code == 403
    finally:
        server.stop()
