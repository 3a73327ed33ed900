"""The server's log over a whole flow with authentication on, in JSON lines at DEBUG: every line is one JSON
object, the request id comes back in X-Request-Id and names the job's records, and no token ever appears
(not the bearer token, not its signature, not a refused one)."""

from __future__ import annotations

import json
import time

import httpx

from tests.e2e.conftest import start_server
from tests.e2e.test_auth_e2e import hpgc_token


def test_json_log_of_an_authenticated_run_has_ids_and_no_token(tmp_path) -> None:
    data = tmp_path / "data"
    server = start_server(data, env={"HPGC_AUTH__ENABLED": "true", "HPGC_LOG_FORMAT": "json",
                                     "HPGC_LOG_LEVEL": "DEBUG"})
    token = hpgc_token(str(data), "alice", "hpgc:execute hpgc:admin")
    forged = token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8)
    alice = {"Authorization": f"Bearer {token}"}
    try:
        url = server.url
        resp = httpx.post(f"{url}/processes/echo/execution", json={"inputs": {"stringInput": "logged"}},
                          headers={**alice, "Prefer": "respond-async", "X-Request-Id": "e2e-req-1"})
        assert resp.status_code == 201 and resp.headers["X-Request-Id"] == "e2e-req-1"
        job_id = resp.json()["jobID"]
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/jobs/{job_id}", headers=alice).json()["status"] not in ("successful", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert httpx.get(f"{url}/jobs/{job_id}/results", headers=alice).status_code == 200
        assert httpx.get(f"{url}/jobs", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
        assert httpx.get(f"{url}/jobs?access_token={token}").status_code == 401
        assert httpx.get(f"{url}/metrics", headers=alice).status_code == 200
        assert httpx.delete(f"{url}/jobs/{job_id}", headers=alice).status_code == 200
    finally:
        server.stop()
    text = (data.parent / f"server-{server.port}.log").read_text()
    secrets = [token, token.split(".")[2], forged.split(".")[2]]
    assert not [s for s in secrets if s in text], "a token is in the server's log"
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    other = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]
    assert other == [f"hpgc serving on {url}/ (data in {data})"], other[:5]  # print() of cmd_serve, not a log record
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    mine = [r for r in records if r.get("job_id") == job_id]
    assert mine, "no record names the job"
    assert any(r.get("request_id") == "e2e-req-1" and r.get("user") for r in mine), mine
