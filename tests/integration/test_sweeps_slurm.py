"""Sweeps (hpgc:sweep) on the real Slurm cluster: BandMath over 50 GeoTIFFs is ONE job array (sacct shows
ID_0..ID_49 under one id) and every output is numpy's band1+band2 of its tile; dismissing a running 200-task
sweep leaves every task CANCELLED; kill -9 of the server mid-sweep, restart, and the sweep completes with
exactly one array in Slurm."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tifffile
from aiohttp.test_utils import TestClient
from PIL import Image

from tests.integration.conftest import files_served, ssh_run_async

pytestmark = pytest.mark.slurm
REPO = Path(__file__).resolve().parents[2]
PKG = {"Content-Type": "application/ogcapppkg+json"}
ASYNC = {"Prefer": "respond-async"}
TILES = 50
RNG = np.random.default_rng(13)
IMAGES = [[RNG.integers(0, 100, (8, 12), dtype=np.uint16) for _ in range(2)] for _ in range(TILES)]


def geotiff(bands: list[np.ndarray]) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.stack(bands), planarconfig="separate", photometric="minisblack")
    return buf.getvalue()


async def final(api: TestClient, job_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while (doc := await (await api.get(f"/jobs/{job_id}")).json())["status"] not in ("successful", "failed",
                                                                                       "dismissed"):
        assert time.monotonic() < deadline, doc
        await asyncio.sleep(1)
    return doc


async def sacct_rows(cluster: dict, array_id: str) -> list[tuple[str, str]]:
    out = await ssh_run_async(cluster, f"sacct -X --parsable2 --noheader -j {int(array_id)} --format=JobID,State")
    return [tuple(line.split("|")[:2]) for line in out.stdout.splitlines() if line.strip()]  # type: ignore[misc]


def array_of(status: dict) -> str:
    """The Slurm array id of a sweep from its first task's backend id (`test:123_0`)."""
    return status["backendId"].split(":", 1)[1].split("_")[0]


async def test_bandmath_over_50_tiles_is_one_array_and_every_output_is_band1_plus_band2(
        api: TestClient, cluster: dict) -> None:
    package = (REPO / "appkgs/BandMath/package.json").read_text()
    resp = await api.post("/processes?w=BandMath", data=package, headers=PKG)
    assert resp.status in (201, 409), await resp.text()
    files = {f"/tile{i}.tif": geotiff(IMAGES[i]) for i in range(TILES)}
    async with files_served(files) as url:
        body = {"inputs": {"out": "float", "exp": "im1b1+im1b2", "ram": 128},
                "outputs": {"out": {"format": {"mediaType": "image/png"}, "transmissionMode": "reference"}},
                "hpgc:sweep": {"inputs": {"il": [[{"href": f"{url}/tile{i}.tif"}] for i in range(TILES)]},
                               "maxParallel": 8}}
        resp = await api.post("/processes/BandMath/execution", json=body, headers=ASYNC)
        assert resp.status == 201, await resp.text()
        job_id = (await resp.json())["jobID"]
        done = await final(api, job_id, 300)
    tasks = (await (await api.get(f"/jobs/{job_id}/tasks")).json())["tasks"]
    assert done["status"] == "successful", (done, [t for t in tasks if t["status"] != "successful"][:3])
    array = array_of(tasks[0])
    assert [t["backendId"] for t in tasks] == [f"test:{array}_{i}" for i in range(TILES)]
    rows = await sacct_rows(cluster, array)
    assert sorted(r[0] for r in rows) == sorted(f"{array}_{i}" for i in range(TILES))  # one array: ID_0..ID_49
    assert {r[1] for r in rows} == {"COMPLETED"}
    results = await (await api.get(f"/jobs/{job_id}/results")).json()
    assert len(results["out"]) == TILES
    for i, link in enumerate(results["out"]):
        path = "/" + link["href"].split("://", 1)[1].split("/", 1)[1]
        png = np.array(Image.open(io.BytesIO(await (await api.get(path)).read())))
        np.testing.assert_array_equal(png.astype(np.int64), IMAGES[i][0].astype(np.int64) + IMAGES[i][1],
                                      err_msg=f"tile {i}")


