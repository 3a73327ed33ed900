"""Deploy-time image pulls on the real cluster: the runtime's own pull, once, from a .sif served over HTTP
on the cluster's network (the test cluster is offline)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hpgc.models.names import image_cache_name
from tests.integration.test_api_slurm import download, run

pytestmark = pytest.mark.slurm


def bridge_address(cluster: dict) -> str:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", cluster["bridge"]], capture_output=True,
                         text=True, check=True).stdout
    return out.split()[3].split("/")[0]


@pytest.fixture
async def sif_url(cluster: dict) -> AsyncIterator[tuple[str, Path]]:
    """The small Python image, served from the host on the cluster's bridge under a new name."""
    source = Path(cluster["shared_dir_on_host"]) / "images" / "python_3.11-slim.sif"
    name = f"pulled-{uuid.uuid4().hex[:8]}.sif"
    app = web.Application()
    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(source)

    app.router.add_get(f"/{name}", serve)
    server = TestServer(app, host=bridge_address(cluster))
    await server.start_server()
    url = f"http://{server.host}:{server.port}/{name}"
    cached = Path(cluster["shared_dir_on_host"]) / "images" / image_cache_name(url)  # pulled-xxxx-<digest>.sif
    yield url, cached
    await server.close()
    cached.unlink(missing_ok=True)


def package(process_id: str, image: str) -> str:
    return json.dumps({
        "processDescription": {
            "id": process_id, "version": "1.0.0", "jobControlOptions": ["async-execute"],
            "additionalParameters": [{"name": "entry-point", "value":
                                      "python3 -c \"import sys; open('outputs/answer.txt','w').write(sys.version)\""}],
            "inputs": {},
            "outputs": {"answer": {"additionalParameters": [{"name": "pattern", "value": " "}],
                                   "schema": {"type": "string", "contentMediaType": "text/plain"}}}},
        "executionUnit": {"type": "SLURM", "image": image}})


async def until_ready(api: TestClient, process_id: str) -> dict:
    for _ in range(240):
        desc = await (await api.get(f"/processes/{process_id}")).json()
        if "hpgc:status" not in desc:
            return desc
        assert desc["hpgc:status"] == "deploying", desc["hpgc:status"]
        await asyncio.sleep(0.5)
    raise AssertionError("the image pull did not finish")


async def test_image_pulled_at_deploy_once(api: TestClient, sif_url: tuple[str, Path]) -> None:
    url, cached = sif_url
    headers = {"Content-Type": "application/ogcapppkg+json"}
    resp = await api.post("/processes", data=package("pulled-tool", url), headers=headers)
    assert resp.status == 201, await resp.text()
    await until_ready(api, "pulled-tool")
    assert cached.exists()
    first = cached.stat().st_mtime_ns
    results = await run(api, "pulled-tool", {"inputs": {}})
    assert (await download(api, results["answer"]["href"])).startswith(b"3.11")
    # a second package with the same image: nothing is pulled again
    resp = await api.post("/processes", data=package("pulled-tool-2", url), headers=headers)
    assert resp.status == 201
    await until_ready(api, "pulled-tool-2")
    assert cached.stat().st_mtime_ns == first


async def test_unreachable_image_fails_the_deploy_clearly(api: TestClient, cluster: dict) -> None:
    headers = {"Content-Type": "application/ogcapppkg+json"}
    nowhere = f"http://{bridge_address(cluster)}:9/none.sif"  # nothing listens on the discard port
    resp = await api.post("/processes", data=package("broken-tool", nowhere),
                          headers=headers)
    assert resp.status == 201
    for _ in range(120):
        desc = await (await api.get("/processes/broken-tool")).json()
        if desc.get("hpgc:status", "").startswith("failed"):
            break
        await asyncio.sleep(0.5)
    assert "could not be pulled" in desc["hpgc:status"]
    run = await api.post("/processes/broken-tool/execution", json={"inputs": {}})
    assert run.status == 409
