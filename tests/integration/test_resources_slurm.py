"""Issue 13's "Done when" for resources, on the real Slurm cluster: a CWL tool with
`ResourceRequirement: {coresMin: 2, ramMin: 1024}` and `ToolTimeLimit` runs with the matching #SBATCH lines,
checked in the script hpgc shows and in what Slurm itself recorded (sacct's ReqCPUS, ReqMem, Timelimit); a
request's `hpgc:resources` raises them; the finished job's status document carries sacct's usage.

Run (cluster up, `sudo slurm-test-cluster/up`):
    HPGC_REQUIRE_CLUSTER=1 .venv/bin/python -m pytest -q -p no:cacheprovider -m slurm \
        tests/integration/test_resources_slurm.py
"""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp.test_utils import TestClient

from tests.integration.conftest import ssh_run_async
from tests.integration.test_api_slurm import succeeded

pytestmark = pytest.mark.slurm
ASYNC = {"Prefer": "respond-async"}
TOOL = """
cwlVersion: v1.2
class: CommandLineTool
id: sized-echo
requirements:
  ResourceRequirement: {coresMin: 2, ramMin: 1024}
  ToolTimeLimit: {timelimit: 600}
baseCommand: echo
arguments: [sized]
stdout: out.txt
inputs: []
outputs:
  out: {type: stdout}
"""


def mib(req_mem: str) -> float:
    """sacct's ReqMem in MiB, whatever the Slurm version writes: '1024M', '1G', '1024Mn' (per node), '512Mc'."""
    m = re.fullmatch(r"([0-9.]+)([KMGT])[nc]?", req_mem.strip())
    assert m is not None, f"unexpected ReqMem {req_mem!r}"
    return float(m.group(1)) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[m.group(2)]


async def finished(api: TestClient, body: dict, timeout: float = 300) -> dict:
    """Run sized-echo, insist it succeeded; → its status document."""
    job_id = await succeeded(api, "sized-echo", body, timeout)
    return await (await api.get(f"/jobs/{job_id}")).json()


async def sacct_request(cluster: dict, job_id: str) -> tuple[str, str, str]:
    """(ReqCPUS, ReqMem, Timelimit) as Slurm recorded them for hpgc's job (its name is hpgc-<job id>)."""
    out = ""
    for _ in range(60):  # slurmdbd may lag behind slurmctld for a moment
        done = await ssh_run_async(cluster, f"sacct -X -n -P -S now-3hours --name=hpgc-{job_id} "
                                            "--format=ReqCPUS,ReqMem,Timelimit", check=True)
        out = str(done.stdout).strip()
        if out:
            break
        await asyncio.sleep(1)
    lines = out.splitlines()
    assert len(lines) == 1, f"sacct: {out!r}"
    cpus, mem, limit = lines[0].split("|")
    return cpus, mem, limit


async def test_cwl_resource_requirements_reach_sbatch_and_sacct(api: TestClient, cluster: dict) -> None:
    resp = await api.post("/processes", data=TOOL, headers={"Content-Type": "application/cwl+yaml"})
    assert resp.status == 201, await resp.text()

    # the tool's own requirement
    status = await finished(api, {"inputs": {}})
    job_id = status["jobID"]
    script = await (await api.get(f"/jobs/{job_id}/script")).text()
    sbatch = [line for line in script.splitlines() if line.startswith("#SBATCH ")]
    for line in ("#SBATCH --cpus-per-task=2", "#SBATCH --mem=1024M", "#SBATCH --time=0:10:00"):
        assert line in sbatch, sbatch
    cpus, mem, limit = await sacct_request(cluster, job_id)
    assert (cpus, mib(mem), limit) == ("2", 1024, "00:10:00")
    assert status["hpgc:resources"] == {"cpus": 2, "memory": "1024M", "time": "0:10:00"}
    assert "Elapsed" in status.get("hpgc:usage", {}), status  # what sacct reported once the job ended

    # a request raising them, within what the cluster allows
    status = await finished(api, {"inputs": {}, "hpgc:resources": {"cpus": 3, "memory": "1536M", "time": 1200}})
    job_id = status["jobID"]
    script = await (await api.get(f"/jobs/{job_id}/script")).text()
    for line in ("#SBATCH --cpus-per-task=3", "#SBATCH --mem=1536M", "#SBATCH --time=0:20:00"):
        assert line in script.splitlines(), script
    cpus, mem, limit = await sacct_request(cluster, job_id)
    assert (cpus, mib(mem), limit) == ("3", 1536, "00:20:00")

    # below the tool's own minimum: refused before anything reaches Slurm
    resp = await api.post("/processes/sized-echo/execution", json={"inputs": {}, "hpgc:resources": {"cpus": 1}},
                          headers=ASYNC)
    assert resp.status == 400
    assert (await resp.json())["detail"] == ("hpgc:resources: cpus 1 is less than 2, the least the process needs "
                                             "(its own requirement)")
