"""Process ids refused where they enter, image names in deployed packages, per-user limits (429)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.auth.settings import AuthSettings
from hpgc.config import Settings
from hpgc.jobs.limits import LimitSettings
from hpgc.packages.registry import ProcessRegistry
from hpgc.store import Store
from tests.api.fake_backend import FakeBackend
from tests.api.test_auth_http import bearer

REPO = Path(__file__).resolve().parents[2]
PKG = {"Content-Type": "application/ogcapppkg+json"}
CWL = {"Content-Type": "application/cwl+yaml"}
DEPLOY = "hpgc:execute hpgc:deploy"
BAD_IDS = ["../../etc", "a/b", "x\r\nSet-Cookie: a=b", "a" * 200, ".hidden", "-rf", "a b"]


def package(process_id: Any, image: str | None = None, entry: str = "/bin/true") -> str:
    unit: dict[str, Any] = {"type": "SLURM", **({"image": image} if image else {})}
    return json.dumps({"processDescription": {
        "id": process_id, "version": "1.0.0", "inputs": {}, "outputs": {},
        "additionalParameters": [{"name": "entry-point", "value": entry}]}, "executionUnit": unit})


def tool(process_id: str) -> str:
    return (f"cwlVersion: v1.2\nclass: CommandLineTool\nid: {json.dumps(process_id)}\nbaseCommand: [echo]\n"
            "inputs: []\noutputs: []\n")


async def listed(client: TestClient, **headers: str) -> list[str]:
    return [p["id"] for p in (await (await client.get("/processes", headers=headers)).json())["processes"]]


async def assert_problem(resp: Any, status: int, *parts: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    for part in parts:
        assert part in body["detail"], body["detail"]
    return body


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_deploy_refuses_bad_process_ids(client: TestClient, bad: str) -> None:
    resp = await client.post("/processes", data=package(bad), headers=PKG)
    body = await assert_problem(resp, 400, "is not allowed: a process id is")
    assert repr(bad[:60]) in body["detail"]
    assert "Location" not in resp.headers
    resp = await client.post(f"/processes?w={bad.replace(chr(13), '%0D').replace(chr(10), '%0A')}",
                             data=package(None), headers=PKG)
    await assert_problem(resp, 400, "is not allowed")
    resp = await client.post("/processes", data=tool(bad), headers=CWL)
    await assert_problem(resp, 400)
    assert await listed(client) == ["echo", "sleep"]


async def test_a_non_string_id_is_refused(client: TestClient) -> None:
    await assert_problem(await client.post("/processes", data=package(7), headers=PKG), 400)


async def test_replace_refuses_a_bad_body_id(client: TestClient) -> None:
    assert (await client.post("/processes", data=package("tool"), headers=PKG)).status == 201
    await assert_problem(await client.put("/processes/tool", data=package("../x"), headers=PKG), 400, "'../x'")
    # a valid, different id in the body still replaces the process named in the path (as before)
    assert (await client.put("/processes/tool", data=package("other"), headers=PKG)).status == 204
    assert await listed(client) == ["echo", "sleep", "tool"]
    assert (await client.get("/processes/..%2F..%2Fetc")).status == 404


def test_builtin_folders_with_bad_names_are_not_loaded(tmp_path: Path) -> None:
    for name in ("good", "bad name", "_ok"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "echo.cwl").write_text((REPO / "appkgs/echo/echo.cwl").read_text())
    (tmp_path / "_ok" / "process.json").write_text(json.dumps({"id": "x/y"}))  # an override is checked too
    registry = ProcessRegistry(Store(":memory:"))
    assert registry.load_builtins(tmp_path, ["*"]) == ["good"]


@pytest.mark.parametrize(("image", "entry"), [
    ("/home/bob/evil.sif", "/bin/true"), ("../x.sif", "/bin/true"), ("docker-archive:/tmp/x.tar", "/bin/true"),
    ("file:///etc/passwd", "/bin/true"), ("a_b_c-a780b26c0f2884f6.sif", "/bin/true"),
    (None, "singularity exec /data/images/other.sif /bin/true"),
    ("docker://evil/x", "singularity exec a_b_c-a780b26c0f2884f6.sif /bin/true"),
])
async def test_deploy_refuses_images_outside_the_rule(client: TestClient, fake_backend: FakeBackend,
                                                      image: str | None, entry: str) -> None:
    resp = await client.post("/processes", data=package("tool", image, entry), headers=PKG)
    await assert_problem(resp, 400)
    assert fake_backend.pulled == [] and await listed(client) == ["echo", "sleep"]


async def test_colliding_references_pull_into_distinct_files(client: TestClient, fake_backend: FakeBackend) -> None:
    for i, ref in enumerate(["docker://a/b_c", "docker://a_b/c", "docker://a/b:c"]):
        assert (await client.post("/processes", data=package(f"t{i}", ref), headers=PKG)).status == 201
    assert fake_backend.pulled == ["a_b_c-a780b26c0f2884f6.sif", "a_b_c-25400f655020b94d.sif",
                                   "a_b_c-97679ef11a12e241.sif"]


# limits ------------------------------------------------------------------------------------------------
@pytest.fixture
async def limited(aiohttp_client: Any, settings: Settings, fake_backend: FakeBackend) -> TestClient:
    app = create_app(settings.model_copy(update={
        "auth": AuthSettings(), "limits": LimitSettings(active_jobs_per_user=5, processes_per_user=2,
                                                        retry_after_s=7)}), backends={"local": fake_backend})
    return await aiohttp_client(app)


async def test_active_jobs_per_user(limited: TestClient) -> None:
    alice, bob = bearer(limited, "alice"), bearer(limited, "bob")

    async def sleep(who: dict[str, str]) -> Any:
        return await limited.post("/processes/sleep/execution", json={"inputs": {"seconds": 60}},
                                  headers={**who, "Prefer": "respond-async"})

    answers = await asyncio.gather(*(sleep(alice) for _ in range(30)))
    assert sorted(r.status for r in answers).count(201) == 5
    refused = [r for r in answers if r.status != 201]
    assert len(refused) == 25
    for resp in refused:
        body = await assert_problem(resp, 429, "5 jobs accepted or running")
        assert resp.headers["Retry-After"] == "7"
        assert body["limit"] == "active_jobs_per_user" and body["setting"] == "limits.active_jobs_per_user"
        assert body["value"] == 5 and body["title"] == "Too Many Requests"
    assert (await sleep(bob)).status == 201  # another user is not affected
    # a job that ends frees its place
    first = next(r for r in answers if r.status == 201)
    assert (await limited.delete(f"/jobs/{(await first.json())['jobID']}", headers=alice)).status == 200
    assert (await sleep(alice)).status == 201
    assert (await sleep(alice)).status == 429


async def test_deployed_processes_per_user(limited: TestClient) -> None:
    alice, bob = bearer(limited, "alice", DEPLOY), bearer(limited, "bob", DEPLOY)
    answers = await asyncio.gather(*(limited.post("/processes", data=package(f"a{i}"), headers={**PKG, **alice})
                                     for i in range(6)))
    assert sorted(r.status for r in answers) == [201, 201, 429, 429, 429, 429]
    refused = next(r for r in answers if r.status == 429)
    body = await assert_problem(refused, 429, "deployed 2 processes")
    assert refused.headers["Retry-After"] == "7" and body["setting"] == "limits.processes_per_user"
    assert (await limited.post("/processes", data=package("b0"), headers={**PKG, **bob})).status == 201
    mine = [p for p in await listed(limited, **alice) if p.startswith("a")]
    assert len(mine) == 2
    # replace stays allowed at the limit; undeploy frees a place
    assert (await limited.put(f"/processes/{mine[0]}", data=package(mine[0]), headers={**PKG, **alice})).status == 204
    assert (await limited.delete(f"/processes/{mine[0]}", headers=alice)).status == 204
    assert (await limited.post("/processes", data=package("a9"), headers={**PKG, **alice})).status == 201


async def test_openapi_lists_the_429s(client: TestClient) -> None:
    doc = await (await client.get("/api")).json()
    for path, method in (("/processes/{processId}/execution", "post"), ("/processes", "post")):
        answer = doc["paths"][path][method]["responses"]["429"]
        assert "Retry-After" in answer["headers"] and "limits." in answer["description"]
