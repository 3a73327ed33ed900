"""Slurm backend throughput against the test cluster (slurm-test-cluster must be up).

1. Submission: jobs/s through the whole API (async execute of `echo` over HTTP, until every job has its
   Slurm id) and through SlurmBackend.submit (job dir, files, script, sbatch; concurrent up to the
   channel limit) vs raw `sbatch --wrap` over one asyncssh connection with the same concurrency, in the
   same run. Every job is submitted held (--hold) so 2 cores are not swamped; all are cancelled at the end.
   Concurrent submits share SSH commands (hpgc/backends/slurm/batcher.py), so the backend can beat raw.
2. Polling: one SlurmBackend.poll cycle over 1,000 real (held) Slurm jobs: wall time and SSH round trips.

    .venv/bin/python bench/bench_slurm.py [--jobs 200] [--poll-jobs 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncssh

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hpgc.backends.slurm.backend import SlurmBackend  # noqa: E402
from hpgc.backends.slurm.config import ClusterSettings  # noqa: E402
from hpgc.models.run import JobRef, RunSpec  # noqa: E402


def settings(c: dict, channels: int) -> ClusterSettings:
    return ClusterSettings(host=c["host"], port=c["port"], known_hosts=c["known_hosts"], user="alice",
                           key_file=c["users"]["alice"], work_root=c["work_root"], partition=c.get("partition"),
                           sbatch_options=["--hold"], max_channels=channels)


async def raw_submit(conn: asyncssh.SSHClientConnection, n: int, concurrency: int, tag: str,
                     ids: list[str]) -> float:
    """Jobs/s; every id goes into `ids` as soon as it exists, so a failed run still cleans up."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            r = await conn.run(f"sbatch --parsable --hold --job-name=bench-raw-{tag}-{i} --wrap true", check=True)
            ids.append(str(r.stdout).strip().split(";")[0])

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - t0)


async def backend_submit(backend: SlurmBackend, n: int, tag: str, ids: list[str]) -> float:
    async def one(i: int) -> None:
        spec = RunSpec(job_id=f"bench-{tag}-{i}", process_id="bench", kind="command", argv=["true"])
        ids.append((await backend.submit(spec)).split(":")[1])

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - t0)


TRUE_PACKAGE = {"processDescription": {"id": "true", "jobControlOptions": ["async-execute"], "inputs": {},
                                       "outputs": {},
                                       "additionalParameters": [{"name": "entry-point", "value": "true"}]},
                "executionUnit": {"type": "SLURM"}}


