"""Part 2 Deploy, Replace, Undeploy through the API (fake backend: the translation is checked, not a run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.api.fake_backend import FakeBackend, submitted
from tests.ogc_schemas import validate

REPO = Path(__file__).resolve().parents[2]
BANDMATH = (REPO / "appkgs/BandMath/package.json").read_text()
PKG = {"Content-Type": "application/ogcapppkg+json"}
EXC2 = "http://www.opengis.net/def/exceptions/ogcapi-processes-2/1.0"
TOOL = """cwlVersion: v1.2
class: CommandLineTool
id: wc
baseCommand: [wc, -c]
inputs:
  f: {type: File, inputBinding: {position: 1}}
stdout: count.txt
outputs:
  count: {type: File, outputBinding: {glob: count.txt}}
"""


async def _deploy_bandmath(client: TestClient) -> None:
    resp = await client.post("/processes?w=BandMath", data=BANDMATH, headers=PKG)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Location"].endswith("/processes/BandMath")
    validate(await resp.json(), "processSummary.yaml")


async def test_deploy_describe_execute_bandmath(client: TestClient, fake_backend: FakeBackend) -> None:
    await _deploy_bandmath(client)
    desc = await (await client.get("/processes/BandMath")).json()
    validate(desc, "process.yaml")
    assert desc["additionalParameters"] == {"parameters": [{"name": "entry-point", "value": [
        "singularity exec otbtf_4.1.0-cpu.sif /opt/otbtf/bin/otbcli_BandMath"]}]}
    assert desc["inputs"]["il"]["additionalParameters"]["parameters"][1]["name"] == "array-pattern"
    body = {"inputs": {"il": [{"href": "http://data.example.org/a.tif"}, {"href": "http://data.example.org/b.tif"}],
                       "out": "float", "exp": "im1b1+im1b2", "ram": 256},
            "outputs": {"out": {"format": {"mediaType": "image/png"}, "transmissionMode": "reference"}},
            "response": "document"}
    resp = await client.post("/processes/BandMath/execution", json=body,
                             headers={"Prefer": "respond-async;return=representation"})
    assert resp.status == 201, await resp.text()
    spec = await submitted(fake_backend, (await resp.json())["jobID"])
    # the site's pre-seeded file where it exists, else the reference pulled under a name with its digest
    assert spec.container is not None and spec.container.site_image == "otbtf_4.1.0-cpu.sif"
    assert spec.container.image == "otbtf_4.1.0-cpu-41faafe128236ad4.sif"
    assert spec.container.source == "docker://otbtf/4.1.0-cpu"
    assert spec.argv == ["/opt/otbtf/bin/otbcli_BandMath", "-il", "inputs/il_0.tif", "inputs/il_1.tif",
                         "-ram", "256", "-exp", "im1b1+im1b2", "-out", "outputs/out.png", "float"]
    assert [f.href for f in spec.files] == ["http://data.example.org/a.tif", "http://data.example.org/b.tif"]
    assert spec.outputs == {"out": "outputs/out.png"}


async def test_shell_metacharacters_stay_one_argument(client: TestClient, fake_backend: FakeBackend) -> None:
    await _deploy_bandmath(client)
    evil = "im1b1; rm -rf ~ $(reboot) `id`"
    resp = await client.post("/processes/BandMath/execution", headers={"Prefer": "respond-async"},
                             json={"inputs": {"il": [{"href": "http://data.example.org/a.tif"}], "exp": evil}})
    spec = await submitted(fake_backend, (await resp.json())["jobID"])
    assert spec.argv[spec.argv.index("-exp") + 1] == evil


async def test_duplicate_replace_undeploy(client: TestClient) -> None:
    await _deploy_bandmath(client)
    again = await client.post("/processes?w=BandMath", data=BANDMATH, headers=PKG)
    assert again.status == 409 and (await again.json())["type"] == f"{EXC2}/duplicated-process"
    changed = json.loads(BANDMATH)
    changed["processDescription"]["title"] = "BandMath v2"
    resp = await client.put("/processes/BandMath", data=json.dumps(changed), headers=PKG)
    assert resp.status == 204
    assert (await (await client.get("/processes/BandMath")).json())["title"] == "BandMath v2"
    pkg = await (await client.get("/processes/BandMath/package")).json()
    assert pkg["processDescription"]["title"] == "BandMath v2"
    assert (await client.delete("/processes/BandMath")).status == 204
    assert (await client.get("/processes/BandMath")).status == 404
    assert (await client.delete("/processes/BandMath")).status == 404


async def test_builtins_are_immutable(client: TestClient) -> None:
    resp = await client.delete("/processes/echo")
    assert resp.status == 403 and (await resp.json())["type"] == f"{EXC2}/immutable-process"


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda p: p["processDescription"].pop("additionalParameters"), "entry-point"),
        (lambda p: p["processDescription"]["outputs"]["out"]["additionalParameters"][0].update(
            value="-name value inputs_nope_value"), "nope"),
        (lambda p: p.pop("executionUnit"), "executionUnit"),
        (lambda p: p["executionUnit"].update(type="fortran"), "executionUnit"),
        (lambda p: p["processDescription"]["inputs"]["il"].update(maxOccurs="lots"), "maxOccurs"),
    ],
)
async def test_invalid_packages_say_what_is_wrong(client: TestClient, mutate, needle: str) -> None:
    pkg = json.loads(BANDMATH)
    mutate(pkg)
    resp = await client.post("/processes", data=json.dumps(pkg), headers=PKG)
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    validate(body, "exception.yaml")
    assert needle in body["detail"]


async def test_unsupported_media_type(client: TestClient) -> None:
    resp = await client.post("/processes", data="<xml/>", headers={"Content-Type": "application/xml"})
    assert resp.status == 415 and resp.content_type == "application/problem+json"


async def test_deploy_cwl_yaml_and_run(client: TestClient, fake_backend: FakeBackend) -> None:
    resp = await client.post("/processes", data=TOOL, headers={"Content-Type": "application/cwl+yaml"})
    assert resp.status == 201, await resp.text()
    desc = await (await client.get("/processes/wc")).json()
    validate(desc, "process.yaml")
    assert desc["inputs"]["f"]["schema"]["contentEncoding"] == "binary"
    resp = await client.post("/processes/wc/execution", headers={"Prefer": "respond-async"},
                             json={"inputs": {"f": {"value": "aGVsbG8=", "mediaType": "text/plain",
                                                    "encoding": "base64"}}})
    spec = await submitted(fake_backend, (await resp.json())["jobID"])
    job = json.loads(next(f.content for f in spec.files if f.path == "job.json"))
    assert job == {"f": {"class": "File", "path": "inputs/f_0.txt"}}
    assert next(f.content for f in spec.files if f.path == "inputs/f_0.txt") == b"hello"
    src = await client.get("/processes/wc/package")
    assert "baseCommand" in await src.text()


async def test_cwl_graph_needs_w(client: TestClient) -> None:
    graph = {"cwlVersion": "v1.2", "$graph": [
        {"id": "a", "class": "CommandLineTool", "baseCommand": "true", "inputs": [], "outputs": []},
        {"id": "b", "class": "CommandLineTool", "baseCommand": "false", "inputs": [], "outputs": []}]}
    headers = {"Content-Type": "application/cwl+json"}
    resp = await client.post("/processes?w=zzz", data=json.dumps(graph), headers=headers)
    assert resp.status == 400 and (await resp.json())["type"] == f"{EXC2}/workflow-not-found"
    resp = await client.post("/processes?w=b", data=json.dumps(graph), headers=headers)
    assert resp.status == 201, await resp.text()
    assert (await (await client.get("/processes/b")).json())["id"] == "b"


async def test_invalid_cwl_is_400(client: TestClient) -> None:
    resp = await client.post("/processes?w=x", data="cwlVersion: v1.2\nclass: CommandLineTool\ninputs: 3\n",
                             headers={"Content-Type": "application/cwl+yaml"})
    assert resp.status == 400
    assert "CWL" in (await resp.json())["detail"]


async def test_conformance_declares_part2(client: TestClient) -> None:
    doc = await (await client.get("/conformance")).json()
    assert "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf/deploy-replace-undeploy" in doc["conformsTo"]


async def test_example_cwl_packages_deploy(client: TestClient) -> None:
    ratio = (REPO / "appkgs/band-ratio/band-ratio.cwl").read_text()
    resp = await client.post("/processes", data=ratio, headers={"Content-Type": "application/cwl+yaml"})
    assert resp.status == 201, await resp.text()
    desc = await (await client.get("/processes/band-ratio")).json()
    validate(desc, "process.yaml")
    assert desc["inputs"]["image"]["schema"]["contentMediaType"] == "image/tiff"
    assert desc["inputs"]["band_a"]["minOccurs"] == 0  # it has a default
    dnbr = (REPO / "appkgs/dnbr/dnbr.cwl").read_text()
    resp = await client.post("/processes?w=dnbr", data=dnbr, headers={"Content-Type": "application/cwl+yaml"})
    assert resp.status == 201, await resp.text()
    desc = await (await client.get("/processes/dnbr")).json()
    assert set(desc["inputs"]) == {"pre_fire", "post_fire"} and set(desc["outputs"]) == {"dnbr"}
    assert desc["outputs"]["dnbr"]["schema"]["contentMediaType"] == "image/tiff"


async def test_openapi_has_dru_operations(client: TestClient) -> None:
    doc = await (await client.get("/api")).json()
    assert "post" in doc["paths"]["/processes"]
    assert {"put", "delete"} <= set(doc["paths"]["/processes/{processId}"])
    from openapi_spec_validator import validate as validate_openapi

    validate_openapi(doc)


async def test_slow_image_pull_does_not_block_deploy(client: TestClient, fake_backend: FakeBackend,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    warm_up = await client.post("/processes?w=BandMath", data=BANDMATH, headers=PKG)  # starts a deploy worker
    assert warm_up.status == 201 and (await client.delete("/processes/BandMath")).status == 204
    fake_backend.pulled.clear()
    gate = asyncio.Event()  # the pull cannot end before the test opens it
    pulls: list[asyncio.Task] = []
    pull = fake_backend.ensure_image

    async def slow_pull(container: object, cluster: str | None) -> None:
        pulls.append(asyncio.current_task())  # type: ignore[arg-type]
        await gate.wait()
        await pull(container)  # type: ignore[arg-type]

    monkeypatch.setattr(fake_backend, "ensure_image", slow_pull)
    resp = await client.post("/processes?w=BandMath", data=BANDMATH, headers=PKG)
    assert resp.status == 201  # answered while the pull is held: the deploy did not wait for it
    assert (await resp.json())["hpgc:status"] == "deploying" and fake_backend.pulled == []
    early = await client.post("/processes/BandMath/execution", json={"inputs": {"il": [{"href": "http://x/a.tif"}],
                                                                                "exp": "im1b1"}})
    assert early.status == 409 and "not ready" in (await early.json())["detail"]
    gate.set()
    await asyncio.wait_for(pulls[0], 10)  # the pull and the process's new status, recorded
    assert fake_backend.pulled == ["otbtf_4.1.0-cpu-41faafe128236ad4.sif"]
    late = await client.post("/processes/BandMath/execution", headers={"Prefer": "respond-async"},
                             json={"inputs": {"il": [{"href": "http://x/a.tif"}], "exp": "im1b1"}})
    assert late.status == 201


async def test_failed_pull_is_the_process_status(client: TestClient, fake_backend: FakeBackend) -> None:
    fake_backend.pull_error = "manifest unknown"
    resp = await client.post("/processes?w=BandMath", data=BANDMATH, headers=PKG)
    assert resp.status == 201
    assert "manifest unknown" in (await resp.json())["hpgc:status"]
    run = await client.post("/processes/BandMath/execution", json={"inputs": {"il": [{"href": "http://x/a.tif"}],
                                                                              "exp": "im1b1"}})
    assert run.status == 409 and "manifest unknown" in (await run.json())["detail"]


async def test_a_package_names_its_cluster(client: TestClient, fake_backend: FakeBackend) -> None:
    fake_backend.cluster_names = ["small", "gpu"]
    pkg = json.loads(BANDMATH)
    pkg["processDescription"]["additionalParameters"].append({"name": "cluster", "value": "gpu"})
    assert (await client.post("/processes", data=json.dumps(pkg), headers=PKG)).status == 201
    resp = await client.post("/processes/BandMath/execution", headers={"Prefer": "respond-async"},
                             json={"inputs": {"il": [{"href": "http://x/a.tif"}], "exp": "im1b1"}})
    assert (await submitted(fake_backend, (await resp.json())["jobID"])).cluster == "gpu"


async def test_docker_unit_config_becomes_sbatch_resources(client: TestClient, fake_backend: FakeBackend) -> None:
    from hpgc.backends.slurm.config import ClusterSettings
    from hpgc.backends.slurm.script import sbatch_options

    pkg = {"processDescription": {
        "id": "ndvi", "version": "1.0.0", "inputs": {"red": {"schema": {"type": "number"}}}, "outputs": {},
        "additionalParameters": [{"name": "entry-point", "value": "/app/ndvi"}]},
        "executionUnit": {"type": "docker", "image": "mydocker/ndvi:latest", "deployment": "hpc",
                          "config": {"cpuMin": 2, "cpuMax": 5, "memoryMin": 1.5, "memoryMax": 3,
                                     "storageTempMin": 10, "jobTimeout": 5400}}}
    assert (await client.post("/processes", data=json.dumps(pkg), headers=PKG)).status == 201
    resp = await client.post("/processes/ndvi/execution", headers={"Prefer": "respond-async"},
                             json={"inputs": {"red": 0.25}})
    spec = await submitted(fake_backend, (await resp.json())["jobID"])
    assert spec.container.image == "mydocker_ndvi_latest-5860a7c871a809a3.sif"
    assert spec.argv == ["/app/ndvi", "-red", "0.25"]
    assert (spec.resources.cpus, spec.resources.memory_mb, spec.resources.tmp_mb, spec.resources.time_limit_s) == (
        2, 1536, 10240, 5400)
    cluster = ClusterSettings(host="h", known_hosts=Path("/dev/null"), user="u", work_root="/w")
    lines = sbatch_options(spec, cluster, "/w/u/j").lines()
    for expected in ("--cpus-per-task=2", "--mem=1536M", "--tmp=10240M", "--time=1:30:00"):
        assert any(expected in line for line in lines), (expected, lines)


async def test_an_image_no_process_uses_leaves_the_cache(client: TestClient, fake_backend: FakeBackend) -> None:
    """Undeploy or replace: the pulled image goes once the last process using it has; not before."""
    pulled = "otbtf_4.1.0-cpu-41faafe128236ad4.sif"
    await _deploy_bandmath(client)
    twin = json.loads(BANDMATH)
    twin["processDescription"]["id"] = "BandMath2"
    assert (await client.post("/processes", json=twin, headers=PKG)).status == 201
    assert (await client.delete("/processes/BandMath")).status == 204
    assert fake_backend.removed_images == []  # BandMath2 still runs with it
    other = json.loads(BANDMATH)
    other["processDescription"]["id"] = "BandMath2"
    other["executionUnit"]["image"] = "docker://otbtf/4.2.0-cpu"
    assert (await client.put("/processes/BandMath2", json=other, headers=PKG)).status == 204
    assert fake_backend.removed_images == [pulled]  # replaced by a package with another image
    assert (await client.delete("/processes/BandMath2")).status == 204
    assert fake_backend.removed_images[0] == pulled and len(fake_backend.removed_images) == 2
    assert fake_backend.removed_images[1] != pulled  # the replacement's own image, now unused too
