"""Operations against the real cluster: /metrics moves as jobs run on Slurm, and /health/ready turns unready
when the login node's sshd stops and ready again when it is back (slurm-test-cluster/ctl)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time

import pytest
from aiohttp.test_utils import TestClient

from hpgc.api.keys import JOBS
from tests.api.test_operations import sample
from tests.integration.conftest import ssh_run_async
from tests.integration.test_api_slurm import succeeded

pytestmark = pytest.mark.slurm


async def scrape(api: TestClient) -> str:
    resp = await api.get("/metrics")
    assert resp.status == 200
    return await resp.text()


async def test_metrics_move_as_jobs_run_on_the_cluster(api: TestClient) -> None:
    before = await scrape(api)
    jobs = await asyncio.gather(*(succeeded(api, "echo", {"inputs": {"stringInput": f"m{i}"}}) for i in range(3)))
    assert len(set(jobs)) == 3
    after = await scrape(api)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("hpgc_jobs", status="successful", process="echo", backend="slurm", cluster="") == 3
    assert moved("hpgc_submissions_total", backend="slurm", result="ok") == 3
    assert moved("hpgc_job_status_changes_total", backend="slurm", status="successful") == 3
    assert moved("hpgc_submit_seconds_count", backend="slurm") == 3
    assert moved("hpgc_poll_cycle_seconds_count", backend="slurm") >= 1
    assert moved("hpgc_ssh_round_trips_total", cluster="test") >= 4  # 3 submissions (maybe batched) and polls
    assert sample(after, "hpgc_ssh_connections_up", cluster="test") >= 1
    assert moved("hpgc_http_requests_total", route="/processes/{process_id}/execution", method="POST",
                 status="201") == 3
    assert re.search(r'^hpgc_jobs\{.*status="running"', after, re.M) is None  # nothing left running


def ctl(cluster: dict, *args: str) -> None:
    subprocess.run([cluster["ctl"], *args], check=True, capture_output=True, timeout=120)


async def test_ready_turns_unready_when_sshd_stops_and_ready_when_it_is_back(api: TestClient, cluster: dict) -> None:
    ready = await api.get("/health/ready")
    assert ready.status == 200, await ready.text()
    assert (await ready.json())["checks"]["cluster:test"] == "ok"
    try:
        ctl(cluster, "stop", "sshd")
        started = time.monotonic()
        down = await api.get("/health/ready")
        took = time.monotonic() - started
        body = await down.json()
        assert down.status == 503 and body["checks"]["cluster:test"] == "failed", body
        assert body["checks"]["database"] == "ok"
        assert took <= 5 + 1, f"/health/ready took {took:.1f} s, past health.timeout_s"  # the default, 5 s
        assert cluster["host"] not in await down.text()
        print(f"unready after {took:.2f} s")
    finally:
        ctl(cluster, "start", "sshd")
    deadline = time.monotonic() + 60
    while True:
        back = await api.get("/health/ready")
        if back.status == 200:
            break
        assert time.monotonic() < deadline, await back.text()
        await asyncio.sleep(0.5)
    print(f"ready again {time.monotonic() - started:.2f} s after the stop")
    assert (await back.json())["checks"]["cluster:test"] == "ok"


async def test_retention_deletes_exactly_the_expired_jobs_on_the_cluster(api: TestClient, cluster: dict) -> None:
    old, recent = await asyncio.gather(*(succeeded(api, "echo", {"inputs": {"stringInput": s}}) for s in ("o", "r")))
    resp = await api.post("/processes/sleep/execution", json={"inputs": {"seconds": 60}},
                          headers={"Prefer": "respond-async"})
    running = (await resp.json())["jobID"]
    service = api.app[JOBS]
    store = service.store
    deadline = time.monotonic() + 60
    while not (store.get_job(running) or {}).get("external_id"):  # its directory exists once it is in Slurm
        assert time.monotonic() < deadline
        await asyncio.sleep(0.5)
    store.db.execute("UPDATE jobs SET finished = ? WHERE id = ?", [time.time() - 10 * 86400, old])
    root = f"{cluster['work_root']}/alice"

    async def exists(job_id: str) -> bool:
        return (await ssh_run_async(cluster, f"test -d {root}/{job_id}")).exit_status == 0

    assert [await exists(j) for j in (old, recent, running)] == [True, True, True]
    assert await service.sweep(7, batch=10) == 1
    assert [await exists(j) for j in (old, recent, running)] == [False, True, True]
    assert store.get_job(old)["status"] == "dismissed"
    assert store.get_job(recent)["status"] == "successful"
    assert store.get_job(running)["status"] in ("accepted", "running")
    assert await service.sweep(7, batch=10) == 0
    assert (await api.delete(f"/jobs/{running}")).status == 200