async def test_dismissing_a_running_200_task_sweep_cancels_every_task(api: TestClient, cluster: dict) -> None:
    body = {"inputs": {}, "hpgc:sweep": {"inputs": {"seconds": [300] * 200}, "maxParallel": 4}}
    resp = await api.post("/processes/sleep/execution", json=body, headers=ASYNC)
    assert resp.status == 201, await resp.text()
    job_id = (await resp.json())["jobID"]
    deadline = time.monotonic() + 120
    while (doc := await (await api.get(f"/jobs/{job_id}")).json())["hpgc:tasks"]["running"] < 1:
        assert time.monotonic() < deadline and doc["status"] in ("accepted", "running"), doc
        await asyncio.sleep(1)
    array = array_of((await (await api.get(f"/jobs/{job_id}/tasks?limit=1")).json())["tasks"][0])
    resp = await api.delete(f"/jobs/{job_id}")
    assert resp.status == 200, await resp.text()
    deadline = time.monotonic() + 60
    while True:
        rows = await sacct_rows(cluster, array)
        if rows and all(state.startswith("CANCELLED") for _, state in rows):
            break
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(1)
    # every row is of this one array: the running tasks one by one, the pending ones as a range
    assert all(jid.startswith(f"{array}_") for jid, _ in rows), rows
    squeue = await ssh_run_async(cluster, f"squeue --noheader -j {int(array)}")
    assert squeue.stdout.strip() == ""


def _config(cluster: dict, path: Path) -> Path:
    lines = ["[auth]", "enabled = false", "[outbound]", 'allowed_networks = ["127.0.0.0/8"]', "[clusters.test]"]
    values = {"host": cluster["host"], "port": cluster["port"], "known_hosts": cluster["known_hosts"],
              "user": "alice", "key_file": cluster["users"]["alice"], "work_root": cluster["work_root"],
              "image_cache": cluster["image_cache"], "container_runtime": cluster.get("container_runtime", "apptainer"),
              "partition": cluster.get("partition"), "account": cluster.get("account"), "poll_min_s": 0.5,
              "poll_max_s": 2}
    values = {k: v for k, v in values.items() if v is not None}
    lines += [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in values.items()]
    text = "\n".join(lines).replace("'", '"') + "\n"
    path.write_text('default_backend = "slurm"\n' + text)
    return path


def _serve(config: Path, data: Path, port: int) -> subprocess.Popen[bytes]:
    log = (data.parent / f"server-{port}.log").open("ab")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPGC_")}
    proc = subprocess.Popen([sys.executable, "-m", "hpgc.cli", "serve", "--config", str(config), "--port", str(port),
                             "--data-dir", str(data)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"server exited; see {log.name}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/conformance", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.3)


def test_kill_9_mid_sweep_then_restart_completes_with_exactly_one_array(cluster: dict, tmp_path: Path) -> None:
    from tests.e2e.conftest import free_port

    config, data, port = _config(cluster, tmp_path / "hpgc.toml"), tmp_path / "data", free_port()
    proc = _serve(config, data, port)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        body = {"inputs": {}, "hpgc:sweep": {"inputs": {"seconds": [3] * 12}, "maxParallel": 4}}
        resp = api.post("/processes/sleep/execution", json=body, headers=ASYNC)
        assert resp.status_code == 201, resp.text
        job_id = resp.json()["jobID"]
        deadline = time.monotonic() + 120
        while api.get(f"/jobs/{job_id}").json()["hpgc:tasks"]["running"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = _serve(config, data, port)
        deadline = time.monotonic() + 240
        while (doc := api.get(f"/jobs/{job_id}").json())["status"] not in ("successful", "failed", "dismissed"):
            assert time.monotonic() < deadline, doc
            time.sleep(1)
        assert doc["status"] == "successful" and doc["hpgc:tasks"]["successful"] == 12, doc
        assert api.get(f"/jobs/{job_id}/results").json()["message"] == ["slept 3 s\n"] * 12
    finally:
        api.close()
        proc.terminate()
        proc.wait(30)
    named = asyncio.run(ssh_run_async(cluster, f"sacct -X --parsable2 --noheader -S now-1hour --name=hpgc-{job_id} "
                                               "--format=JobID"))
    ids = {line.split("_")[0] for line in named.stdout.split()}
    assert len(ids) == 1, named.stdout  # exactly one array, never submitted twice
