"""Slurm completion → success callback delivered, on the real test cluster (slurm-test-cluster must be up),
with completion notices followed (clusters.X.follow_completions, the default) and without (polling only),
in the same run, at the shipped poll intervals (poll_min_s 2, poll_max_s 30).

Two servers (the whole app, in this process) run a command package `sleep N` (deployed here: the built-in
`sleep` reports progress every second, and each change keeps the monitor polling at poll_min_s, which would
hide the poll interval this measures) with a successUri subscriber; a
receiver on 127.0.0.1 notes when each callback arrives. A job's completion is the modification time of its
outputs.json (cwltool writes it as its last act) in the cluster's shared folder as the host sees it; the
nodes are namespaces of this machine, so both times are read from one clock.

    .venv/bin/python bench/bench_completion.py [--short 4] [--long 3] [--long-s 120]
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

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hpgc.api.app import create_app  # noqa: E402
from hpgc.auth.settings import AuthSettings  # noqa: E402
from hpgc.backends.slurm.config import ClusterSettings  # noqa: E402
from hpgc.config import Settings  # noqa: E402
from hpgc.jobs.callbacks.settings import CallbackSettings  # noqa: E402
from hpgc.net import OutboundSettings  # noqa: E402

CLUSTER = json.loads((REPO / "slurm-test-cluster" / ".state" / "cluster.json").read_text())


def app_settings(data: Path, follow: bool) -> Settings:
    c = CLUSTER
    cluster = ClusterSettings(host=c["host"], port=c["port"], known_hosts=c["known_hosts"], user="alice",
                              key_file=c["users"]["alice"], work_root=c["work_root"], partition=c.get("partition"),
                              account=c.get("account"), follow_completions=follow)
    return Settings(data_dir=data, auth=AuthSettings(enabled=False), default_backend="slurm",
                    clusters={"test": cluster}, callbacks=CallbackSettings(secret="bench-secret"),
                    outbound=OutboundSettings(allowed_networks=["127.0.0.0/8"]))


def completed_at(job_id: str) -> float:
    """When the job's command ended: the script writes outputs.json right after it."""
    rel = Path(CLUSTER["work_root"]).relative_to(CLUSTER["shared_dir"])
    return (Path(CLUSTER["shared_dir_on_host"]) / rel / "alice" / job_id / "outputs.json").stat().st_mtime


def sleep_package(seconds: int) -> dict:
    return {"processDescription": {"id": f"sleep{seconds}", "version": "1.0.0", "inputs": {}, "outputs": {},
                                   "additionalParameters": [{"name": "entry-point", "value": f"sleep {seconds}"}]},
            "executionUnit": {"type": "SLURM"}}


async def run_jobs(clients: dict[str, TestClient], receiver: str, arrived: dict[str, float], n: int,
                   seconds: int) -> dict[str, list[float]]:
    """N jobs of SECONDS on each server at once → per server, the latencies completion → callback (s)."""
    jobs: dict[str, list[tuple[str, str]]] = {name: [] for name in clients}
    for name, client in clients.items():
        for _ in range(n):
            tag = uuid.uuid4().hex
            body = {"inputs": {}, "subscriber": {"successUri": f"{receiver}/cb/{tag}"}}
            resp = await client.post(f"/processes/sleep{seconds}/execution", json=body,
                                     headers={"Prefer": "respond-async"})
            assert resp.status == 201, await resp.text()
            jobs[name].append((tag, (await resp.json())["jobID"]))
    deadline = time.time() + seconds + 240
    while any(tag not in arrived for js in jobs.values() for tag, _ in js):
        assert time.time() < deadline, "callbacks missing"
        await asyncio.sleep(0.2)
    return {name: [arrived[tag] - completed_at(job_id) for tag, job_id in js] for name, js in jobs.items()}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", type=int, default=4, help="1 s jobs per server")
    ap.add_argument("--long", type=int, default=3, help="long jobs per server")
    ap.add_argument("--long-s", type=int, default=120)
    args = ap.parse_args()
    arrived: dict[str, float] = {}

    async def receive(request: web.Request) -> web.Response:
        arrived[request.match_info["tag"]] = time.time()
        return web.Response(status=204)

    recv_app = web.Application()
    recv_app.router.add_post("/cb/{tag}", receive)
    recv = TestServer(recv_app, host="127.0.0.1")
    await recv.start_server()
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        clients = {}
        for name, follow in (("followed", True), ("polled", False)):
            clients[name] = TestClient(TestServer(create_app(app_settings(Path(tmp) / name, follow))))
            await clients[name].start_server()
            for seconds in (1, args.long_s):
                resp = await clients[name].post("/processes", json=sleep_package(seconds),
                                                headers={"Content-Type": "application/ogcapppkg+json"})
                assert resp.status == 201, await resp.text()
        try:
            receiver = f"http://127.0.0.1:{recv.port}"
            rows = []
            for seconds, n in ((1, args.short), (args.long_s, args.long)):
                lat = await run_jobs(clients, receiver, arrived, n, seconds)
                rows.append((seconds, n, lat))
                print(f"{seconds} s jobs: " + "; ".join(f"{k} {', '.join(f'{v:.2f}' for v in vs)} s"
                                                       for k, vs in lat.items()), flush=True)
        finally:
            for c in clients.values():
                await c.close()
            await recv.close()
    print("\n| job length | jobs | followed (default): median, max | polled only: median, max |\n|---|---|---|---|")
    for seconds, n, lat in rows:
        f, p = lat["followed"], lat["polled"]
        print(f"| {seconds} s | {n} + {n} | {statistics.median(f):.2f} s, {max(f):.2f} s | "
              f"{statistics.median(p):.2f} s, {max(p):.2f} s |")


if __name__ == "__main__":
    asyncio.run(main())
