"""Data in and out on the real Slurm cluster: an upload goes over alice's own SFTP into the work root, BandMath
runs on it, and its result is delivered to an S3 prefix (moto's server on the bridge address), byte-equal to
what the job wrote; a file only alice may read runs in place for alice and is a 403 for bob before any job; an
s3:// input is staged by the server with the site's credentials (none reach the cluster)."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.auth.settings import AuthSettings
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.config import Settings
from tests.api.test_auth_http import bearer
from tests.integration.conftest import connect, ssh_run_async
from tests.integration.test_api_slurm import ASYNC, IMAGE, PKG, REPO, geotiff
from tests.s3_server import SECRET, S3Server, moto_server

pytestmark = pytest.mark.slurm
SCENE = geotiff(IMAGE)
EXECUTE = "hpgc:execute hpgc:deploy"


@pytest.fixture(scope="module")
def s3_on_bridge(cluster: dict) -> Iterator[S3Server]:
    """moto on the host's bridge address: the server reaches it, and so do the cluster's nodes."""
    bridge = cluster["node_addresses"]["login"].rsplit(".", 1)[0] + ".1"
    with moto_server(bridge) as server:
        server.make_bucket("results")
        server.make_bucket("scenes")
        yield server


def _cluster(cluster: dict, **kw: object) -> ClusterSettings:
    return ClusterSettings(
        host=cluster["host"], port=cluster["port"], known_hosts=cluster["known_hosts"], user="alice",
        key_file=cluster["users"]["alice"], user_keys={"bob": cluster["users"]["bob"]},
        work_root=cluster["work_root"], image_cache=cluster["image_cache"],
        container_runtime=cluster.get("container_runtime", "apptainer"), partition=cluster.get("partition"),
        account=cluster.get("account"), poll_min_s=0.5, poll_max_s=2, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def api(cluster: dict, tmp_path: Path, s3_on_bridge: S3Server,
              aiohttp_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    """Authentication on (development tokens: alice → Unix alice, bob → Unix bob)."""
    settings = Settings(data_dir=tmp_path / "data", auth=AuthSettings(), default_backend="slurm",
                        clusters={"test": _cluster(cluster)},
                        storage=s3_on_bridge.settings(["results", "scenes"]))
    client = await aiohttp_client(create_app(settings))
    resp = await client.post("/processes?w=BandMath", data=(REPO / "appkgs/BandMath/package.json").read_text(),
                             headers={**PKG, **bearer(client, "alice", EXECUTE)})
    assert resp.status == 201, await resp.text()
    return client


async def ended(api: TestClient, job_id: str, who: dict[str, str], timeout: float = 240) -> dict:
    for _ in range(int(timeout / 0.5)):
        status = await (await api.get(f"/jobs/{job_id}", headers=who)).json()
        if status["status"] in ("successful", "failed", "dismissed"):
            return status
        await asyncio.sleep(0.5)
    raise AssertionError(f"job {job_id} did not end: {status}")


def bandmath(href: str, **extra: object) -> dict:
    return {"inputs": {"il": [{"href": href}], "out": "float", "exp": "im1b1+im1b2", "ram": 256},
            "outputs": {"out": {"format": {"mediaType": "image/tiff"}, "transmissionMode": "reference"}},
            "response": "document", **extra}


def expected_sum(data: bytes) -> np.ndarray:
    image = tifffile.imread(io.BytesIO(data))
    return image[0].astype(np.float64) + image[1]


async def test_upload_bandmath_and_delivery_to_s3(api: TestClient, cluster: dict, s3_on_bridge: S3Server) -> None:
    alice = bearer(api, "alice", EXECUTE)
    resp = await api.post("/files", data=SCENE, params={"name": "scene.tif"},
                          headers={**alice, "Content-Type": "image/tiff"})
    assert resp.status == 201, await resp.text()
    upload = await resp.json()
    stored = await ssh_run_async(cluster, f"stat -c '%a %U %s' {cluster['work_root']}/alice/uploads/{upload['id']}")
    assert stored.stdout.split() == ["600", "alice", str(len(SCENE))], stored
    body = bandmath(upload["href"], **{"hpgc:outputs": {"destination": "s3://results/run-1/"}})
    resp = await api.post("/processes/BandMath/execution", json=body, headers={**alice, **ASYNC})
    assert resp.status == 201, await resp.text()
    job_id = (await resp.json())["jobID"]
    status = await ended(api, job_id, alice)
    assert status["status"] == "successful", status
    assert status["message"] == "outputs delivered to s3://results/run-1/"
    results = await (await api.get(f"/jobs/{job_id}/results", headers=alice)).json()
    out = results["out"]
    key = out["href"].removeprefix("s3://results/")
    assert out["href"].startswith("s3://results/run-1/out") and key.endswith(".tif")
    delivered = s3_on_bridge.get("results", key)
    written = await (await api.get(f"/jobs/{job_id}/results/out", headers=alice)).read()  # the job's own file
    assert delivered == written and out["hpgc:sha256"] == hashlib.sha256(written).hexdigest()
    np.testing.assert_array_equal(tifffile.imread(io.BytesIO(delivered)), expected_sum(SCENE))
    script = await (await api.get(f"/jobs/{job_id}/script", headers=alice)).text()
    assert f"uploads/{upload['id']}" in script and SECRET not in script  # linked from the upload; no credentials


async def test_a_cluster_path_runs_in_place_for_alice_and_is_403_for_bob(api: TestClient, cluster: dict) -> None:
    folder = "/home/alice/hpgc-data-test"
    await ssh_run_async(cluster, f"rm -rf {folder}; mkdir -m 700 {folder}", check=True)
    path = f"{folder}/scene.tif"
    async with connect(cluster) as conn, conn.start_sftp_client() as sftp, sftp.open(path, "wb") as f:
        await f.write(SCENE)
    await ssh_run_async(cluster, f"chmod 600 {path}", check=True)
    alice, bob = bearer(api, "alice", EXECUTE), bearer(api, "bob", EXECUTE)
    resp = await api.post("/processes/BandMath/execution", json=bandmath(f"file://{path}"), headers={**bob, **ASYNC})
    assert resp.status == 403, await resp.text()
    assert "not a file your account (bob) can read on cluster test" in (await resp.json())["detail"]
    assert (await (await api.get("/jobs", headers=bob)).json())["jobs"] == []  # refused before submission
    resp = await api.post("/processes/BandMath/execution", json=bandmath(f"file://{path}"), headers={**alice, **ASYNC})
    assert resp.status == 201, await resp.text()
    job_id = (await resp.json())["jobID"]
    status = await ended(api, job_id, alice)
    assert status["status"] == "successful", status
    script = await (await api.get(f"/jobs/{job_id}/script", headers=alice)).text()
    assert f"--bind {path}:{path}:ro" in script and f" -il {path} " in script  # in place: no copy, no link
    inputs = await ssh_run_async(cluster, f"ls {cluster['work_root']}/alice/{job_id}/inputs 2>&1 || true")
    assert "No such file" in inputs.stdout
    out = await (await api.get(f"/jobs/{job_id}/results/out", headers=alice)).read()
    np.testing.assert_array_equal(tifffile.imread(io.BytesIO(out)), expected_sum(SCENE))


async def test_an_s3_input_staged_by_the_server(api: TestClient, cluster: dict, s3_on_bridge: S3Server) -> None:
    """The server reads the object with the site's credentials and writes it over SFTP (stage_in = "server"; this
    cluster's nodes have no curl for stage_in = "job", whose signed URLs tests/unit/test_storage_s3.py covers)."""
    s3_on_bridge.put("scenes", "a/scene.tif", SCENE)
    alice = bearer(api, "alice", EXECUTE)
    body = {**bandmath("s3://scenes/a/scene.tif"), "hpgc:outputs": {"destination": "s3://results/run-2/"}}
    resp = await api.post("/processes/BandMath/execution", json=body, headers={**alice, **ASYNC})
    assert resp.status == 201, await resp.text()
    job_id = (await resp.json())["jobID"]
    status = await ended(api, job_id, alice)
    logs = await (await api.get(f"/jobs/{job_id}/logs", headers=alice)).json()
    assert status["status"] == "successful", (status["message"], logs["stderr"][-2000:])
    script = await (await api.get(f"/jobs/{job_id}/script", headers=alice)).text()
    assert SECRET not in script and "hpgc-test-key" not in script and "s3://" not in script
    staged = await ssh_run_async(cluster, f"cat {cluster['work_root']}/alice/{job_id}/inputs/il_0.tif | sha256sum")
    assert staged.stdout.split()[0] == hashlib.sha256(SCENE).hexdigest()
    results = await (await api.get(f"/jobs/{job_id}/results", headers=alice)).json()
    delivered = s3_on_bridge.get("results", results["out"]["href"].removeprefix("s3://results/"))
    np.testing.assert_array_equal(tifffile.imread(io.BytesIO(delivered)), expected_sum(SCENE))


