"""The README's tour against a real server process, and what must survive a restart."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx

from tests.e2e.conftest import Server, start_server


def _wait(url: str, job_id: str, timeout: float = 60, headers: dict | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = httpx.get(f"{url}/jobs/{job_id}", headers=headers).json()
        if doc["status"] in ("successful", "failed", "dismissed"):
            return doc
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {doc['status']}")


def _running_sleep(url: str) -> str:
    """A 60 s sleep job, once it runs."""
    job_id = httpx.post(f"{url}/processes/sleep/execution", json={"inputs": {"seconds": 60}},
                        headers={"Prefer": "respond-async"}).json()["jobID"]
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/jobs/{job_id}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return job_id


def _processes_of(job_id: str) -> list[str]:
    return subprocess.run(["pgrep", "-f", job_id], capture_output=True, text=True).stdout.split()


def test_readme_tour(server: Server) -> None:
    url = server.url
    assert httpx.get(url + "/").json()["links"]
    assert "echo" in [p["id"] for p in httpx.get(url + "/processes").json()["processes"]]
    resp = httpx.post(f"{url}/processes/echo/execution", json={"inputs": {"stringInput": "Hello, HPC!"}},
                      headers={"Prefer": "respond-async"})
    assert resp.status_code == 201
    job = _wait(url, resp.json()["jobID"])
    assert job["status"] == "successful", httpx.get(f"{url}/jobs/{job['jobID']}/logs").text
    results = httpx.get(f"{url}/jobs/{job['jobID']}/results").json()
    assert results["stringOutput"] == "Hello, HPC!"
    sync = httpx.post(f"{url}/processes/echo/execution", timeout=60,
                      json={"inputs": {"stringInput": "sync"}, "outputs": {"stringOutput": {}}})
    assert sync.status_code == 200 and sync.text == "sync"


def test_dismiss_kills_a_running_job(server: Server) -> None:
    url = server.url
    job_id = _running_sleep(url)
    deadline = time.monotonic() + 15
    while (progress := httpx.get(f"{url}/jobs/{job_id}").json())["progress"] in (None, 0, 5):
        assert time.monotonic() < deadline, f"no progress reported: {progress}"
        time.sleep(0.2)
    assert 0 < progress["progress"] < 100 and "slept" in progress["message"]
    t0 = time.monotonic()
    resp = httpx.delete(f"{url}/jobs/{job_id}", timeout=30)
    print(f"dismiss took {time.monotonic() - t0:.2f} s")
    assert resp.status_code == 200 and resp.json()["status"] == "dismissed"
    time.sleep(0.5)
    assert _processes_of(job_id) == [], "processes of the dismissed job are still alive"
    deadline = time.monotonic() + 10
    while (server.data_dir / "jobs" / job_id).exists():
        assert time.monotonic() < deadline, "the dismissed job's directory is still there"
        time.sleep(0.2)


def test_restart_marks_interrupted_local_jobs_failed(server: Server) -> None:
    url = server.url
    job_id = _running_sleep(url)
    server.stop(signal.SIGKILL)
    again = start_server(server.data_dir, port=server.port)
    try:
        job = _wait(again.url, job_id, timeout=20)
        assert job["status"] == "failed" and "restart" in job["message"]
        time.sleep(0.5)
        assert _processes_of(job_id) == [], "the interrupted job's processes outlived the restart"
        finished = httpx.get(f"{again.url}/jobs?status=failed").json()["jobs"]
        assert [j["jobID"] for j in finished] == [job_id]
    finally:
        again.stop()
