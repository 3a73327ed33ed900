"""Server memory (RSS of the `hpgc serve` process) with many jobs: 100,000 finished jobs in the store, and
1,000 / 10,000 active Slurm jobs that it polls (real held jobs on the test cluster, which must be up).

For each case a fresh data dir is filled (finished jobs straight into the store; active ones as rows that
point at held Slurm jobs), the server is started with the Slurm backend as default, left to poll for
--settle seconds (poll_max_s 5, so several full cycles), asked for a job list and /metrics, and its
VmRSS and VmHWM (peak) are read from /proc.

    .venv/bin/python bench/bench_memory.py [--active 1000 10000] [--finished 100000] [--settle 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncssh

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_api import free_port, wait_up  # noqa: E402
from hpgc.store import Store  # noqa: E402

CLUSTER = json.loads((REPO / "slurm-test-cluster" / ".state" / "cluster.json").read_text())
CONFIG = """
default_backend = "slurm"
[auth]
enabled = false
[clusters.test]
host = "{host}"
port = {port}
known_hosts = "{known_hosts}"
user = "alice"
key_file = "{key}"
work_root = "{work_root}"
partition = "{partition}"
poll_min_s = 2
poll_max_s = 5
"""


async def held_jobs(n: int) -> list[str]:
    """N held Slurm jobs (never run: 2 cores), submitted by a loop on the login node, 4 loops at once."""
    c = CLUSTER
    async with asyncssh.connect(c["host"], port=c["port"], username="alice", client_keys=[c["users"]["alice"]],
                                known_hosts=c["known_hosts"], agent_path=None, config=None) as conn:
        async def loop(k: int) -> list[str]:
            r = await conn.run(f"for i in $(seq {k}); do sbatch --parsable --hold --job-name=bench-mem "
                               "--wrap true || exit 1; done", check=True, timeout=3600)
            return [line.split(";")[0] for line in str(r.stdout).split()]

        parts = await asyncio.gather(*(loop(n // 4 + (1 if i < n % 4 else 0)) for i in range(4)))
    return [i for p in parts for i in p]


async def cancel_all() -> None:
    c = CLUSTER
    async with asyncssh.connect(c["host"], port=c["port"], username="alice", client_keys=[c["users"]["alice"]],
                                known_hosts=c["known_hosts"], agent_path=None, config=None) as conn:
        await conn.run("scancel --name=bench-mem", timeout=600)


def fill(data: Path, finished: int, active_ids: list[str]) -> None:
    store = Store(data / "hpgc.sqlite")
    now = time.time()
    rows = [{"id": f"{i:08x}-fini-4000-8000-{i:012x}", "process_id": "echo", "owner": "anonymous",
             "status": "successful", "message": "finished", "progress": 100, "backend": "slurm",
             "external_id": f"test:{1000000 + i}", "cluster": "test", "created": now - finished + i,
             "started": now - finished + i, "finished": now - finished + i + 1, "updated": now,
             "request": json.dumps({"inputs": {"stringInput": "x" * 40}})} for i in range(finished)]
    rows += [{"id": f"{uuid.uuid4()}", "process_id": "sleep", "owner": "anonymous", "status": "running",
              "message": "running", "progress": 0, "backend": "slurm", "external_id": f"test:{sid}",
              "cluster": "test", "created": now, "started": now, "updated": now,
              "request": json.dumps({"inputs": {"seconds": 5}})} for sid in active_ids]
    store.bulk_insert_jobs(rows)
    store.close()


def memory(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def measure(finished: int, active_ids: list[str], settle: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        fill(data, finished, active_ids)
        c = CLUSTER
        config = Path(tmp) / "hpgc.toml"
        config.write_text(CONFIG.format(host=c["host"], port=c["port"], known_hosts=c["known_hosts"],
                                        key=c["users"]["alice"], work_root=c["work_root"], partition=c["partition"]))
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "hpgc.cli", "serve", "--config", str(config), "--port",
                                 str(port), "--data-dir", str(data)], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**os.environ, "HPGC_LOG_LEVEL": "WARNING"})
        try:
            url = f"http://127.0.0.1:{port}"
            await wait_up(url + "/conformance")
            await asyncio.sleep(settle)
            async with aiohttp.ClientSession() as s:
                for path in ("/jobs?limit=100", "/jobs?status=running&limit=1000", "/metrics"):
                    async with s.get(url + path) as r:
                        assert r.status == 200, (path, r.status)
                        await r.read()
            return memory(proc.pid)
        finally:
            proc.terminate()
            proc.wait()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--active", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--finished", type=int, default=100_000)
    ap.add_argument("--settle", type=float, default=40.0)
    args = ap.parse_args()
    results = []
    try:
        ids: list[str] = []
        for n in [0, *sorted(args.active)]:
            if n > len(ids):
                t0 = time.perf_counter()
                ids += await held_jobs(n - len(ids))
                print(f"{len(ids)} held Slurm jobs ({time.perf_counter() - t0:.0f} s to submit)", flush=True)
            for finished in sorted({0, args.finished}) if n == 0 else [args.finished]:
                rss, peak = await measure(finished, ids[:n], args.settle)
                results.append((finished, n, rss, peak))
                print(f"finished {finished:>7,}  active {n:>6,}: RSS {rss:6.1f} MB, peak {peak:6.1f} MB", flush=True)
    finally:
        await cancel_all()
    print("\n| jobs in the store (finished) | active Slurm jobs polled | RSS | peak RSS |\n|---|---|---|---|")
    for finished, n, rss, peak in results:
        print(f"| {finished:,} | {n:,} | {rss:.0f} MB | {peak:.0f} MB |")


if __name__ == "__main__":
    asyncio.run(main())
