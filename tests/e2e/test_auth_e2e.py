"""Authentication on a real server process: the embedded development issuer, `hpgc token`, and tokens
that outlive a restart (the key is in the data dir)."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from tests.e2e.conftest import REPO, start_server


def hpgc_token(data_dir: str, user: str, scope: str = "hpgc:execute") -> str:
    out = subprocess.run([sys.executable, "-m", "hpgc.cli", "token", "--user", user, "--scope", scope,
                          "--data-dir", data_dir], capture_output=True, text=True, cwd=REPO, timeout=60, check=True)
    assert out.stderr == "", out.stderr
    return out.stdout.strip()


def test_token_from_the_cli_opens_the_server(tmp_path) -> None:
    data = tmp_path / "data"
    server = start_server(data, env={"HPGC_AUTH__ENABLED": "true"})
    try:
        url = server.url
        assert httpx.get(url + "/").status_code == 200
        anonymous = httpx.get(url + "/jobs")
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith('Bearer realm="hpgc", error="invalid_token"')
        alice = {"Authorization": f"Bearer {hpgc_token(str(data), 'alice')}"}
        t0 = time.perf_counter()
        resp = httpx.get(url + "/jobs", headers=alice)
        print(f"first authenticated request: {(time.perf_counter() - t0) * 1000:.1f} ms")
        assert resp.status_code == 200 and resp.json()["jobs"] == []
        job = httpx.post(f"{url}/processes/echo/execution", json={"inputs": {"stringInput": "mine"}},
                         headers={**alice, "Prefer": "respond-async"}).json()["jobID"]
        bob = {"Authorization": f"Bearer {hpgc_token(str(data), 'bob')}"}
        assert httpx.get(f"{url}/jobs/{job}", headers=bob).status_code == 404
        assert httpx.get(f"{url}/jobs/{job}", headers=alice).status_code == 200
        log = (data.parent / f"server-{server.port}.log").read_text()
        assert "DEVELOPMENT ISSUER ON" in log, "the dev issuer must be loud in the log"
        server.stop()
        server = start_server(data, port=server.port, env={"HPGC_AUTH__ENABLED": "true"})
        assert httpx.get(f"{url}/jobs/{job}", headers=alice).status_code == 200, "tokens survive a restart"
    finally:
        if server.proc.poll() is None:
            server.stop()
