"""Data through hpgc with bounded memory: a 2 GiB upload (POST /files, streamed to the data dir) and an S3 round
trip (an s3:// input staged by the server, a `cp` job, its output delivered to an S3 prefix), each with the
server's peak RSS, against the same transfer without hpgc in the same run: curl to a server that only discards
the body, and obstore alone getting and putting the object. moto's server stands for the object store.

    nice -n 10 .venv/bin/python bench/bench_data.py [--upload-mib 2048] [--s3-mib 1024]

Files live in a temporary folder under /tmp and are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.e2e.conftest import start_server  # noqa: E402
from tests.s3_server import KEY_ID, SECRET, moto_server  # noqa: E402

COPY = """cwlVersion: v1.2
class: CommandLineTool
id: copyfile
baseCommand: [cp]
inputs:
  f: {type: File, inputBinding: {position: 1}}
arguments: [{position: 2, valueFrom: copy.bin}]
outputs:
  copy: {type: File, outputBinding: {glob: copy.bin}}
"""
DISCARD = """
import sys
from aiohttp import web
async def discard(request):
    n = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        n += len(chunk)
    return web.json_response({"size": n})
app = web.Application(client_max_size=1 << 40)
app.router.add_post("/files", discard)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def vm_hwm_mib(pid: int) -> float:
    """The process's peak resident set so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def vm_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def make_file(path: Path, mib: int) -> str:
    """MIB of pseudo-random bytes (not sparse: every byte is read from disk or the page cache); its SHA-256."""
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with path.open("wb") as f:
        for i in range(mib):
            piece = block[i % 251:] + block[:i % 251]
            digest.update(piece)
            f.write(piece)
    return digest.hexdigest()


def curl_post(url: str, path: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    out = subprocess.run(["curl", "-sS", "-f", "-X", "POST", "-T", str(path), "-H", "Content-Type: image/tiff",
                          url], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, json.loads(out.stdout)


def bench_upload(tmp: Path, mib: int) -> dict:
    src = tmp / "upload.bin"
    sha = make_file(src, mib)
    port = 20000 + os.getpid() % 20000
    sink = subprocess.Popen([sys.executable, "-c", DISCARD, str(port)])
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        alone_s, doc = curl_post(f"http://127.0.0.1:{port}/files", src)
        assert doc["size"] == mib << 20
    finally:
        sink.terminate()
        sink.wait()
    server = start_server(tmp / "data", env={"HPGC_UPLOADS__MAX_BYTES": str(4 << 30)})
    try:
        before = vm_rss_mib(server.proc.pid)
        hpgc_s, doc = curl_post(f"{server.url}/files", src)
        peak = vm_hwm_mib(server.proc.pid)
        assert doc["sha256"] == sha and doc["size"] == mib << 20, doc
        stored = tmp / "data" / "uploads" / doc["id"]
        assert stored.stat().st_size == mib << 20
    finally:
        server.stop()
        src.unlink()
    return {"upload_mib": mib, "curl_to_discarding_server_mib_s": round(mib / alone_s, 1),
            "curl_to_hpgc_mib_s": round(mib / hpgc_s, 1), "hpgc_rss_before_mib": round(before, 1),
            "hpgc_peak_rss_mib": round(peak, 1), "hpgc_peak_above_start_mib": round(peak - before, 1)}


async def obstore_alone(url: str, path: Path, mib: int) -> tuple[float, float]:
    import obstore
    from obstore.store import S3Store

    store = S3Store("bench", config={"endpoint": url, "region": "us-east-1", "access_key_id": KEY_ID,
                                     "secret_access_key": SECRET}, client_options={"allow_http": True})

    async def chunks():  # type: ignore[no-untyped-def]
        with path.open("rb") as f:
            while piece := f.read(1 << 20):
                yield piece

    start = time.perf_counter()
    await obstore.put_async(store, "alone/in.bin", chunks(), chunk_size=8 << 20, max_concurrency=4)
    put_s = time.perf_counter() - start
    start = time.perf_counter()
    got = await obstore.get_async(store, "alone/in.bin")
    n = 0
    async for piece in got.stream(min_chunk_size=1 << 20):
        n += len(piece)
    assert n == mib << 20
    return put_s, time.perf_counter() - start


def bench_s3(tmp: Path, mib: int) -> dict:
    src = tmp / "object.bin"
    sha = make_file(src, mib)
    with moto_server() as s3:
        s3.make_bucket("bench")
        put_s, get_s = asyncio.run(obstore_alone(s3.url, src, mib))
        env = {"HPGC_STORAGE__S3": json.dumps({"bench": {"endpoint": s3.url, "buckets": ["bench"], "allow_http": True,
                                                          "access_key_id": KEY_ID, "secret_access_key": SECRET}}),
               "HPGC_OUTBOUND__MAX_JOB_BYTES": str(8 << 30)}
        server = start_server(tmp / "data-s3", env=env)
        try:
            client = httpx.Client(base_url=server.url, timeout=3600)
            assert client.post("/processes", content=COPY,
                               headers={"Content-Type": "application/cwl+yaml"}).status_code == 201
            before = vm_rss_mib(server.proc.pid)
            start = time.perf_counter()
            resp = client.post("/processes/copyfile/execution", json={
                "inputs": {"f": {"href": "s3://bench/alone/in.bin"}},
                "hpgc:outputs": {"destination": "s3://bench/out/"}, "response": "document"},
                headers={"Prefer": "wait=3600"})
            total_s = time.perf_counter() - start
            assert resp.status_code == 200, resp.text
            peak = vm_hwm_mib(server.proc.pid)
            doc = resp.json()
            assert doc["copy"]["hpgc:sha256"] == sha, doc
        finally:
            server.stop()
            src.unlink()
    out = {"s3_mib": mib, "obstore_alone_put_mib_s": round(mib / put_s, 1),
           "obstore_alone_get_mib_s": round(mib / get_s, 1), "obstore_alone_round_trip_s": round(put_s + get_s, 1),
           "hpgc_round_trip_s": round(total_s, 1), "hpgc_rss_before_mib": round(before, 1),
           "hpgc_peak_rss_mib": round(peak, 1), "hpgc_peak_above_start_mib": round(peak - before, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upload-mib", type=int, default=2048)
    parser.add_argument("--s3-mib", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hpgc-bench-data-", dir="/tmp") as tmp:
        print(json.dumps(bench_upload(Path(tmp), args.upload_mib)), flush=True)
        print(json.dumps(bench_s3(Path(tmp), args.s3_mib)), flush=True)


if __name__ == "__main__":
    main()