async def api_submit(c: dict, s: ClusterSettings, n: int, concurrency: int, ids: list[str],
                     process: str) -> float:
    """Jobs/s through HTTP: POST /processes/{process}/execution (respond-async) to `hpgc serve` running as
    its own process, until all n jobs are in Slurm (read from its database).
    `true` is a command package deployed for the purpose (the same work as `sbatch --wrap true`);
    `echo` is the built-in CWL tool (its packed document and input file travel with each job)."""
    import socket
    import sqlite3
    import subprocess
    import tempfile

    import aiohttp

    with tempfile.TemporaryDirectory() as tmp, socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        config = Path(tmp) / "hpgc.toml"
        cluster = {k: v for k, v in s.model_dump(mode="json").items() if v is not None}
        lines = ['default_backend = "slurm"', 'log_level = "WARNING"', "[auth]", "enabled = false",
                 "[limits]", f"active_jobs_per_user = {n + 10}",
                 "[clusters.test]"] + [f"{k} = {json.dumps(v)}" for k, v in cluster.items()]
        config.write_text("\n".join(lines) + "\n")
        server = subprocess.Popen([sys.executable, "-m", "hpgc.cli", "serve", "--config", str(config), "--port",
                                   str(port), "--data-dir", f"{tmp}/data"], cwd=REPO)
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
                async with http.post(f"{base}/processes", json=TRUE_PACKAGE,
                                     headers={"Content-Type": "application/ogcapppkg+json"}) as r:
                    assert r.status == 201, await r.text()
                sem = asyncio.Semaphore(concurrency)
                body = {"inputs": {"stringInput": "bench"} if process == "echo" else {}}

                async def one() -> None:
                    async with sem, http.post(f"{base}/processes/{process}/execution",
                                              json=body, headers={"Prefer": "respond-async"}) as r:
                        assert r.status == 201, await r.text()

                db = sqlite3.connect(f"file:{tmp}/data/hpgc.sqlite?mode=ro", uri=True)
                t0 = time.perf_counter()
                await asyncio.gather(*(one() for _ in range(n)))
                while True:
                    done = db.execute("SELECT COUNT(*) FROM jobs WHERE external_id IS NOT NULL").fetchone()[0]
                    failed = db.execute("SELECT message FROM jobs WHERE status = 'failed' LIMIT 1").fetchone()
                    assert failed is None, failed
                    if done == n:
                        break
                    await asyncio.sleep(0.02)
                rate = n / (time.perf_counter() - t0)
                ids += [r[0].split(":")[1] for r in db.execute("SELECT external_id FROM jobs")]
                db.close()
        finally:
            server.terminate()
            server.wait()
    return rate


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cluster-json", type=Path, default=REPO / "slurm-test-cluster/.state/cluster.json")
    ap.add_argument("--jobs", type=int, default=200, help="jobs per submission round")
    ap.add_argument("--poll-jobs", type=int, default=1000)
    ap.add_argument("--channels", type=int, default=8)
    args = ap.parse_args()
    c = json.loads(args.cluster_json.read_text())
    tag = uuid.uuid4().hex[:6]
    s = settings(c, args.channels)
    concurrency = args.channels - 1  # the backend keeps one channel for SFTP: same number of sbatch at once
    backend = SlurmBackend({"test": s})
    all_ids: list[str] = []
    async with asyncssh.connect(c["host"], c["port"], username="alice", client_keys=[c["users"]["alice"]],
                                known_hosts=c["known_hosts"], agent_path=None, config=None) as conn:
        try:
            raw_rates, be_rates, api_rates, cwl_rates = [], [], [], []
            for rnd in range(2):  # interleaved, so drift in the cluster hits all alike
                raw_rates.append(await raw_submit(conn, args.jobs, concurrency, f"{tag}-{rnd}", all_ids))
                be_rates.append(await backend_submit(backend, args.jobs, f"{tag}-{rnd}", all_ids))
                api_rates.append(await api_submit(c, s, args.jobs, 16, all_ids, "true"))
                cwl_rates.append(await api_submit(c, s, args.jobs, 16, all_ids, "echo"))
            raw, be = statistics.mean(raw_rates), statistics.mean(be_rates)
            api, cwl_api = statistics.mean(api_rates), statistics.mean(cwl_rates)
            batches = sum(b.batches for b in backend._batchers.values())

            # top up to poll-jobs held jobs with raw sbatch, then poll them all through the backend
            extra = max(0, args.poll_jobs - len(all_ids))
            if extra:
                await raw_submit(conn, extra, concurrency, f"{tag}-fill", all_ids)
            polled = all_ids[:args.poll_jobs]
            refs = [JobRef(job_id=f"poll-{i}", external_id=f"test:{sid}") for i, sid in enumerate(polled)]
            client = backend.pool.client("test")
            times, trips = [], []
            for _ in range(5):
                rt0, t0 = client.round_trips, time.perf_counter()
                statuses = await backend.poll(refs)
                times.append(time.perf_counter() - t0)
                trips.append(client.round_trips - rt0)
            assert len(statuses) == len(refs), f"only {len(statuses)} of {len(refs)} jobs reported"
            t0 = time.perf_counter()
            await conn.run(f"sacct --parsable2 --noheader -j {','.join(polled)} --format=JobID,State >/dev/null",
                           check=True)
            bare = time.perf_counter() - t0
        finally:
            for i in range(0, len(all_ids), 500):
                await conn.run("scancel " + " ".join(all_ids[i:i + 500]))
            await backend.close()
    print(f"Slurm backend bench: {c['host']} (Slurm {c.get('slurm_version')}), {args.jobs} jobs x 2 rounds, "
          f"{concurrency} concurrent channels")
    print("| measure | value |")
    print("|---|---|")
    print(f"| raw `sbatch --wrap` over one SSH connection | {raw:.1f} jobs/s |")
    print(f"| SlurmBackend.submit (dir + files + script + sbatch) | {be:.1f} jobs/s |")
    print(f"| ratio backend / raw | {be / raw:.2f} (goal >= 0.9) |")
    print(f"| through the API (`hpgc serve` as its own process): async execute over HTTP, 16 clients, of a "
          f"`true` command package, until all are in Slurm | {api:.1f} jobs/s |")
    print(f"| ratio API / raw | {api / raw:.2f} (goal >= 0.9) |")
    print(f"| the same with the CWL `echo` (packed tool + inputs staged per job) | {cwl_api:.1f} jobs/s |")
    print(f"| SSH commands for the {2 * args.jobs} backend submissions (coalesced) | {batches} |")
    print(f"| poll cycle, {len(refs)} active jobs (median of 5) | {statistics.median(times) * 1000:.0f} ms |")
    print(f"| SSH round trips per poll cycle | {max(trips)} |")
    print(f"| bare `sacct -j` of the same {len(refs)} ids, one round trip | {bare * 1000:.0f} ms |")


if __name__ == "__main__":
    asyncio.run(main())
