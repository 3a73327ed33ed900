"""API speed: GET /jobs/{id} with 100 concurrent clients, and a filtered GET /jobs over 100,000 jobs.

Each figure is printed next to a baseline measured in the same run on the same machine:
- status requests: a bare aiohttp app that returns the same JSON body from memory (the ceiling);
- job list: the same SQL query run directly against the database file (no HTTP, no JSON).

    .venv/bin/python bench/bench_api.py [--jobs 100000] [--requests 5000] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hpgc.store import Store  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fill(data_dir: Path, n: int) -> list[str]:
    store = Store(data_dir / "hpgc.sqlite")
    rng = random.Random(1)
    statuses = ["successful"] * 6 + ["failed", "running", "accepted", "dismissed"]
    now = time.time()
    ids = [f"{i:08d}-bench-job" for i in range(n)]
    rows = []
    for i, job_id in enumerate(ids):
        created = now - (n - i) * 10
        rows.append({"id": job_id, "process_id": rng.choice(["echo", "sleep", "BandMath"]),
                     "owner": rng.choice(["anonymous", "alice", "bob"]), "status": rng.choice(statuses),
                     "message": "done", "progress": 100, "backend": "bench", "external_id": f"x:{i}",
                     "created": created, "started": created + 1, "finished": created + 1 + rng.random() * 600,
                     "updated": created + 600, "request": "{}"})
    store.bulk_insert_jobs(rows)
    store.close()
    return ids


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            try:
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def hammer(urls: list[str], concurrency: int) -> tuple[float, float, float]:
    """→ (requests/s, p50 ms, p99 ms)."""
    latencies: list[float] = []
    queue = list(urls)
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def worker() -> None:
            while queue:
                url = queue.pop()
                t0 = time.perf_counter()
                async with s.get(url) as r:
                    await r.read()
                    assert r.status == 200, r.status
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return len(latencies) / elapsed, statistics.median(latencies) * 1000, latencies[int(len(latencies) * 0.99)] * 1000


BASELINE_APP = textwrap.dedent("""
    import sys
    from aiohttp import web
    body = open(sys.argv[2]).read()
    async def h(request):
        return web.Response(text=body, content_type="application/json")
    app = web.Application()
    app.router.add_get("/jobs/{id}", h)
    app.router.add_get("/", h)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
""")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        t0 = time.perf_counter()
        ids = fill(data, args.jobs)
        print(f"filled {args.jobs} jobs in {time.perf_counter() - t0:.1f} s")
        port, base_port = free_port(), free_port()
        env = {**os.environ, "HPGC_AUTH__ENABLED": "false", "HPGC_LOG_LEVEL": "WARNING"}
        server = subprocess.Popen([sys.executable, "-m", "hpgc.cli", "serve", "--port", str(port), "--data-dir",
                                   str(data)], env=env, cwd=REPO, stdout=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            await wait_up(url + "/conformance")
            async with aiohttp.ClientSession() as s, s.get(f"{url}/jobs/{ids[0]}") as r:
                sample = await r.text()
            body_file = Path(tmp) / "body.json"
            body_file.write_text(sample)
            baseline = subprocess.Popen([sys.executable, "-c", BASELINE_APP, str(base_port), str(body_file)])
            try:
                await wait_up(f"http://127.0.0.1:{base_port}/")
                picks = [random.choice(ids) for _ in range(args.requests)]
                b_rps, b_p50, b_p99 = await hammer([f"http://127.0.0.1:{base_port}/jobs/{i}" for i in picks],
                                                   args.concurrency)
                h_rps, h_p50, h_p99 = await hammer([f"{url}/jobs/{i}" for i in picks], args.concurrency)
            finally:
                baseline.terminate()
            query = "/jobs?status=successful&processID=echo&minDuration=60&limit=100"
            times = []
            async with aiohttp.ClientSession() as s:
                for _ in range(30):
                    t0 = time.perf_counter()
                    async with s.get(url + query) as r:
                        doc = json.loads(await r.text())
                    times.append((time.perf_counter() - t0) * 1000)
                    nxt = next((lk["href"] for lk in doc["links"] if lk["rel"] == "next"), None)
                assert len(doc["jobs"]) == 100 and nxt
            db = sqlite3.connect(data / "hpgc.sqlite")
            raw = []
            for _ in range(30):
                t0 = time.perf_counter()
                db.execute("SELECT * FROM jobs WHERE process_id IN ('echo') AND status IN ('successful') AND "
                           "(COALESCE(finished, ?) - COALESCE(started, created)) >= 60 ORDER BY created DESC, "
                           "id DESC LIMIT 101", [time.time()]).fetchall()
                raw.append((time.perf_counter() - t0) * 1000)
        finally:
            server.terminate()
            server.wait()
    med, p99 = statistics.median(times), sorted(times)[-1]
    print()
    print(f"GET /jobs/{{id}}, {args.concurrency} concurrent clients, {args.requests} requests")
    print(f"  hpgc      {h_rps:8.0f} req/s  p50 {h_p50:6.1f} ms  p99 {h_p99:6.1f} ms")
    print(f"  baseline  {b_rps:8.0f} req/s  p50 {b_p50:6.1f} ms  p99 {b_p99:6.1f} ms  (bare aiohttp, same body)")
    print(f"  ratio     {h_rps / b_rps:8.2f} x of the baseline's throughput")
    print(f"GET {query} over {args.jobs} jobs (30 requests)")
    print(f"  hpgc      median {med:6.1f} ms  max {p99:6.1f} ms  (goal <= 50 ms)")
    print(f"  raw SQL   median {statistics.median(raw):6.1f} ms  (same query, no HTTP)")
    print(f"  ratio     {med / statistics.median(raw):8.1f} x the raw query")


if __name__ == "__main__":
    asyncio.run(main())
