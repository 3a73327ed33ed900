"""The Python client (hpgc.client) against the API on the real Slurm cluster: execute and wait with live
progress, results, download byte-equal to the job's file on the cluster, logs, dismiss."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from hpgc.client import AsyncClient
from hpgc.models.ogc import StatusCode, StatusInfo
from tests.integration.conftest import files_served, ssh_run_async

pytestmark = pytest.mark.slurm

WRITER = {"cwlVersion": "v1.2", "class": "CommandLineTool", "id": "slurm-writer",
          "baseCommand": ["sh", "-c"],
          "arguments": [{"position": 0, "valueFrom": (
              "for p in 25 50 75; do hpgc-progress $p \"at $p\"; sleep 2; done; printf 'from slurm' > out.txt")}],
          "inputs": {}, "outputs": {"out": {"type": "File", "outputBinding": {"glob": "out.txt"}}}}


async def test_the_client_runs_a_job_on_the_cluster(api: TestClient, cluster: dict, tmp_path: Path) -> None:
    seen: list[StatusInfo] = []
    async with AsyncClient(str(api.make_url("/")), token="unused-auth-is-off") as client:
        await client.deploy(WRITER)
        job = await client.execute("slurm-writer", {}, wait=True, progress=seen.append)
        assert job.status.status == StatusCode.successful, job.status.message
        assert job.status.progress == 100
        reported = {s.progress for s in seen if s.status == StatusCode.running}
        assert len(reported & {25, 50, 75}) >= 1, seen  # polls every 0.5-2 s: at least one of them is seen
        files = await job.download(tmp_path / "got")
        remote = await ssh_run_async(cluster, f"cat {cluster['work_root']}/alice/{job.id}/outputs/out.txt")
        assert files["out"].read_bytes() == b"from slurm" == remote.stdout.encode()
        logs = await job.logs()
        assert [e["status"] for e in logs["events"]][-1] == "successful"
        assert (await job.dismiss()).status == StatusCode.dismissed


async def test_the_notebook_flow_of_the_docs_on_the_cluster(api: TestClient, tmp_path: Path) -> None:
    """docs/clients.md's notebook flow, run as written: on Slurm both jobs succeed and their results download."""
    import asyncio
    import os
    import sys

    import numpy as np
    import tifffile

    from tests.e2e.test_client_docs import flow_block
    from tests.integration.test_api_slurm import IMAGE, POST, PRE, REPO, geotiff

    images = {"/sentinel2-subset.tif": geotiff(IMAGE), "/pre.tif": geotiff(PRE), "/post.tif": geotiff(POST)}
    work = tmp_path / "work"
    work.mkdir()
    (work / "appkgs").symlink_to(REPO / "appkgs")
    (work / "flow.py").write_text(flow_block())
    async with files_served(images) as data_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HPGC_")}
        env.update(HPGC_URL=str(api.make_url("/")).rstrip("/"), DATA_URL=data_url, HPGC_TOKEN="unused-auth-is-off",
                   XDG_CONFIG_HOME=str(tmp_path / "cfg"), PYTHONPATH=str(REPO))
        # the server runs in this event loop: the script must not block it
        proc = await asyncio.create_subprocess_exec(sys.executable, "flow.py", cwd=work, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 600)
    stdout = out.decode()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert "deployed BandMath\ndeployed dnbr\n" in stdout
    assert "BandMath results:" in stdout and "dnbr results:" in stdout, stdout
    band_math = tifffile.imread(work / "results" / "BandMath" / "out.tiff")
    np.testing.assert_allclose(band_math, IMAGE[0].astype(np.float64) + IMAGE[1], rtol=1e-6)
    assert tifffile.imread(work / "results" / "dnbr" / "dnbr.tiff").shape == (20, 30)