async def test_outputs_into_a_folder_the_user_owns(api: TestClient, cluster: dict) -> None:
    """hpgc:outputs to file:///folder/: checked and copied as the job's user; another user's folder is a 403."""
    folder = "/home/alice/hpgc-results-test"
    await ssh_run_async(cluster, f"rm -rf {folder}; mkdir -m 700 {folder}", check=True)
    alice, bob = bearer(api, "alice", EXECUTE), bearer(api, "bob", EXECUTE)
    resp = await api.post("/files", data=SCENE, headers={**bob, "Content-Type": "image/tiff"})
    bobs = (await resp.json())["href"]
    body = bandmath(bobs, **{"hpgc:outputs": {"destination": f"file://{folder}/"}})
    resp = await api.post("/processes/BandMath/execution", json=body, headers={**bob, **ASYNC})
    assert resp.status == 403, await resp.text()
    assert "not a folder your account (bob) owns" in (await resp.json())["detail"]
    resp = await api.post("/files", data=SCENE, headers={**alice, "Content-Type": "image/tiff"})
    body = bandmath((await resp.json())["href"], **{"hpgc:outputs": {"destination": f"file://{folder}/"}})
    resp = await api.post("/processes/BandMath/execution", json=body, headers={**alice, **ASYNC})
    assert resp.status == 201, await resp.text()
    job_id = (await resp.json())["jobID"]
    status = await ended(api, job_id, alice)
    assert status["status"] == "successful", status
    out = (await (await api.get(f"/jobs/{job_id}/results", headers=alice)).json())["out"]
    assert out["href"].startswith(f"file://{folder}/out") and out["href"].endswith(".tif")
    path = out["href"].removeprefix("file://")
    listed = await ssh_run_async(cluster, f"stat -c '%U' {path} && sha256sum {path}", check=True)
    owner, sha = listed.stdout.split()[0], listed.stdout.split()[1]
    written = await (await api.get(f"/jobs/{job_id}/results/out", headers=alice)).read()
    assert owner == "alice" and sha == out["hpgc:sha256"] == hashlib.sha256(written).hexdigest()
