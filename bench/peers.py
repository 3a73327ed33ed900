"""hpgc side by side with pygeoapi, in one run on one machine, through the same load generator.

pygeoapi (PEERS_VERSION) is installed into its own venv (--venv, outside the repository), runs its built-in
`hello-world` under uvicorn with one worker and its TinyDB job manager; hpgc runs as shipped (auth on, the
development issuer, the local backend) its built-in `echo`. Then, for each server:
- sync execute latency: sequential synchronous executes, p50;
- end to end: N async executes at once, until the last one is finished (jobs/s) — these fill the job store;
- `GET /jobs/{id}` and `GET /jobs?limit=10&status=successful` with wrk at C connections, interleaved
  between the servers and repeated (median of the runs), with wrk's own CPU time shown.

    .venv/bin/python bench/peers.py [--jobs 300] [--connections 100] [--duration 10] [--repeat 3]

Only hpgc's active-job limit is lifted (limits.active_jobs_per_user=0) so that N jobs can be in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.bench_api import free_port, wait_up  # noqa: E402

PEERS_VERSION = "0.21.*"
DEFAULT_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hpgc-bench" / "pygeoapi-0.21"
PYGEOAPI_CONFIG = """
server:
  bind: {{host: 127.0.0.1, port: {port}}}
  url: http://127.0.0.1:{port}
  mimetype: application/json; charset=UTF-8
  encoding: utf-8
  languages: [en-US]
  limits: {{default_items: 10, max_items: 1000}}
  map: {{url: 'https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png', attribution: 'OSM'}}
  manager: {{name: TinyDB, connection: {tmp}/pygeoapi-jobs.db, output_dir: {tmp}/pygeoapi-out}}
logging: {{level: ERROR}}
metadata:
  identification: {{title: bench, description: bench, keywords: [bench], keywords_type: theme,
                    terms_of_service: 'https://example.org', url: 'https://example.org'}}
  license: {{name: CC-BY 4.0, url: 'https://creativecommons.org/licenses/by/4.0/'}}
  provider: {{name: bench, url: 'https://example.org'}}
  contact: {{name: bench, position: bench, address: x, city: x, stateorprovince: x, postalcode: x, country: x,
            phone: x, fax: x, email: x@example.org, url: 'https://example.org', hours: x, instructions: x,
            role: pointOfContact}}
resources:
  hello-world:
    type: process
    processor: {{name: HelloWorld}}
