"""A job list that makes the store scan must not hold the server: short pages are read on the event loop
(hpgc/store/jobs.py's read_jobs_page), so a query that would take long there is interrupted after a small
budget of SQLite's work and read in the store's thread instead. An attacker with an ordinary token asks for
lists that scan every one of their jobs, many at once, while others use the server."""

from __future__ import annotations

import concurrent.futures
import time

import httpx

from hpgc.store import Store
from tests.security.conftest import Attacked

JOBS = 150_000
SCAN = "/jobs?minDuration=1000000000&limit=100"  # no job ran that long: the whole of the user's jobs is walked
SCANS = 20


def _fill(target: Attacked) -> None:
    """JOBS finished jobs of alice, written into the running server's store (WAL: a second writer is fine)."""
    store = Store(target.server.data_dir / "hpgc.sqlite")
    now = time.time()
    store.bulk_insert_jobs({"id": f"{i:08x}-0000-4000-8000-{i:012x}", "process_id": "echo", "owner": "dev:alice",
                            "status": "successful", "progress": 100, "backend": "local", "created": now - JOBS + i,
                            "started": now - JOBS + i, "finished": now - JOBS + i + 1.0, "updated": now,
                            "request": "{}"} for i in range(JOBS))
    store.close()


def test_lists_that_scan_every_job_do_not_hold_the_event_loop(target: Attacked) -> None:
    _fill(target)
    assert target.alice.get("/jobs?limit=1").json()["jobs"], "the filled jobs are alice's"
    alone = []
    for _ in range(3):
        started = time.monotonic()
        assert target.alice.get(SCAN).json()["jobs"] == []
        alone.append(time.monotonic() - started)
    scan_s = sorted(alone)[1]
    pings: list[float] = []

    def ping_while(futures: list[concurrent.futures.Future]) -> None:
        with httpx.Client(base_url=target.url, timeout=60) as anyone:
            while not all(f.done() for f in futures):
                t0 = time.monotonic()
                assert anyone.get("/conformance").status_code == 200
                pings.append(time.monotonic() - t0)

    with concurrent.futures.ThreadPoolExecutor(SCANS) as pool:
        scans = [pool.submit(target.alice.get, SCAN) for _ in range(SCANS)]
        ping_while(scans)
        answers = [f.result() for f in scans]
    assert all(a.status_code == 200 and a.json()["jobs"] == [] for a in answers)
    # had the scans run on the loop, a ping would have waited for many of them (measured: ≈ 10 scans' time)
    assert pings and max(pings) < 5 * scan_s, f"a ping took {max(pings):.3f} s, one scan {scan_s:.3f} s"
    assert scan_s > 0.05, f"one scan took {scan_s:.3f} s: too quick to show anything; fill more jobs"
