"""Callbacks: N jobs finishing at once, until every success notification has reached its receiver.

The receiver is a separate process (an aiohttp app on 127.0.0.1 that counts POSTs and distinct delivery
ids). hpgc runs in this process with a backend that holds every job `running` until released, so all N
finish in the same poll: the figure covers N status changes, N outbox rows written with them, and N
deliveries. Baseline, measured in the same run against the same receiver: N plain POSTs of the same
payloads from one aiohttp session, with the same number in flight as the dispatcher allows.

    .venv/bin/python bench/bench_callbacks.py [--jobs 1000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hpgc.api.app import create_app  # noqa: E402
from hpgc.api.keys import JOBS  # noqa: E402
from hpgc.auth.principal import ANONYMOUS  # noqa: E402
from hpgc.auth.settings import AuthSettings  # noqa: E402
from hpgc.config import Settings  # noqa: E402
from hpgc.jobs.callbacks.settings import CallbackSettings  # noqa: E402
from hpgc.models.ogc import Execute  # noqa: E402
from hpgc.net import OutboundSettings  # noqa: E402
from tests.api.fake_backend import GateBackend  # noqa: E402

RECEIVER = textwrap.dedent("""
    import sys
    from aiohttp import web
    seen, posts = set(), [0]
    async def hook(request):
        await request.read()
        posts[0] += 1
        seen.add(request.headers.get("X-Hpgc-Delivery") or posts[0])
        return web.Response(text="ok")
    async def count(request):
        return web.json_response({"posts": posts[0], "distinct": len(seen)})
    async def reset(request):
        seen.clear(); posts[0] = 0
        return web.Response(text="ok")
    app = web.Application()
    app.add_routes([web.post("/hook", hook), web.get("/count", count), web.post("/reset", reset)])
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def counts(session: aiohttp.ClientSession, url: str) -> dict[str, int]:
    async with session.get(f"{url}/count") as resp:
        return dict(await resp.json())


async def wait_for(session: aiohttp.ClientSession, url: str, n: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while (await counts(session, url))["distinct"] < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {(await counts(session, url))['distinct']} of {n} arrived in {timeout} s")
        await asyncio.sleep(0.01)
    return time.monotonic()


async def all_final(db_path: Path, n: int) -> float:
    """When the n-th job became successful (read through a second connection: WAL lets it)."""
    conn = sqlite3.connect(db_path)
    try:
        while conn.execute("SELECT COUNT(*) FROM jobs WHERE status = 'successful'").fetchone()[0] < n:
            await asyncio.sleep(0.005)
        return time.monotonic()
    finally:
        conn.close()


async def baseline(url: str, payloads: list[bytes], concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def post(i: int, body: bytes) -> None:
            async with sem, session.post(f"{url}/hook", data=body, headers={
                    "Content-Type": "application/json", "X-Hpgc-Delivery": f"baseline-{i}"}) as resp:
                assert resp.status == 200
        t0 = time.monotonic()
        await asyncio.gather(*(post(i, b) for i, b in enumerate(payloads)))
        return time.monotonic() - t0


async def status_changes_alone(n: int) -> float:
    """The same n jobs finishing at once without subscribers: what the status changes cost by themselves."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), auth=AuthSettings(enabled=False), poll_interval_s=0.2)
        gate = GateBackend()
        app = create_app(settings, backends={"local": gate})
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            service = app[JOBS]
            echo = service.registry.get("echo")
            execute = Execute.model_validate({"inputs": {"stringInput": "bench", "arrayInput": [1, 2, 3]}})
            for _ in range(n):
                await service.create(ANONYMOUS, echo, execute, base_url="http://hpgc.bench")
            while len(gate.specs) < n:
                await asyncio.sleep(0.05)
            final = asyncio.create_task(all_final(settings.data_dir / "hpgc.sqlite", n))
            t0 = time.monotonic()
            gate.release()
            gate.on_change()
            return await final - t0
        finally:
            await runner.cleanup()


async def run(n: int, concurrency: int) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    await counts(session, url)
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            with tempfile.TemporaryDirectory() as tmp:
                settings = Settings(data_dir=Path(tmp), auth=AuthSettings(enabled=False), poll_interval_s=0.2,
                                    outbound=OutboundSettings(allowed_networks=["127.0.0.1/32"]),
                                    callbacks=CallbackSettings(concurrency=concurrency,
                                                               per_host_concurrency=concurrency))
                gate = GateBackend()
                app = create_app(settings, backends={"local": gate})
                runner = web.AppRunner(app)
                await runner.setup()  # starts the services (store, monitor, notifier)
                try:
                    service = app[JOBS]
                    echo = service.registry.get("echo")
                    execute = Execute.model_validate({"inputs": {"stringInput": "bench", "arrayInput": [1, 2, 3]},
                                                      "subscriber": {"successUri": f"{url}/hook"}})
                    t = time.monotonic()
                    ids = [(await service.create(ANONYMOUS, echo, execute, base_url="http://hpgc.bench"))["id"]
                           for _ in range(n)]
                    while len(gate.specs) < n:
                        await asyncio.sleep(0.05)
                    print(f"{n} jobs created and submitted in {time.monotonic() - t:.2f} s (not part of the figure)")
                    final = asyncio.create_task(all_final(settings.data_dir / "hpgc.sqlite", n))
                    t0 = time.monotonic()
                    gate.release()
                    gate.on_change()
                    done = await wait_for(session, url, n, timeout=300)
                    status_s = await final - t0
                    statuses = {r["status"] for r in [await service.db(service.store.get_job, i) for i in ids]}
                    assert statuses == {"successful"}, statuses
                    payloads = [r["payload"].encode() for r in await service.db(
                        lambda: list(service.store.db["outbox"].rows_where(select="payload")))]
                finally:
                    await runner.cleanup()
            hpgc_s = done - t0
            got = await counts(session, url)
            print(f"receiver: {got['posts']} POSTs, {got['distinct']} distinct delivery ids")
            async with session.post(f"{url}/reset"):
                pass
            base_s = await baseline(url, payloads, concurrency)
        alone_s = await status_changes_alone(n)
        size = sum(map(len, payloads)) / len(payloads)
        print(json.dumps({"jobs": n, "payload_bytes": round(size), "concurrency": concurrency}))
        print(f"hpgc:     {n} jobs finish at once -> all {n} notified in {hpgc_s:.2f} s ({n / hpgc_s:.0f}/s); "
              f"the {n} status changes (with their outbox rows) took {status_s:.2f} s of it")
        print(f"baseline: {n} plain POSTs, one session, {concurrency} in flight: {base_s:.2f} s "
              f"({n / base_s:.0f}/s)")
        print(f"baseline: the same {n} status changes without subscribers: {alone_s:.2f} s")
        print(f"ratio:    {hpgc_s / base_s:.1f}x the plain POSTs, {hpgc_s / alone_s:.2f}x the status changes alone")
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(run(args.jobs, args.concurrency))


if __name__ == "__main__":
    main()
