"""The README's first command as a new user runs it: `hpgc serve` on its embedded defaults (relative data
dir, development issuer on), then the tour with a token from `hpgc token`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import REPO, free_port

BIN = Path(sys.executable).parent


def test_embedded_defaults_with_a_dev_token(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPGC_")}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([BIN / "hpgc", "serve", "--port", str(port)], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert (tmp_path / "hpgc-data" / "hpgc.sqlite").exists()  # the default data dir, relative to cwd
        assert httpx.get(url + "/processes").status_code == 401  # auth is on by default
        token = subprocess.run([BIN / "hpgc", "token", "--user", "newcomer", "--scope", "hpgc:execute"],
                               cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.strip()
        auth = {"Authorization": f"Bearer {token}"}
        resp = httpx.post(f"{url}/processes/echo/execution", headers={**auth, "Prefer": "respond-async"},
                          json={"inputs": {"stringInput": "Hello, HPC!"}})
        assert resp.status_code == 201, resp.text
        job_id = resp.json()["jobID"]
        for _ in range(300):
            status = httpx.get(f"{url}/jobs/{job_id}", headers=auth).json()
            if status["status"] not in ("accepted", "running"):
                break
            time.sleep(0.2)
        assert status["status"] == "successful", httpx.get(f"{url}/jobs/{job_id}/logs", headers=auth).text
        assert httpx.get(f"{url}/jobs/{job_id}/results", headers=auth).json()["stringOutput"] == "Hello, HPC!"
        # the tour's deploy step: with $H (execute, deploy) a 403 that names the opt-in, with $A (admin) a 201
        cwl = {"Content-Type": "application/cwl+yaml"}
        tool = (REPO / "appkgs/band-ratio/band-ratio.cwl").read_bytes()
        for scope, status in (("hpgc:execute hpgc:deploy", 403), ("hpgc:execute hpgc:deploy hpgc:admin", 201)):
            token = subprocess.run([BIN / "hpgc", "token", "--user", "newcomer", "--scope", scope], cwd=tmp_path,
                                   env=env, capture_output=True, text=True, check=True).stdout.strip()
            resp = httpx.post(f"{url}/processes", headers={**cwl, "Authorization": f"Bearer {token}"}, content=tool,
                              timeout=60)
            assert resp.status_code == status, resp.text
            if status == 403:
                assert "local.allow_user_deploy" in resp.json()["detail"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert "DEVELOPMENT ISSUER" in (tmp_path / "serve.log").read_text()  # loud, as it must be
