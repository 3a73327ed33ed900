"""Resources through the API: a CWL tool's requirements and a request's `hpgc:resources` reach the backend's
RunSpec (fake backend) and the #SBATCH lines (the Slurm backend over the fake Slurm); a request over a limit is a
400 before any job is stored; the status document shows what the job asked for and, once over, what it used."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hpgc.models.resources import ResourceLimits
from hpgc.models.run import Resources
from tests.api.fake_backend import FakeBackend, submitted
from tests.api.test_api_slurm_fake import Site, fake_slurm_site
from tests.api.waits import job_reaches
from tests.ogc_schemas import validate

REPO = Path(__file__).resolve().parents[2]
ASYNC = {"Prefer": "respond-async"}
CWL = {"Content-Type": "application/cwl+yaml"}
TOOL = """
cwlVersion: v1.2
class: CommandLineTool
id: sized
requirements:
  ResourceRequirement: {coresMin: $(inputs.threads), coresMax: 8, ramMin: 1024}
  ToolTimeLimit: {timelimit: 600}
baseCommand: "true"
inputs:
  threads: {type: int, default: 2}
outputs: []
"""


async def deploy(client: TestClient, text: str = TOOL) -> None:
    resp = await client.post("/processes", data=text, headers=CWL)
    assert resp.status == 201, await resp.text()


async def execute(client: TestClient, body: dict[str, Any], process: str = "sized") -> tuple[int, dict[str, Any]]:
    resp = await client.post(f"/processes/{process}/execution", json=body, headers=ASYNC)
    return resp.status, await resp.json()


async def test_the_tools_requirements_and_the_request_reach_the_run_spec(
        client: TestClient, fake_backend: FakeBackend) -> None:
    fake_backend.manifest = {}
    await deploy(client)
    status, doc = await execute(client, {"inputs": {"threads": 4}})
    assert status == 201, doc
    spec = await submitted(fake_backend, doc["jobID"])
    assert spec.resources == Resources(cpus=4, memory_mb=1024, time_limit_s=600)  # $(inputs.threads) = 4
    status, doc = await execute(client, {"inputs": {}, "hpgc:resources": {"cpus": 8, "memory": "4G", "time": 3600}})
    assert status == 201, doc
    spec = await submitted(fake_backend, doc["jobID"])
    assert spec.resources == Resources(cpus=8, memory_mb=4096, time_limit_s=3600)
    job = await job_reaches(client, doc["jobID"])
    validate(job, "statusInfo.yaml")
    assert job["hpgc:resources"] == {"cpus": 8, "memory": "4096M", "time": "1:00:00"}
    assert "hpgc:usage" not in job  # the fake backend reports none


@pytest.mark.parametrize(("resources", "detail"), [
    ({"cpus": 9}, "hpgc:resources: cpus 9 is more than 8, the most the process (its CWL requirements) allows"),
    ({"cpus": 1}, "hpgc:resources: cpus 1 is less than 2, the least the process needs (its own requirement)"),
    ({"partition": "gpu"}, "hpgc:resources: partition 'gpu' is not one the local backend allows; partitions: none"),
    ({"gpus": 1}, None),  # accepted: advisory on a backend with no limits
])
async def test_over_a_limit_is_a_400_before_any_job_exists(
        client: TestClient, fake_backend: FakeBackend, resources: dict[str, Any], detail: str | None) -> None:
    await deploy(client)
    status, doc = await execute(client, {"inputs": {}, "hpgc:resources": resources})
    if detail is None:
        assert status == 201, doc
        return
    assert (status, doc["detail"]) == (400, detail)
    validate(doc, "exception.yaml")
    jobs = await (await client.get("/jobs")).json()
    assert jobs["jobs"] == [] and fake_backend.submissions == []


async def test_the_backends_site_limits_are_asked_for_the_jobs_cluster(
        client: TestClient, fake_backend: FakeBackend) -> None:
    asked: list[str | None] = []

    def limits(cluster: str | None) -> ResourceLimits:
        asked.append(cluster)
        return ResourceLimits(memory_mb=2048, where="cluster 'small'", setting="clusters.small.")

    fake_backend.resource_limits = limits  # type: ignore[method-assign]
    await deploy(client)
    status, doc = await execute(client, {"inputs": {}, "hpgc:resources": {"memory": "3G"}})
    assert (status, doc["detail"]) == (400, "hpgc:resources: memory 3072 MiB is more than 2048 MiB, the most cluster "
                                             "'small' allows (setting clusters.small.max_memory_mb)")
    assert asked == [None]


@pytest.mark.parametrize("member", [{"cpus": 2, "colour": "red"}, {"memory": "a lot"}, {"time": "tomorrow"},
                                    {"partition": "x\n#SBATCH --uid=0"}, {"partition": "gpu; rm -rf /"},
                                    {"cpus": "8"}, "8 cpus"])
async def test_bad_members_are_400_naming_the_member(client: TestClient, fake_backend: FakeBackend,
                                                     member: Any) -> None:
    await deploy(client)
    status, doc = await execute(client, {"inputs": {}, "hpgc:resources": member})
    assert status == 400, doc
    assert "hpgc:resources" in doc["detail"]
    assert fake_backend.submissions == []


async def test_javascript_resources_are_refused_at_deploy(client: TestClient) -> None:
    text = TOOL.replace("$(inputs.threads)", "$(inputs.threads * 2)").replace(
        "requirements:", "requirements:\n  InlineJavascriptRequirement: {}")
    resp = await client.post("/processes", data=text, headers=CWL)
    assert resp.status == 400
    assert "this server evaluates only parameter references such as $(inputs.threads) in resources, not " \
           "JavaScript" in (await resp.json())["detail"]


async def test_a_process_without_requirements_sets_no_ceiling(client: TestClient, fake_backend: FakeBackend) -> None:
    status, doc = await execute(client, {"inputs": {"stringInput": "x"}, "hpgc:resources": {"cpus": 64}}, "echo")
    assert status == 201, doc
    assert (await submitted(fake_backend, doc["jobID"])).resources == Resources(cpus=64)


# --- the Slurm backend over the fake Slurm: #SBATCH lines, the cluster's limits, sacct's usage ---------------------
@pytest.fixture
async def slurm(tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> AsyncIterator[Site]:
    async with fake_slurm_site(tmp_path, aiohttp_client, partition="cpu", max_cpus=16, max_time="4:00:00",
                               partitions=["cpu", "gpu"]) as s:
        yield s


async def test_sbatch_lines_limits_and_usage_on_slurm(slurm: Site) -> None:
    await deploy(slurm.client)
    status, doc = await execute(slurm.client, {"inputs": {}, "hpgc:resources": {"time": "5:00:00"}})
    assert (status, doc["detail"]) == (400, "hpgc:resources: time 5:00:00 (18000 s) is more than 4:00:00 (14400 s), "
                                             "the most cluster 'fake' allows (setting clusters.fake.max_time)")
    status, doc = await execute(slurm.client, {"inputs": {"threads": 3}, "hpgc:resources": {
        "memory": "2G", "partition": "gpu"}})
    assert status == 201, doc
    job_id = doc["jobID"]
    await slurm.job_where(job_id, lambda d: d.get("message") == "queued in Slurm: PENDING", "queued")
    script = await (await slurm.client.get(f"/jobs/{job_id}/script")).text()
    lines = [ln for ln in script.splitlines() if ln.startswith("#SBATCH --") and "=/" not in ln
             and "--job-name" not in ln]
    assert lines == ["#SBATCH --cpus-per-task=3", "#SBATCH --mem=2048M", "#SBATCH --time=0:10:00",
                     "#SBATCH --partition=gpu"]
    (slurm.job_dir(job_id) / "outputs.json").write_text("{}")
    slurm.slurm(job_id, state="COMPLETED", exit="0:0")
    done = await slurm.job_where(job_id, lambda d: d["status"] != "accepted", "finished")
    assert done["status"] == "successful", done
    validate(done, "statusInfo.yaml")
    assert done["hpgc:resources"] == {"cpus": 3, "memory": "2048M", "time": "0:10:00", "partition": "gpu"}
    # what the fake sacct reports for every job (the batch step's MaxRSS)
    assert done["hpgc:usage"] == {"Elapsed": "00:00:01", "TotalCPU": "00:00.100", "MaxRSS": "2048K"}


async def test_the_openapi_execute_schema_documents_the_member(client: TestClient) -> None:
    doc = await (await client.get("/api", headers={"Accept": "application/vnd.oai.openapi+json;version=3.0"})).json()
    schemas = doc["components"]["schemas"]
    member = schemas["Execute"]["properties"]["hpgc:resources"]
    assert "within what the process and the site allow" in member["description"]
    assert set(schemas["ResourceRequest"]["properties"]) == {"cpus", "memory", "time", "tmp", "gpus", "partition",
                                                                 "account", "qos"}
    assert schemas["ResourceRequest"]["additionalProperties"] is False
