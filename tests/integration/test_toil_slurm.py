"""CWL workflows under Toil on the real cluster: each step and scatter element its own Slurm job.

The notebooks' dNBR over 8 generated tile pairs (tests/data/toil/dnbr_tiles.cwl: 24 tool runs) runs through the
API with the cluster's Toil; its steps land on both compute nodes, its outputs equal numpy's and those of the
same workflow under cwltool. A dismiss mid-run leaves nothing in squeue; a kill -9 of hpgc mid-run loses
nothing (the leader goes on in Slurm, and the restarted backend follows the one leader to its end).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.auth.settings import AuthSettings
from hpgc.backends.slurm.backend import SlurmBackend
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.config import Settings
from hpgc.jobs.callbacks.settings import CallbackSettings
from hpgc.models.ogc import StatusCode
from hpgc.models.run import JobRef, RunSpec, StagedFile
from hpgc.net import OutboundSettings
from hpgc.packages.cwl import pack_text
from tests.integration.conftest import files_served, ssh_run, ssh_run_async

pytestmark = pytest.mark.slurm
REPO = Path(__file__).resolve().parents[2]
WORKFLOW = (REPO / "tests/data/toil/dnbr_tiles.cwl").read_text()
TOIL = "/usr/local/bin/toil-cwl-runner"
ASYNC = {"Prefer": "respond-async;return=representation"}
TILES = 8
RNG = np.random.default_rng(14)


def geotiff(bands: list[np.ndarray]) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.stack(bands), planarconfig="separate", photometric="minisblack")
    return buf.getvalue()


PRE = [[RNG.integers(100, 200, (32, 48), dtype=np.uint16) for _ in range(2)] for _ in range(TILES)]
POST = [[RNG.integers(1, 100, (32, 48), dtype=np.uint16) for _ in range(2)] for _ in range(TILES)]
FILES = {**{f"/pre{i}.tif": geotiff(PRE[i]) for i in range(TILES)},
         **{f"/post{i}.tif": geotiff(POST[i]) for i in range(TILES)}}


def nbr(img: list[np.ndarray]) -> np.ndarray:
    x, y = img[0].astype(np.float64), img[1].astype(np.float64)
    return (x - y) / (x + y)


def settings_for(cluster: dict, toil: bool) -> ClusterSettings:
    return ClusterSettings(
        host=cluster["host"], port=cluster["port"], known_hosts=cluster["known_hosts"], user="alice",
        key_file=cluster["users"]["alice"], work_root=cluster["work_root"], image_cache=cluster["image_cache"],
        container_runtime="apptainer", partition=cluster.get("partition"), account=cluster.get("account"),
        poll_min_s=0.5, poll_max_s=2, toil_cwl_runner=TOIL if toil else None, toil_leader_memory_mb=512)


@pytest.fixture(scope="module")
def has_toil(cluster: dict) -> None:
    out = ssh_run(cluster, f"{TOIL} --version")
    if out.exit_status != 0:
        pytest.fail(f"the test cluster has no Toil ({out.stderr.strip()[-300:]}): rebuild it with recipe/toil.sh")


def make_api(cluster: dict, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]],
             toil: bool) -> Awaitable[TestClient]:
    settings = Settings(data_dir=tmp_path / ("toil" if toil else "cwltool"), auth=AuthSettings(enabled=False),
                        default_backend="slurm", clusters={"test": settings_for(cluster, toil)},
                        callbacks=CallbackSettings(secret="s3cret"),
                        outbound=OutboundSettings(allowed_networks=["127.0.0.0/8"]))
    return aiohttp_client(create_app(settings))


@pytest.fixture
async def files_url() -> AsyncIterator[str]:
    async with files_served(FILES) as url:
        yield url


def execute_body(url: str, tiles: int = TILES) -> dict:
    return {"inputs": {"pre_fire": [{"href": f"{url}/pre{i}.tif", "type": "image/tiff"} for i in range(tiles)],
                       "post_fire": [{"href": f"{url}/post{i}.tif", "type": "image/tiff"} for i in range(tiles)]},
            "response": "document"}


async def start(api: TestClient, url: str, tiles: int = TILES) -> str:
    resp = await api.post("/processes?w=dnbr_tiles", data=WORKFLOW, headers={"Content-Type": "application/cwl+yaml"})
    assert resp.status == 201, await resp.text()
    resp = await api.post("/processes/dnbr_tiles/execution", json=execute_body(url, tiles), headers=ASYNC)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["jobID"]


async def finish(api: TestClient, job_id: str, timeout: float = 400) -> tuple[dict, list[str]]:
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await (await api.get(f"/jobs/{job_id}")).json()
        if status.get("message") and (not messages or messages[-1] != status["message"]):
            messages.append(status["message"])
        if status["status"] in ("successful", "failed", "dismissed"):
            return status, messages
        await asyncio.sleep(1)
    raise AssertionError(f"job {job_id} did not end in {timeout} s: {messages[-3:]}")


async def tiles_of(api: TestClient, job_id: str, cluster: dict) -> list[np.ndarray]:
    """The job's `dnbr` tiles. A File[] output is a value in results documents (hpgc links single files only):
    its paths are read from the shared file system as the host sees it."""
    results = await (await api.get(f"/jobs/{job_id}/results")).json()
    shared = Path(cluster["shared_dir_on_host"])
    return [tifffile.imread(shared / Path(item["path"]).relative_to(cluster["shared_dir"])) for item in results["dnbr"]]


async def test_scatter_runs_each_step_as_its_own_slurm_job_on_both_nodes(
        cluster: dict, has_toil: None, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]],
        files_url: str) -> None:
    toil_api = await make_api(cluster, tmp_path, aiohttp_client, toil=True)
    job_id = await start(toil_api, files_url)
    status, messages = await finish(toil_api, job_id)
    logs = await (await toil_api.get(f"/jobs/{job_id}/logs")).json()
    assert status["status"] == "successful", (status, logs["stderr"][-3000:])
    script = await (await toil_api.get(f"/jobs/{job_id}/script")).text()
    assert "--batchSystem slurm" in script and "#SBATCH --cpus-per-task=1" in script
    assert any("steps finished" in m for m in messages), messages  # progress: finished steps / issued, named
    assert any("running: " in m for m in messages), messages
    tasks = (await (await toil_api.get(f"/jobs/{job_id}/tasks")).json())["tasks"]
    assert len(tasks) == 3 * TILES and {t["status"] for t in tasks} == {"successful"}, tasks
    assert {t["node"] for t in tasks} == {"node1", "node2"}
    assert all(t["slurmJobId"] and t["stderr"].endswith(".log") for t in tasks)
    sacct = (await ssh_run_async(cluster, f"sacct -X -n -P -S now-1hours --name=hpgc-{job_id}.step "
                                 "-o JobID,State,NodeList")).stdout.split()
    assert len(sacct) == 3 * TILES and {r.split("|")[1] for r in sacct} == {"COMPLETED"}
    assert {r.split("|")[2] for r in sacct} == {"node1", "node2"}
    assert sorted(t["slurmJobId"] for t in tasks) == sorted(r.split("|")[0] for r in sacct)
    by_toil = await tiles_of(toil_api, job_id, cluster)
    for i in range(TILES):
        np.testing.assert_allclose(by_toil[i], nbr(PRE[i]) - nbr(POST[i]), rtol=1e-4, atol=1e-5)

    plain_api = await make_api(cluster, tmp_path, aiohttp_client, toil=False)
    plain_id = await start(plain_api, files_url)
    status, _ = await finish(plain_api, plain_id)
    assert status["status"] == "successful"
    assert "cwltool" in await (await plain_api.get(f"/jobs/{plain_id}/script")).text()
    assert (await plain_api.get(f"/jobs/{plain_id}/tasks")).status == 404  # one job: no steps of its own
    by_cwltool = await tiles_of(plain_api, plain_id, cluster)
    for a, b in zip(by_toil, by_cwltool, strict=True):
        np.testing.assert_array_equal(a, b)


async def test_dismiss_mid_run_leaves_no_job(
        cluster: dict, has_toil: None, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]],
        files_url: str) -> None:
    api = await make_api(cluster, tmp_path, aiohttp_client, toil=True)
    job_id = await start(api, files_url)
    names = f"hpgc-{job_id},hpgc-{job_id}.step"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # until Toil has step jobs in Slurm
        out = (await ssh_run_async(cluster, f"squeue -h --name=hpgc-{job_id}.step -o %i")).stdout.split()
        if out:
            break
        await asyncio.sleep(1)
    assert out, "no step job appeared"
    resp = await api.delete(f"/jobs/{job_id}")
    assert resp.status == 200, await resp.text()
    left = (await ssh_run_async(cluster, f"squeue -h --name={names} -o '%i %j %T'")).stdout.strip()
    assert left == "" or all(" CG" in x or "COMPLETING" in x for x in left.splitlines()), left
    await asyncio.sleep(3)  # nothing the leader was submitting when it died turns up later
    assert (await ssh_run_async(cluster, f"squeue -h --name={names} -o '%i %j %T'")).stdout.strip() == ""


CHILD = """
import asyncio, json, sys
from hpgc.backends.slurm.backend import SlurmBackend
from hpgc.backends.slurm.config import ClusterSettings
from tests.integration.test_toil_slurm import tiles_spec
async def main():
    b = SlurmBackend({"test": ClusterSettings.model_validate_json(sys.argv[1])})
    spec = tiles_spec(sys.argv[2], 2)
    print(await b.submit(spec), flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def tiles_spec(job_id: str, tiles: int) -> RunSpec:
    files = [StagedFile(path=f"inputs/{k}{i}.tif", content=FILES[f"/{k}{i}.tif"])
             for i in range(tiles) for k in ("pre", "post")]
    job = {k + "_fire": [{"class": "File", "path": f"inputs/{k}{i}.tif"} for i in range(tiles)]
           for k in ("pre", "post")}
    files += [StagedFile(path="tool.cwl", content=json.dumps(pack_text(WORKFLOW, "dnbr_tiles")).encode()),
              StagedFile(path="job.json", content=json.dumps(job).encode())]
    return RunSpec(job_id=job_id, process_id="dnbr_tiles", kind="cwl", files=files, cwl_workflow=True)


async def test_kill_9_of_hpgc_mid_run_loses_nothing(cluster: dict, has_toil: None) -> None:
    settings = settings_for(cluster, toil=True)
    spec = tiles_spec(f"toil-k9-{os.getpid()}-{int(time.time())}", 2)
    child = subprocess.Popen([sys.executable, "-c", CHILD, settings.model_dump_json(), spec.job_id],
                             stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.stdout is not None
    loop = asyncio.get_running_loop()
    external = (await loop.run_in_executor(None, child.stdout.readline)).strip()
    assert external.startswith("test:"), external
    fresh = SlurmBackend({"test": settings})
    ref = JobRef(job_id=spec.job_id, external_id=external)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # mid-run: the leader runs
            st = (await fresh.poll([ref])).get(spec.job_id)
            if st is not None and st.status == StatusCode.running:
                break
            await asyncio.sleep(1)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert await fresh.submit(spec) == external  # the restarted service submits again: the same leader
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            st = (await fresh.poll([ref])).get(spec.job_id)
            if st is not None and st.status.terminal:
                break
            await asyncio.sleep(2)
        assert st is not None and st.status == StatusCode.successful, st
        outputs = await fresh.outputs(ref)
        assert len(outputs["dnbr"]) == 2
    finally:
        await fresh.close()
    leaders = (await ssh_run_async(cluster, f"sacct -X -n -P -S now-1hours --name=hpgc-{spec.job_id} -o JobID"))
    assert len(leaders.stdout.split()) == 1
