"""Sweeps (hpgc:sweep) through the API on the fake backend: one job of N tasks, every value checked before
anything is stored, task counts and progress in the status, per-task results, a failed task failing the job
while the others' results are served, dismiss cancelling every task, restart resubmitting nothing twice."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.api.keys import JOBS, STORE
from hpgc.config import Settings
from hpgc.models.sweep import task_key
from tests.api.fake_backend import FakeBackend
from tests.api.waits import job_reaches
from tests.ogc_schemas import validate

ASYNC = {"Prefer": "respond-async"}


def sweep(values: dict[str, list[Any]], common: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"inputs": common or {}, "hpgc:sweep": {"inputs": values, **extra}}


async def post(client: TestClient, body: dict[str, Any], process: str = "echo") -> tuple[int, dict[str, Any]]:
    resp = await client.post(f"/processes/{process}/execution", json=body, headers=ASYNC)
    return resp.status, await resp.json()


async def jobs_stored(client: TestClient) -> int:
    return int(client.app[STORE].db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])


async def test_a_zip_sweep_is_one_job_whose_outputs_are_arrays_in_task_order(
        client: TestClient, fake_backend: FakeBackend) -> None:
    status, doc = await post(client, sweep({"stringInput": ["a", "b", "c"]}, {"doubleInput": 2.5}, maxParallel=2))
    assert status == 201, doc
    assert doc["hpgc:tasks"] == {"total": 3, "accepted": 3, "running": 0, "successful": 0, "failed": 0,
                                 "dismissed": 0}
    job_id = doc["jobID"]
    done = await job_reaches(client, job_id)
    assert done["status"] == "successful" and done["progress"] == 100, done
    assert done["hpgc:tasks"]["successful"] == 3
    validate(done, "statusInfo.yaml")
    assert await jobs_stored(client) == 1
    assert sorted(fake_backend.specs) == [task_key(job_id, i) for i in range(3)]
    assert fake_backend.specs[task_key(job_id, 1)].files[0].content is not None
    results = await (await client.get(f"/jobs/{job_id}/results")).json()
    validate(results, "results.yaml")
    assert results["stringOutput"] == ["a", "b", "c"]
    assert results["doubleOutput"] == [2.5, 2.5, 2.5]
    assert [r["href"].split(f"/jobs/{job_id}/")[1] for r in results["report"]] == [
        f"tasks/{i}/results/report" for i in range(3)]
    one = await client.get(f"/jobs/{job_id}/tasks/1/results/report")
    assert one.status == 200 and await one.read() == b"report for b"
    task_doc = await (await client.get(f"/jobs/{job_id}/tasks/2/results")).json()
    assert task_doc["stringOutput"] == "c"
    assert task_doc["report"]["href"].endswith(f"/jobs/{job_id}/tasks/2/results/report")
    listing = await (await client.get(f"/jobs/{job_id}/tasks")).json()
    assert [(t["index"], t["status"], t["backendId"]) for t in listing["tasks"]] == [
        (i, "successful", f"fake-{task_key(job_id, i)}") for i in range(3)]
    sent = await (await client.get(f"/jobs/{job_id}/inputs")).json()
    assert sent["hpgc:sweep"] == {"inputs": {"stringInput": ["a", "b", "c"]}, "mode": "zip", "maxParallel": 2}
    logs = await (await client.get(f"/jobs/{job_id}/tasks/0/logs")).json()
    assert logs["stdout"] == "out" and fake_backend.logs_asked[-1][0] == task_key(job_id, 0)


async def test_a_product_sweep_makes_every_combination(client: TestClient) -> None:
    status, doc = await post(client, sweep({"stringInput": ["x", "y"], "doubleInput": [1, 2, 3]}, mode="product"))
    assert status == 201, doc
    done = await job_reaches(client, doc["jobID"])
    results = await (await client.get(f"/jobs/{doc['jobID']}/results")).json()
    assert done["hpgc:tasks"]["total"] == 6
    assert list(zip(results["stringOutput"], results["doubleOutput"], strict=True)) == [
        ("x", 1), ("x", 2), ("x", 3), ("y", 1), ("y", 2), ("y", 3)]


async def test_a_bad_value_is_a_400_naming_input_and_index_and_nothing_is_stored(
        client: TestClient, fake_backend: FakeBackend) -> None:
    status, doc = await post(client, sweep({"stringInput": ["a", "b"], "doubleInput": [1.0, "two"]}))
    assert status == 400 and "input 'doubleInput' index 1" in doc["detail"], doc
    status, doc = await post(client, sweep({"stringInput": ["x", "y"], "doubleInput": [1, "z", 3]}, mode="product"))
    assert status == 400 and "input 'doubleInput' index 1" in doc["detail"], doc
    status, doc = await post(client, sweep({"stringInput": ["a", "b"], "doubleInput": [1.0]}))
    assert status == 400 and "zip" in doc["detail"] and "'doubleInput' has 1" in doc["detail"], doc
    status, doc = await post(client, sweep({"nope": [1]}, {"stringInput": "s"}))
    assert status == 400 and "unknown input 'nope'" in doc["detail"], doc
    status, doc = await post(client, sweep({"stringInput": ["a"]}, {"stringInput": "b"}))
    assert status == 400 and "both" in doc["detail"], doc
    status, doc = await post(client, sweep({"stringInput": []}))
    assert status == 400, doc
    for bad in (0, -1, 10**9, "5", None, True):
        status, doc = await post(client, {"inputs": {}, "hpgc:sweep": {"inputs": {"stringInput": ["a"]},
                                                                         "maxParallel": bad}})
        assert (status, bad) == (400, bad) or (bad is None and status == 201), doc
    assert await jobs_stored(client) == 1  # the one with maxParallel None
    assert len(fake_backend.submissions) <= 1


async def test_a_sweep_too_large_is_refused_with_the_limit(
        aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, fake_backend: FakeBackend) -> None:
    settings.limits.sweep_max_tasks = 4
    client = await aiohttp_client(create_app(settings, backends={"local": fake_backend}))
    status, doc = await post(client, sweep({"stringInput": ["a", "b", "c"], "doubleInput": [1, 2]}, mode="product"))
    assert status == 400 and "6 tasks" in doc["detail"] and "at most 4" in doc["detail"], doc
    status, doc = await post(client, sweep({"stringInput": [str(i) for i in range(10**3)],
                                            "doubleInput": list(range(10**3))}, mode="product"))
    assert status == 400 and "1000000 tasks" in doc["detail"], doc
    assert await jobs_stored(client) == 0


async def test_a_failed_task_fails_the_job_naming_it_and_the_others_results_are_served(client: TestClient) -> None:
    status, doc = await post(client, sweep({"stringInput": ["ok", "fail", "fine"]}))
    assert status == 201, doc
    job_id = doc["jobID"]
    done = await job_reaches(client, job_id)
    assert done["status"] == "failed" and "indices 1" in done["message"], done
    assert done["hpgc:tasks"]["failed"] == 1 and done["hpgc:tasks"]["successful"] == 2
    assert (await client.get(f"/jobs/{job_id}/results")).status == 500
    assert (await (await client.get(f"/jobs/{job_id}/tasks/2/results")).json())["stringOutput"] == "fine"
    failed = await client.get(f"/jobs/{job_id}/tasks/1/results")
    assert failed.status == 500 and "code 3" in (await failed.json())["detail"]
    tasks = (await (await client.get(f"/jobs/{job_id}/tasks")).json())["tasks"]
    assert tasks[1]["exitCode"] == 3 and tasks[0]["exitCode"] == 0
    assert (await client.get(f"/jobs/{job_id}/tasks/3/results")).status == 404


async def test_dismiss_cancels_every_task(client: TestClient, fake_backend: FakeBackend) -> None:
    status, doc = await post(client, {"inputs": {}, "hpgc:sweep": {"inputs": {"seconds": [50, 60, 70]}}}, "sleep")
    assert status == 201, doc
    job_id = doc["jobID"]
    running = await job_reaches(client, job_id, "running")
    assert running["hpgc:tasks"]["running"] >= 1
    resp = await client.delete(f"/jobs/{job_id}")
    assert resp.status == 200
    gone = await resp.json()
    assert gone["status"] == "dismissed" and gone["hpgc:tasks"]["dismissed"] == 3, gone
    assert sorted(fake_backend.cancelled) == [task_key(job_id, i) for i in range(3)]
    await fake_backend.until(lambda: job_id in fake_backend.removed, "the sweep's directory removed")


async def test_a_plain_job_has_no_tasks_and_a_sweep_needs_an_async_process(client: TestClient) -> None:
    status, doc = await post(client, {"inputs": {"stringInput": "one"}})
    assert status == 201 and "hpgc:tasks" not in doc
    assert (await client.get(f"/jobs/{doc['jobID']}/tasks")).status == 404
    assert (await client.get("/jobs/nope/tasks")).status == 404
    assert (await client.get(f"/jobs/{doc['jobID']}/tasks/abc/results")).status == 404


async def test_a_restart_resubmits_a_sweep_that_never_reached_its_backend_once(
        aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings) -> None:
    import asyncio

    first = FakeBackend()
    first.submit_gate = asyncio.Event()  # the server "dies" before the tasks reach the backend
    client = await aiohttp_client(create_app(settings, backends={"local": first}))
    status, doc = await post(client, sweep({"stringInput": ["a", "b"]}))
    assert status == 201
    await first.until(lambda: len(first.submissions) == 2, "the tasks' submissions begun")
    await client.close()
    second = FakeBackend()
    client = await aiohttp_client(create_app(settings, backends={"local": second}))
    done = await job_reaches(client, doc["jobID"])
    assert done["status"] == "successful", done
    assert sorted(second.submissions) == [task_key(doc["jobID"], 0), task_key(doc["jobID"], 1)]  # once each
    assert client.app[JOBS] is not None


async def test_a_failed_submission_fails_the_sweep_and_every_task(client: TestClient,
                                                                  fake_backend: FakeBackend) -> None:
    from hpgc.backends.base import BackendError

    fake_backend.fail_submit = BackendError("the cluster said no")
    status, doc = await post(client, sweep({"stringInput": ["a", "b"]}))
    assert status == 201, doc
    done = await job_reaches(client, doc["jobID"])
    assert done["status"] == "failed" and "the cluster said no" in done["message"], done
    assert done["hpgc:tasks"] == {"total": 2, "accepted": 0, "running": 0, "successful": 0, "failed": 2,
                                  "dismissed": 0}
    tasks = (await (await client.get(f"/jobs/{doc['jobID']}/tasks")).json())["tasks"]
    assert [t["status"] for t in tasks] == ["failed", "failed"] and "said no" in tasks[0]["message"]


async def test_a_sweep_asking_for_a_qos_the_user_may_not_use_is_a_403(
        aiohttp_client: Any, settings: Settings, fake_backend: FakeBackend) -> None:
    """The identity's Slurm grants hold for a sweep as for a single job (auth/grants.py): a QOS outside them is a
    403 naming it, nothing stored; within them the group's account is filled in."""
    from hpgc.api.bearer import DEV_ISSUER
    from hpgc.api.keys import SETTINGS
    from hpgc.auth.dev_issuer import dev_issuer_url
    from hpgc.auth.grants import GroupGrant, SlurmGrantSettings
    from hpgc.auth.settings import AuthSettings, IdentitySettings

    grants = SlurmGrantSettings(claim="groups", groups={"geo": GroupGrant(account="geo", qos=["normal"])})
    cfg = settings.model_copy(update={"auth": AuthSettings(identity=IdentitySettings(slurm=grants))})
    client = await aiohttp_client(create_app(cfg, backends={"local": fake_backend}))
    tok = client.app[DEV_ISSUER].mint(dev_issuer_url(client.app[SETTINGS]), "alice", "hpgc:execute", groups=["geo"])
    who = {"Authorization": f"Bearer {tok}", **ASYNC}
    body = {**sweep({"stringInput": ["a", "b"]}), "hpgc:resources": {"qos": "high"}}
    resp = await client.post("/processes/echo/execution", json=body, headers=who)
    problem = await resp.json()
    assert resp.status == 403 and "QOS 'high'" in problem["detail"], problem
    assert await jobs_stored(client) == 0
    body["hpgc:resources"] = {"qos": "normal"}
    resp = await client.post("/processes/echo/execution", json=body, headers=who)
    assert resp.status == 201, await resp.text()
    stored = json.loads(client.app[STORE].db.execute("SELECT request FROM jobs").fetchone()[0])
    assert stored["resources"] == {"account": "geo", "qos": "normal"}
