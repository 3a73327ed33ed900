"""The Python client (hpgc.client) against the API on the real Slurm cluster: execute and wait with live
progress, results, download byte-equal to the job's file on the cluster, logs, dismiss."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from hpgc.client import AsyncClient
from hpgc.models.ogc import StatusCode, StatusInfo
from tests.integration.conftest import ssh_run_async

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
