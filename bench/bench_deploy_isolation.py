"""Deploy isolation: GET /jobs/{id} latency with 100 concurrent clients, without deploys and while 10
concurrent hostile deploys (alias bomb, 10,000-deep YAML, a document that keeps cwltool busy) run, and the
latency of an ordinary CWL deploy.

    .venv/bin/python bench/bench_deploy_isolation.py [--requests 20000] [--concurrency 100] [--repo PATH]

--repo runs the server of another checkout (e.g. a worktree of an older commit) for a before/after; its
deploy settings are left alone when --deploy-timeout is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_api import free_port, hammer, wait_up  # noqa: E402

sys.path.insert(0, str(REPO))
from tests.hostile_documents import ECHO_TOOL as TOOL  # noqa: E402
from tests.hostile_documents import alias_bomb_tool  # noqa: E402


def busy() -> str:
    levels = "    d0: &d0 [" + ",".join(['"lolololol"'] * 30) + "]\n"
    for i in range(3):
        levels += f"    d{i + 1}: &d{i + 1} [" + ",".join([f"*d{i}"] * 30) + "]\n"
    return TOOL.format(id="busy") + "hints:\n  - class: 'x:Big'\n" + levels + "$namespaces: {x: 'http://x.org/'}\n"


HOSTILE = [alias_bomb_tool(), TOOL.format(id="deep") + "doc: " + "[" * 10_000 + "]" * 10_000 + "\n", busy()]
CWL = {"Content-Type": "application/cwl+yaml"}


async def hostile_deploys(url: str, n: int, stop: asyncio.Event, answers: list[int]) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as s:
        async def one(i: int) -> None:
            while not stop.is_set():
                async with s.post(f"{url}/processes", data=HOSTILE[i % len(HOSTILE)], headers=CWL) as r:
                    await r.read()
                    answers.append(r.status)

        await asyncio.gather(*(one(i) for i in range(n)))


async def ordinary_deploys(url: str, n: int) -> list[float]:
    times = []
    async with aiohttp.ClientSession() as s:
        for i in range(n):
            t0 = time.perf_counter()
            async with s.post(f"{url}/processes", data=TOOL.format(id=f"ok{i}"), headers=CWL) as r:
                assert r.status == 201, await r.text()
            times.append((time.perf_counter() - t0) * 1000)
            async with s.delete(f"{url}/processes/ok{i}") as r:
                assert r.status == 204
    return times


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--hostile", type=int, default=10)
    ap.add_argument("--deploy-timeout", type=float, default=10.0)
    ap.add_argument("--repo", type=Path, default=REPO)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "HPGC_AUTH__ENABLED": "false", "HPGC_LOG_LEVEL": "WARNING"}
        if args.deploy_timeout:
            env["HPGC_DEPLOY__TIMEOUT_S"] = str(args.deploy_timeout)
        server = subprocess.Popen([sys.executable, "-m", "hpgc.cli", "serve", "--port", str(port), "--data-dir",
                                   str(Path(tmp) / "data")], env=env, cwd=args.repo, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_up(url + "/conformance")
            async with aiohttp.ClientSession() as s, s.post(
                    f"{url}/processes/echo/execution", json={"inputs": {"stringInput": "x"}},
                    headers={"Prefer": "respond-async"}) as r:
                job = (await r.json())["jobID"]
            await asyncio.sleep(5)  # the deploy workers' start (cwltool's import) is not what is measured
            deploy_ms = await ordinary_deploys(url, 10)
            urls = [f"{url}/jobs/{job}"] * args.requests
            _, q_p50, q_p99 = await hammer(urls, args.concurrency)
            stop, answers = asyncio.Event(), []
            attack = asyncio.create_task(hostile_deploys(url, args.hostile, stop, answers))
            await asyncio.sleep(1)  # all of them in flight
            t0 = time.perf_counter()
            _, h_p50, h_p99 = await hammer(urls, args.concurrency)
            elapsed = time.perf_counter() - t0
            stop.set()
            await attack
        finally:
            server.terminate()
            server.wait()
    print(f"GET /jobs/{{id}}, {args.concurrency} concurrent clients, {args.requests} requests")
    print(f"  no deploys                  p50 {q_p50:7.1f} ms  p99 {q_p99:7.1f} ms")
    print(f"  {args.hostile} hostile deploys in flight  p50 {h_p50:7.1f} ms  p99 {h_p99:7.1f} ms  ({elapsed:.1f} s)")
    print(f"  ratio                       p50 {h_p50 / q_p50:7.2f} x    p99 {h_p99 / q_p99:7.2f} x")
    print(f"hostile deploy answers: {sorted(set(answers))} ({len(answers)} deploys)")
    print(f"ordinary CWL deploy (10, sequential): p50 {statistics.median(deploy_ms):.0f} ms, "
          f"max {max(deploy_ms):.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