"""
WRK_LUA = """
local ids = {{{ids}}}
local i = 0
wrk.headers["Authorization"] = "{auth}"
request = function()
  i = i + 1
  local path = "{path}"
  if path == "" then path = "/jobs/" .. ids[(i % #ids) + 1] end
  return wrk.format("GET", path)
end
"""


class Peer:
    """One server under test: how to execute its trivial process, and its base URL and headers."""

    def __init__(self, name: str, url: str, process: str, inputs: dict, headers: dict[str, str], pid: int) -> None:
        self.name, self.url, self.process, self.inputs, self.headers = name, url, process, inputs, headers
        self.pid = pid
        self.ids: list[str] = []

    def cpu_s(self) -> float:
        """CPU seconds the server's process has used (its own threads; not its idle children)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def execute(self, s: aiohttp.ClientSession, async_: bool) -> str:
        headers = {**self.headers, **({"Prefer": "respond-async"} if async_ else {})}
        async with s.post(f"{self.url}/processes/{self.process}/execution", json={"inputs": self.inputs},
                          headers=headers) as r:
            await r.read()
            assert r.status in (200, 201), (self.name, r.status, await r.text())
            return r.headers.get("Location", "").rstrip("/").rsplit("/", 1)[-1]

    async def status(self, s: aiohttp.ClientSession, job_id: str) -> str:
        async with s.get(f"{self.url}/jobs/{job_id}", headers=self.headers) as r:
            return str((await r.json())["status"])


def ensure_venv(venv: Path) -> Path:
    if not (venv / "bin" / "uvicorn").exists():
        print(f"installing pygeoapi {PEERS_VERSION} into {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"pygeoapi=={PEERS_VERSION}", "uvicorn",
                        "starlette"], check=True)
    return venv


def start_pygeoapi(venv: Path, tmp: Path, port: int) -> subprocess.Popen:
    config, openapi = tmp / "pygeoapi.yml", tmp / "pygeoapi-openapi.yml"
    config.write_text(PYGEOAPI_CONFIG.format(port=port, tmp=tmp))
    (tmp / "pygeoapi-out").mkdir()
    env = {**os.environ, "PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
    subprocess.run([str(venv / "bin" / "pygeoapi"), "openapi", "generate", str(config), "--output-file",
                    str(openapi)], env=env, check=True, stdout=subprocess.DEVNULL)
    return subprocess.Popen([str(venv / "bin" / "uvicorn"), "pygeoapi.starlette_app:APP", "--port", str(port),
                             "--workers", "1", "--no-access-log", "--log-level", "warning"],
                            env=env, cwd=tmp, stdout=subprocess.DEVNULL)


def hpgc_env() -> dict[str, str]:
    env = {**os.environ, "HPGC_LOG_LEVEL": "WARNING", "HPGC_LIMITS__ACTIVE_JOBS_PER_USER": "0"}
    env.pop("HPGC_AUTH__ENABLED", None)  # as shipped: on, with the development issuer
    return env


def start_hpgc(tmp: Path, port: int) -> subprocess.Popen:
    data = tmp / "hpgc-data"
    return subprocess.Popen([sys.executable, "-m", "hpgc.cli", "serve", "--port", str(port), "--data-dir",
                             str(data)], env=hpgc_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def hpgc_token(tmp: Path) -> str:
    """A token of the development issuer, minted once the server has recorded its issuer URL."""
    return subprocess.run([sys.executable, "-m", "hpgc.cli", "token", "--user", "bench", "--data-dir",
                           str(tmp / "hpgc-data")], env=hpgc_env(), cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


async def sync_latency(peer: Peer, n: int) -> float:
    times = []
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            t0 = time.perf_counter()
            await peer.execute(s, async_=False)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


async def end_to_end(peer: Peer, n: int) -> float:
    """N async executes sent at once (20 in flight), then followed until every job is final → jobs/s."""
    async with aiohttp.ClientSession() as s:
        gate = asyncio.Semaphore(20)

        async def one() -> str:
            async with gate:
                return await peer.execute(s, async_=True)

        t0 = time.perf_counter()
        pending = set(await asyncio.gather(*(one() for _ in range(n))))
        peer.ids = sorted(pending)
        while pending:
            for job_id in list(pending):
                if await peer.status(s, job_id) in ("successful", "failed", "dismissed"):
                    pending.discard(job_id)
            if pending:
                await asyncio.sleep(0.05)
        return n / (time.perf_counter() - t0)


def wrk(peer: Peer, path: str, connections: int, duration: int, tmp: Path) -> tuple[float, float, float, float]:
    """→ (requests/s, p99 ms, wrk's CPU seconds per second of run, requests per CPU-second of the server).
    path '' means /jobs/{id} over all ids. The last figure depends little on the machine's load."""
    script = tmp / f"wrk-{peer.name}.lua"
    auth = peer.headers.get("Authorization", "")
    script.write_text(WRK_LUA.format(ids=", ".join(f'"{i}"' for i in peer.ids), auth=auth, path=path))
    before, server_before = resource.getrusage(resource.RUSAGE_CHILDREN), peer.cpu_s()
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
                          peer.url], capture_output=True, text=True, check=True).stdout
    after, server_cpu = resource.getrusage(resource.RUSAGE_CHILDREN), peer.cpu_s() - server_before
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / duration
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise RuntimeError(f"{peer.name} answered errors under load:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rps, p99, cpu, total / max(server_cpu, 1e-9)


def fill_store(peer: Peer, tmp: Path, n: int) -> None:
    """--no-execute: N finished jobs of the token's user written straight into hpgc's store (WAL: while it runs)."""
    from hpgc.store import Store

    store = Store(tmp / "hpgc-data" / "hpgc.sqlite")
    now = time.time()
    peer.ids = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(n)]
    store.bulk_insert_jobs([{"id": job_id, "process_id": "echo", "owner": "dev:bench", "status": "successful",
                             "message": "finished", "progress": 100, "backend": "local",
                             "external_id": f"local:{job_id}", "created": now - n + i, "started": now - n + i,
                             "finished": now - n + i + 0.5, "updated": now, "request": "{}"}
                            for i, job_id in enumerate(peer.ids)])
    store.close()


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--repeat", type=int, default=3, help="wrk runs per endpoint and server (median shown)")
    ap.add_argument("--sync", type=int, default=20, help="sequential sync executes per server")
    ap.add_argument("--no-execute", action="store_true",
                    help="measure the API only: hpgc's jobs written into its store, no sync/async executes")
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="pygeoapi's venv (made when missing)")
    args = ap.parse_args()
    venv = ensure_venv(args.venv)
    print(f"load average before: {load_average()} ({os.cpu_count()} CPUs)", flush=True)
    with tempfile.TemporaryDirectory() as tmpname:
        tmp = Path(tmpname)
        g_port, h_port = free_port(), free_port()
        geo = start_pygeoapi(venv, tmp, g_port)
        hp = start_hpgc(tmp, h_port)
        try:
            await wait_up(f"http://127.0.0.1:{g_port}/conformance")
            await wait_up(f"http://127.0.0.1:{h_port}/conformance")
            peers = [Peer("pygeoapi", f"http://127.0.0.1:{g_port}", "hello-world", {"name": "bench"}, {}, geo.pid),
                     Peer("hpgc", f"http://127.0.0.1:{h_port}", "echo", {"stringInput": "bench"},
                          {"Authorization": f"Bearer {hpgc_token(tmp)}"}, hp.pid)]
            res: dict[str, dict[str, list[float]]] = {p.name: {} for p in peers}
            for p in peers:
                if args.no_execute and p.name == "hpgc":
                    fill_store(p, tmp, args.jobs)
                    res[p.name]["sync"] = res[p.name]["e2e"] = [float("nan")]
                    continue
                res[p.name]["sync"] = [await sync_latency(p, args.sync)]
                res[p.name]["e2e"] = [await end_to_end(p, args.jobs)]
                print(f"{p.name}: sync p50 {res[p.name]['sync'][0]:.0f} ms, {args.jobs} async jobs "
                      f"{res[p.name]['e2e'][0]:.1f} jobs/s", flush=True)
            endpoints = {"GET /jobs/{id}": "", "GET /jobs?limit=10&status=successful":
                         "/jobs?limit=10&status=successful"}
            for _ in range(args.repeat):
                for label, path in endpoints.items():
                    for p in peers:
                        rps, p99, cpu, per_cpu = wrk(p, path, args.connections, args.duration, tmp)
                        for key, v in (("rps", rps), ("p99", p99), ("cpu", cpu), ("per_cpu", per_cpu)):
                            res[p.name].setdefault(f"{label} {key}", []).append(v)
                        print(f"  {p.name:9} {label:40} {rps:7.0f} req/s  p99 {p99:6.1f} ms  {per_cpu:6.0f} req per "
                              f"server CPU-s  wrk CPU {cpu:4.2f}", flush=True)
        finally:
            for proc in (geo, hp):
                proc.terminate()
                proc.wait()
    med = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in res.items()}
    g, h = med["pygeoapi"], med["hpgc"]
    print(f"\nload average after: {load_average()}; {args.jobs} jobs in each; {args.connections} connections; "
          f"median of {args.repeat} wrk runs of {args.duration} s\n")
    print("| measure | pygeoapi | hpgc | ratio |\n|---|---|---|---|")
    for label in endpoints:
        print(f"| `{label}` req/s | {g[label + ' rps']:,.0f} | {h[label + ' rps']:,.0f} | "
              f"{h[label + ' rps'] / g[label + ' rps']:.1f}× |")
        print(f"| `{label}` p99 | {g[label + ' p99']:.0f} ms | {h[label + ' p99']:.0f} ms | |")
        print(f"| `{label}` requests per server CPU-second | {g[label + ' per_cpu']:,.0f} | "
              f"{h[label + ' per_cpu']:,.0f} | {h[label + ' per_cpu'] / g[label + ' per_cpu']:.1f}× |")
    print(f"| sync execute, p50 of {args.sync} | {g['sync']:.0f} ms | {h['sync']:.0f} ms | "
          f"{g['sync'] / h['sync']:.2f}× |")
    print(f"| {args.jobs} async jobs, end to end | {g['e2e']:.1f} jobs/s | {h['e2e']:.1f} jobs/s | "
          f"{h['e2e'] / g['e2e']:.2f}× |")
    cpu = max(v for r in med.values() for k, v in r.items() if k.endswith(" cpu"))
    print(f"\nwrk used at most {cpu:.2f} CPU-seconds per second (one thread) of the machine's {os.cpu_count()}.")


if __name__ == "__main__":
    asyncio.run(main())
