"""A 1,000-value sweep against 1,000 separate executes on the real Slurm test cluster, in the same run
(slurm-test-cluster must be up). Both go through `hpgc serve` as its own process, over HTTP, to a `true`
command package with one integer input; every Slurm job is held (--hold), so the cluster's 8 CPUs run
nothing and only submission and polling are measured; all are cancelled at the end.

Measured for each: time from the first POST until every task (job) has its Slurm id, sbatch calls (Slurm
jobs or arrays created, from their ids), the server's CPU seconds over that time, and the SSH round trips
of one SlurmBackend.poll of all the tasks (jobs).

    .venv/bin/python bench/bench_sweep.py [--n 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncssh

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hpgc.backends.slurm.backend import SlurmBackend  # noqa: E402
from hpgc.backends.slurm.config import ClusterSettings  # noqa: E402
from hpgc.models.run import JobRef  # noqa: E402

PACKAGE = {"processDescription": {
    "id": "true-n", "jobControlOptions": ["async-execute"],
    "inputs": {"n": {"schema": {"type": "integer"},
                     "additionalParameters": [{"name": "pattern", "value": "__value__"}]}},
    "outputs": {}, "additionalParameters": [{"name": "entry-point", "value": "true"}]},
    "executionUnit": {"type": "SLURM"}}
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def cluster_settings(c: dict) -> ClusterSettings:
    return ClusterSettings(host=c["host"], port=c["port"], known_hosts=c["known_hosts"], user="alice",
                           key_file=c["users"]["alice"], work_root=c["work_root"], partition=c.get("partition"),
                           account=c.get("account"), sbatch_options=["--hold"])


async def run(c: dict, n: int, sweep: bool) -> dict:
    s = cluster_settings(c)
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        cluster = {k: v for k, v in s.model_dump(mode="json").items() if v is not None}
        lines = ['default_backend = "slurm"', 'log_level = "WARNING"', "[auth]", "enabled = false", "[limits]",
                 f"active_jobs_per_user = {n + 10}", "[clusters.test]"] + [
                     f"{k} = {json.dumps(v)}" for k, v in cluster.items()]
        (Path(tmp) / "hpgc.toml").write_text("\n".join(lines) + "\n")
        server = subprocess.Popen([sys.executable, "-m", "hpgc.cli", "serve", "--config", f"{tmp}/hpgc.toml",
                                   "--port", str(port), "--data-dir", f"{tmp}/data"], cwd=REPO)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                for _ in range(300):
                    try:
                        async with http.get(f"{base}/conformance") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.1)
                async with http.post(f"{base}/processes", json=PACKAGE,
                                     headers={"Content-Type": "application/ogcapppkg+json"}) as r:
                    assert r.status == 201, await r.text()
                db = sqlite3.connect(f"file:{tmp}/data/hpgc.sqlite?mode=ro", uri=True)
                cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
                if sweep:
                    body = {"inputs": {}, "hpgc:sweep": {"inputs": {"n": list(range(n))}}}
                    async with http.post(f"{base}/processes/true-n/execution", json=body,
                                         headers={"Prefer": "respond-async"}) as r:
                        assert r.status == 201, await r.text()
                    answered = time.perf_counter() - t0
                    query = "SELECT COUNT(*) FROM job_tasks WHERE external_id IS NOT NULL"
                else:
                    sem = asyncio.Semaphore(16)

                    async def one(i: int) -> None:
                        async with sem, http.post(f"{base}/processes/true-n/execution", json={"inputs": {"n": i}},
                                                  headers={"Prefer": "respond-async"}) as r:
                            assert r.status == 201, await r.text()

                    await asyncio.gather(*(one(i) for i in range(n)))
                    answered = time.perf_counter() - t0
                    query = "SELECT COUNT(*) FROM jobs WHERE external_id IS NOT NULL"
                while db.execute(query).fetchone()[0] < n:
                    failed = db.execute("SELECT message FROM jobs WHERE status = 'failed' LIMIT 1").fetchone()
                    assert failed is None, failed
                    await asyncio.sleep(0.02)
                elapsed, cpu = time.perf_counter() - t0, cpu_seconds(server.pid) - cpu0
                if sweep:
                    rows = db.execute("SELECT job_id || '/tasks/' || idx, external_id FROM job_tasks").fetchall()
                else:
                    rows = db.execute("SELECT id, external_id FROM jobs").fetchall()
                db.close()
        finally:
            server.terminate()
            server.wait()
    slurm_ids = [ext.split(":", 1)[1] for _, ext in rows]
    backend = SlurmBackend({"test": s})
    try:
        refs = [JobRef(job_id=key, external_id=ext) for key, ext in rows]
        client = backend.pool.client("test")
        before = client.round_trips
        statuses = await backend.poll(refs)
        trips = client.round_trips - before
        assert len(statuses) == n, f"only {len(statuses)} of {n} reported"
    finally:
        await backend.close()
    made = sorted({sid.split("_")[0] for sid in slurm_ids})  # an array's tasks share its id
    return {"answered": answered, "seconds": elapsed, "cpu": cpu, "sbatch": len(made), "trips": trips, "ids": made}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cluster-json", type=Path, default=REPO / "slurm-test-cluster/.state/cluster.json")
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    c = json.loads(args.cluster_json.read_text())
    results = {}
    try:
        results["sweep"] = await run(c, args.n, sweep=True)
        results["jobs"] = await run(c, args.n, sweep=False)
    finally:
        async with asyncssh.connect(c["host"], c["port"], username="alice", client_keys=[c["users"]["alice"]],
                                    known_hosts=c["known_hosts"], agent_path=None, config=None) as conn:
            ids = [i for r in results.values() for i in r["ids"]]
            for i in range(0, len(ids), 500):
                await conn.run("scancel " + " ".join(ids[i:i + 500]))
    sw, jobs = results["sweep"], results["jobs"]
    print(f"Sweep bench: {c['host']} (Slurm {c.get('slurm_version')}), {args.n} values, held jobs")
    print(f"| measure | one sweep of {args.n} | {args.n} separate executes | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| time until all are in Slurm | {sw['seconds']:.2f} s | {jobs['seconds']:.2f} s | "
          f"{jobs['seconds'] / sw['seconds']:.0f}x |")
    print(f"| of which: until the execute(s) answered 201 | {sw['answered']:.2f} s | {jobs['answered']:.2f} s | |")
    print(f"| sbatch calls (Slurm jobs or arrays made) | {sw['sbatch']} | {jobs['sbatch']} | |")
    print(f"| SSH round trips of one poll of all {args.n} | {sw['trips']} | {jobs['trips']} | |")
    print(f"| server CPU until all are in Slurm | {sw['cpu']:.2f} s | {jobs['cpu']:.2f} s | "
          f"{jobs['cpu'] / max(sw['cpu'], 0.01):.0f}x |")


if __name__ == "__main__":
    asyncio.run(main())
