"""The whole API on the real Slurm cluster: deploy the notebooks' packages, run them, check the pixels.

Inputs are GeoTIFFs served over local HTTP; hpgc downloads them and stages them over SFTP (compute
nodes are offline), as by default.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from tests.integration.conftest import files_served, ssh_run_async

pytestmark = pytest.mark.slurm
REPO = Path(__file__).resolve().parents[2]
PKG = {"Content-Type": "application/ogcapppkg+json"}
ASYNC = {"Prefer": "respond-async;return=representation"}


def geotiff(bands: list[np.ndarray]) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.stack(bands), planarconfig="separate", photometric="minisblack")
    return buf.getvalue()


RNG = np.random.default_rng(7)
IMAGE = [RNG.integers(0, 100, (20, 30), dtype=np.uint16) for _ in range(3)]
PRE = [RNG.integers(100, 200, (20, 30), dtype=np.uint16) for _ in range(2)]
POST = [RNG.integers(1, 100, (20, 30), dtype=np.uint16) for _ in range(2)]
FILES = {"/image.tif": geotiff(IMAGE), "/pre.tif": geotiff(PRE), "/post.tif": geotiff(POST)}


@pytest.fixture
async def files_url() -> AsyncIterator[str]:
    async with files_served(FILES) as url:
        yield url


async def succeeded(api: TestClient, process: str, body: dict, timeout: float = 240) -> str:
    """Execute asynchronously, follow the job to its end, insist it succeeded; → the job id."""
    resp = await api.post(f"/processes/{process}/execution", json=body, headers=ASYNC)
    assert resp.status == 201, await resp.text()
    job_id = (await resp.json())["jobID"]
    for _ in range(int(timeout / 0.5)):
        status = await (await api.get(f"/jobs/{job_id}")).json()
        if status["status"] in ("successful", "failed", "dismissed"):
            break
        await asyncio.sleep(0.5)
    logs = await (await api.get(f"/jobs/{job_id}/logs")).json()
    assert status["status"] == "successful", (status.get("message"), logs["stderr"][-3000:])
    return job_id


async def run(api: TestClient, process: str, body: dict, timeout: float = 240) -> dict:
    job_id = await succeeded(api, process, body, timeout)
    return await (await api.get(f"/jobs/{job_id}/results")).json()


async def download(api: TestClient, href: str) -> bytes:
    path = "/" + href.split("://", 1)[1].split("/", 1)[1]
    resp = await api.get(path)
    assert resp.status == 200
    return await resp.read()


async def test_bandmath_as_the_notebooks_deploy_it(api: TestClient, files_url: str) -> None:
    package = (REPO / "appkgs/BandMath/package.json").read_text()
    resp = await api.post("/processes?w=BandMath", data=package, headers=PKG)
    assert resp.status == 201, await resp.text()
    results = await run(api, "BandMath", {
        "inputs": {"il": [{"href": f"{files_url}/image.tif"}], "out": "float", "exp": "im1b1+im1b2", "ram": 256},
        "outputs": {"out": {"format": {"mediaType": "image/png"}, "transmissionMode": "reference"}},
        "response": "document"})
    assert results["out"]["type"] == "image/png"
    png = np.array(Image.open(io.BytesIO(await download(api, results["out"]["href"]))))
    assert png.shape == (20, 30)
    np.testing.assert_array_equal(png.astype(np.int64), IMAGE[0].astype(np.int64) + IMAGE[1])


async def test_cwl_band_ratio_in_a_container(api: TestClient, files_url: str) -> None:
    tool = (REPO / "appkgs/band-ratio/band-ratio.cwl").read_text()
    resp = await api.post("/processes", data=tool, headers={"Content-Type": "application/cwl+yaml"})
    assert resp.status == 201, await resp.text()
    results = await run(api, "band-ratio", {
        "inputs": {"image": {"href": f"{files_url}/image.tif", "type": "image/tiff"}, "band_a": 2, "band_b": 1},
        "response": "document"})
    ratio = tifffile.imread(io.BytesIO(await download(api, results["ratio"]["href"])))
    a, b = IMAGE[1].astype(np.float64), IMAGE[0].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(a + b == 0, 0, (a - b) / (a + b))
    np.testing.assert_allclose(ratio, expected, rtol=1e-5, atol=1e-6)


async def test_cwl_two_step_workflow(api: TestClient, files_url: str) -> None:
    wf = (REPO / "appkgs/dnbr/dnbr.cwl").read_text()
    resp = await api.post("/processes?w=dnbr", data=wf, headers={"Content-Type": "application/cwl+yaml"})
    assert resp.status == 201, await resp.text()
    results = await run(api, "dnbr", {
        "inputs": {"pre_fire": {"href": f"{files_url}/pre.tif", "type": "image/tiff"},
                   "post_fire": {"href": f"{files_url}/post.tif", "type": "image/tiff"}},
        "response": "document"}, timeout=300)
    dnbr = tifffile.imread(io.BytesIO(await download(api, results["dnbr"]["href"])))

    def nbr(img: list[np.ndarray]) -> np.ndarray:
        x, y = img[0].astype(np.float64), img[1].astype(np.float64)
        return (x - y) / (x + y)

    np.testing.assert_allclose(dnbr, nbr(PRE) - nbr(POST), rtol=1e-4, atol=1e-5)


async def test_echo_on_the_cluster_and_script(api: TestClient) -> None:
    job_id = await succeeded(api, "echo", {"inputs": {"stringInput": "from slurm"}})
    assert (await (await api.get(f"/jobs/{job_id}/results")).json())["stringOutput"] == "from slurm"
    script = await (await api.get(f"/jobs/{job_id}/script")).text()
    assert f"--job-name=hpgc-{job_id}" in script
    logs = await (await api.get(f"/jobs/{job_id}/logs")).json()
    assert any("NodeList" in json.dumps(e.get("details") or {}) or e["status"] == "successful"
               for e in logs["events"])


async def test_progress_and_dismiss_on_the_cluster(api: TestClient, cluster: dict) -> None:
    resp = await api.post("/processes/sleep/execution", json={"inputs": {"seconds": 120}}, headers=ASYNC)
    job_id = (await resp.json())["jobID"]
    for _ in range(240):
        status = await (await api.get(f"/jobs/{job_id}")).json()
        if status["status"] == "running" and (status.get("progress") or 0) > 5:
            break
        await asyncio.sleep(0.5)
    assert status["status"] == "running" and "slept" in status["message"], status  # from hpgc-progress
    resp = await api.delete(f"/jobs/{job_id}")
    assert resp.status == 200 and (await resp.json())["status"] == "dismissed"
    for _ in range(60):
        state = (await ssh_run_async(cluster, f"sacct -n -X -P --name=hpgc-{job_id} --format=State")).stdout.strip()
        if state.startswith("CANCELLED"):
            break
        await asyncio.sleep(1)
    assert state.startswith("CANCELLED"), state
    gone = await ssh_run_async(cluster, f"test -e {cluster['work_root']}/alice/{job_id}")
    assert gone.exit_status == 1, "the dismissed job's directory is still on the cluster"


async def test_callbacks_from_a_cluster_job(api: TestClient) -> None:
    got: list[tuple[str, dict, dict]] = []
    arrived = asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        got.append((request.path, dict(request.headers), await request.json()))
        if request.path in ("/done", "/failed"):
            arrived.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/progress", receive)
    app.router.add_post("/done", receive)
    app.router.add_post("/failed", receive)
    receiver = TestServer(app, host="127.0.0.1")
    await receiver.start_server()
    try:
        url = f"http://127.0.0.1:{receiver.port}"
        body = {"inputs": {"stringInput": "called back"},
                "subscriber": {"successUri": f"{url}/done", "inProgressUri": f"{url}/progress",
                               "failedUri": f"{url}/failed"}}
        resp = await api.post("/processes/echo/execution", json=body, headers=ASYNC)
        assert resp.status == 201, await resp.text()
        job_id = (await resp.json())["jobID"]
        try:
            await asyncio.wait_for(arrived.wait(), 180)
        except TimeoutError:
            status = await (await api.get(f"/jobs/{job_id}")).json()
            calls = await (await api.get(f"/jobs/{job_id}/callbacks")).json()
            raise AssertionError(f"no final callback in 180 s; job: {status}; callbacks: {calls}") from None
    finally:
        await receiver.close()
    path, headers, payload = got[-1]
    assert path == "/done", payload
    assert payload["stringOutput"] == "called back"  # the results document, as GET .../results gives it
    assert headers["X-Hpgc-Signature"].startswith("sha256=")
    assert {p for p, _, _ in got} == {"/progress", "/done"}
