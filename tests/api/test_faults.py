"""Every failure path of the job service through the HTTP API, with a backend that fails on demand: a
submission that raises, results that cannot be read, a poll that leaves jobs out or reports on a job that
already ended, a cancel that raises, a restart (jobs left accepted or running; a backend that can or cannot
follow them), dismissing jobs that already ended. The answers asserted are the ones docs/api.md documents
("Job life: failures")."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.backends.base import BackendError
from hpgc.config import Settings
from hpgc.models.ogc import StatusCode
from hpgc.models.run import BackendStatus
from tests.api.fake_backend import FakeBackend
from tests.api.waits import job_reaches
from tests.ogc_schemas import validate

EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"
ASYNC = {"Prefer": "respond-async"}
ECHO = {"inputs": {"stringInput": "hello"}}
SLEEP = {"inputs": {"seconds": 30}}
Client = Callable[..., Awaitable[TestClient]]


async def start(client: TestClient, process: str = "echo", body: dict | None = None) -> str:
    resp = await client.post(f"/processes/{process}/execution", json=body or (SLEEP if process == "sleep" else ECHO),
                             headers=ASYNC)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["jobID"]


async def problem(resp: Any, status: int, type_: str, detail: str) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    validate(body, "exception.yaml")
    assert body["type"] == type_ and body["status"] == status
    assert body["detail"] == detail
    return body


async def events(client: TestClient, job_id: str) -> list[tuple[str, str]]:
    logs = await (await client.get(f"/jobs/{job_id}/logs")).json()
    return [(e["status"], e["message"]) for e in logs["events"]]


# submission -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("error", "message"), [
    (BackendError("sbatch: error: invalid account"), "submission failed: sbatch: error: invalid account"),
    (ConnectionResetError("connection reset by peer"), "submission failed: connection reset by peer"),
    (RuntimeError("a bug in the backend"), "submission failed: RuntimeError: a bug in the backend"),
])
async def test_a_submission_that_raises_fails_the_job_with_the_reason(
    client: TestClient, fake_backend: FakeBackend, error: BaseException, message: str
) -> None:
    fake_backend.fail_submit = error
    job_id = await start(client)
    doc = await job_reaches(client, job_id)
    validate(doc, "statusInfo.yaml")
    assert doc["status"] == "failed" and doc["message"] == message
    assert doc["progress"] == 0  # it never ran
    assert doc["started"] == doc["finished"]  # a job that ended without starting started when it ended
    assert not any(link["rel"].endswith("/results") for link in doc["links"])
    assert any(link["rel"].endswith("/exceptions") for link in doc["links"])
    await problem(await client.get(f"/jobs/{job_id}/results"), 500, f"{EXC}/job-failed", message)
    assert await events(client, job_id) == [("accepted", "job accepted"), ("failed", message)]
    assert fake_backend.specs == {} and fake_backend.submissions == [job_id]
    logs = await (await client.get(f"/jobs/{job_id}/logs")).json()
    assert (logs["stdout"], logs["stderr"]) == ("", "")  # nothing ran: no backend logs are asked for
    assert (await client.get(f"/jobs/{job_id}/script")).status == 404


async def test_a_sync_execute_whose_submission_fails_answers_the_jobs_exception(
    client: TestClient, fake_backend: FakeBackend
) -> None:
    fake_backend.fail_submit = BackendError("no route to the cluster")
    resp = await client.post("/processes/echo/execution", json=ECHO)
    body = await problem(resp, 500, f"{EXC}/job-failed", "submission failed: no route to the cluster")
    assert body["title"] == "Job failed"


# results ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("error", "message"), [
    (BackendError("the job left no outputs.json"), "results unreadable: the job left no outputs.json"),
    (PermissionError("outputs.json: permission denied"), "results unreadable: outputs.json: permission denied"),
])
async def test_results_that_cannot_be_read_fail_the_job(
    client: TestClient, fake_backend: FakeBackend, error: BaseException, message: str
) -> None:
    fake_backend.fail_outputs = error
    job_id = await start(client)
    doc = await job_reaches(client, job_id)
    assert doc["status"] == "failed" and doc["message"] == message
    await problem(await client.get(f"/jobs/{job_id}/results"), 500, f"{EXC}/job-failed", message)
    await problem(await client.get(f"/jobs/{job_id}/results/stringOutput"), 500, f"{EXC}/job-failed", message)
    assert (await events(client, job_id))[-1] == ("failed", message)


async def test_result_files_that_are_gone_are_404_no_such_output(client: TestClient, fake_backend: FakeBackend) -> None:
    job_id = await start(client)
    assert (await job_reaches(client, job_id))["status"] == "successful"
    fake_backend.fail_read = BackendError("report.txt does not exist")
    await problem(await client.get(f"/jobs/{job_id}/results/report"), 404, f"{EXC}/no-such-output",
                  "output 'report' is no longer available: report.txt does not exist")
    # the results document gives files by reference unless asked: it reads nothing and still answers
    doc = await (await client.get(f"/jobs/{job_id}/results")).json()
    assert doc["stringOutput"] == "hello" and doc["report"]["href"].endswith(f"/jobs/{job_id}/results/report")
    # a value output needs no file
    value = await client.get(f"/jobs/{job_id}/results/stringOutput")
    assert value.status == 200 and await value.json() == "hello"


async def test_a_sync_execute_asking_a_gone_file_by_value_is_404(client: TestClient, fake_backend: FakeBackend) -> None:
    fake_backend.manifest = {"stringOutput": {"class": "File", "path": "/jobs/out.txt"}}
    fake_backend.fail_read = BackendError("out.txt does not exist")
    resp = await client.post("/processes/echo/execution", json={
        **ECHO, "response": "document", "outputs": {"stringOutput": {"transmissionMode": "value"}}})
    await problem(resp, 404, f"{EXC}/no-such-output",
                  "output 'stringOutput' is not available: out.txt does not exist")


# polling ------------------------------------------------------------------------------------------------------
async def test_a_job_the_poll_leaves_out_stays_as_it_is_until_reported(
    client: TestClient, fake_backend: FakeBackend
) -> None:
    fake_backend.submit_gate = gate = asyncio.Event()  # the job cannot end before it is left out
    job_id = await start(client)
    fake_backend.omit.add(job_id)
    gate.set()
    await submitted_and_polled(fake_backend, job_id, times=3)
    doc = await (await client.get(f"/jobs/{job_id}")).json()
    assert (doc["status"], doc["progress"], doc["message"]) == ("accepted", 0, "accepted")
    assert [status for status, _ in await events(client, job_id)] == ["accepted", "accepted"]  # + "submitted"
    assert (await client.get(f"/jobs/{job_id}/results")).status == 404
    fake_backend.omit.clear()
    fake_backend.on_change()
    assert (await job_reaches(client, job_id))["status"] == "successful"


async def submitted_and_polled(backend: FakeBackend, job_id: str, times: int) -> None:
    """Wait until `times` finished polls asked about the job (so their answers were applied: the next poll
    begins only after the monitor applied the previous one)."""
    await backend.until(lambda: sum(job_id in asked for asked in backend.polled) >= times + 1,
                        f"{times + 1} polls of {job_id}")


@pytest.mark.parametrize("late", [
    BackendStatus(status=StatusCode.running, progress=90, message="still going"),
    BackendStatus(status=StatusCode.successful, progress=100, message="finished", exit_code=0),
    BackendStatus(status=StatusCode.failed, message="killed", exit_code=137),
])
async def test_a_report_arriving_after_the_job_ended_changes_nothing(
    client: TestClient, fake_backend: FakeBackend, late: BackendStatus
) -> None:
    """The monitor read the job as running and asked the backend; the user dismissed it meanwhile; the
    backend's answer, arriving after the end, is dropped."""
    job_id = await start(client, "sleep")
    other = await start(client, "sleep")  # keeps the monitor polling after the first job ended
    await job_reaches(client, job_id, "running")
    fake_backend.poll_gate = gate = asyncio.Event()
    begun = fake_backend.polls
    await fake_backend.until(lambda: fake_backend.polls > begun, "a poll begun")  # it holds at the gate
    dismissed = await (await client.delete(f"/jobs/{job_id}")).json()
    assert dismissed["status"] == "dismissed"
    before = await events(client, job_id)
    fake_backend.late[job_id] = late
    finished = len(fake_backend.polled)
    fake_backend.poll_gate = None
    gate.set()
    await fake_backend.until(lambda: len(fake_backend.polled) > finished + 1, "the late answer applied")
    doc = await (await client.get(f"/jobs/{job_id}")).json()
    assert (doc["status"], doc["progress"], doc["message"]) == ("dismissed", 40, "dismissed by the user")
    assert doc["updated"] == dismissed["updated"]
    assert await events(client, job_id) == before
    await problem(await client.get(f"/jobs/{job_id}/results"), 404, f"{EXC}/no-such-job",
                  f"job '{job_id}' was dismissed")
    assert (await (await client.get(f"/jobs/{other}")).json())["status"] == "running"


# dismiss ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "ended"), [(ECHO, "successful"), ({"inputs": {"stringInput": "fail"}}, "failed")])
async def test_dismissing_an_ended_job_marks_it_dismissed_and_removes_its_files(
    client: TestClient, fake_backend: FakeBackend, body: dict, ended: str
) -> None:
    job_id = await start(client, "echo", body)
    done = await job_reaches(client, job_id)
    assert done["status"] == ended
    resp = await client.delete(f"/jobs/{job_id}")
    assert resp.status == 200
    doc = await resp.json()
    validate(doc, "statusInfo.yaml")
    assert (doc["status"], doc["message"]) == ("dismissed", "dismissed by the user")
    assert doc["finished"] == done["finished"]  # it ended when it ended, not when it was dismissed
    assert fake_backend.cancelled == []  # nothing to cancel
    await fake_backend.until(lambda: job_id in fake_backend.removed, "the job's files removed")
    await problem(await client.get(f"/jobs/{job_id}/results"), 404, f"{EXC}/no-such-job",
                  f"job '{job_id}' was dismissed")
    await problem(await client.get(f"/jobs/{job_id}/results/stringOutput"), 404, f"{EXC}/no-such-job",
                  f"job '{job_id}' was dismissed")
    assert (await events(client, job_id))[-1] == ("dismissed", "dismissed by the user")
    assert (await (await client.get(f"/jobs/{job_id}")).json())["status"] == "dismissed"


async def test_dismissing_a_dismissed_job_again_answers_the_same_and_does_nothing(
    client: TestClient, fake_backend: FakeBackend
) -> None:
    job_id = await start(client, "sleep")
    await job_reaches(client, job_id, "running")
    first = await (await client.delete(f"/jobs/{job_id}")).json()
    await fake_backend.until(lambda: job_id in fake_backend.removed, "the job's files removed")
    log = await events(client, job_id)
    again = await client.delete(f"/jobs/{job_id}")
    assert again.status == 200
    assert await again.json() == first
    assert await events(client, job_id) == log
    assert fake_backend.cancelled == [job_id] and fake_backend.removed == [job_id]


@pytest.mark.parametrize("error", [BackendError("scancel: connection lost"),
                                   ConnectionResetError("scancel: connection lost")])
async def test_a_cancel_that_raises_is_503_and_the_job_runs_on(
    client: TestClient, fake_backend: FakeBackend, error: BaseException
) -> None:
    job_id = await start(client, "sleep")
    await job_reaches(client, job_id, "running")
    log = await events(client, job_id)
    fake_backend.fail_cancel = error
    await problem(await client.delete(f"/jobs/{job_id}"), 503, f"{EXC}/backend-unavailable",
                  "the job could not be cancelled: scancel: connection lost")
    doc = await (await client.get(f"/jobs/{job_id}")).json()
    assert (doc["status"], doc["progress"]) == ("running", 40)
    assert await events(client, job_id) == log and fake_backend.removed == []
    fake_backend.fail_cancel = None
    assert (await (await client.delete(f"/jobs/{job_id}")).json())["status"] == "dismissed"
    assert fake_backend.cancelled == [job_id]


async def test_a_job_dismissed_during_its_submission_is_cancelled_once_submitted(
    client: TestClient, fake_backend: FakeBackend
) -> None:
    """Regression: the submission returned after the dismissal, its backend id was refused (the job is
    final) and the job ran on in the backend, never cancelled, its files never removed."""
    fake_backend.submit_gate = gate = asyncio.Event()
    job_id = await start(client, "sleep")
    await fake_backend.until(lambda: job_id in fake_backend.submissions, "the submission begun")
    doc = await (await client.delete(f"/jobs/{job_id}")).json()
    assert (doc["status"], doc["message"]) == ("dismissed", "dismissed by the user")
    assert fake_backend.cancelled == [] and fake_backend.removed == []  # no backend id: nothing to cancel yet
    gate.set()
    await fake_backend.until(lambda: job_id in fake_backend.removed, "the late submission cancelled and removed")
    assert fake_backend.cancelled == [job_id]
    after = await (await client.get(f"/jobs/{job_id}")).json()
    assert after["status"] == "dismissed" and after["updated"] == doc["updated"]


# restart ------------------------------------------------------------------------------------------------------
async def restart(aiohttp_client: Client, settings: Settings, first: TestClient,
                  backends: dict[str, FakeBackend]) -> TestClient:
    await first.close()  # the server stops: monitors, submissions in flight, the store
    return await aiohttp_client(create_app(settings, backends=backends))  # type: ignore[arg-type]


async def test_a_job_that_never_reached_its_backend_is_submitted_after_a_restart(
    aiohttp_client: Client, settings: Settings
) -> None:
    old = FakeBackend()
    old.submit_gate = asyncio.Event()  # the server stops before the submission returns
    first = await aiohttp_client(create_app(settings, backends={"local": old}))
    job_id = await start(first)
    await old.until(lambda: job_id in old.submissions, "the submission begun")
    new = FakeBackend()
    second = await restart(aiohttp_client, settings, first, {"local": new})
    doc = await job_reaches(second, job_id)
    assert doc["status"] == "successful"
    assert new.submissions == [job_id] and old.specs == {}
    assert (await (await second.get(f"/jobs/{job_id}/results")).json())["stringOutput"] == "hello"
    assert [s for s, _ in await events(second, job_id)] == ["accepted", "accepted", "successful"]


async def test_a_running_job_is_followed_after_a_restart_by_a_resumable_backend(
    aiohttp_client: Client, settings: Settings
) -> None:
    old = FakeBackend()
    old.submit_gate = gate = asyncio.Event()  # the job cannot end before it is told to run on
    first = await aiohttp_client(create_app(settings, backends={"local": old}))
    job_id = await start(first)
    old.late[job_id] = BackendStatus(status=StatusCode.running, progress=30, message="half way")
    gate.set()
    running = await job_reaches(first, job_id, "running")
    assert running["progress"] == 30
    new = FakeBackend(resumed=old, resumable=True)  # the job lives on (Slurm): it ends while we were away
    second = await restart(aiohttp_client, settings, first, {"local": new})
    doc = await job_reaches(second, job_id)
    assert (doc["status"], doc["progress"]) == ("successful", 100)
    assert new.submissions == []  # it had reached its backend: not submitted twice
    assert (await (await second.get(f"/jobs/{job_id}/results")).json())["stringOutput"] == "hello"


async def test_a_running_job_fails_after_a_restart_on_a_backend_that_cannot_resume(
    aiohttp_client: Client, settings: Settings
) -> None:
    old = FakeBackend()
    first = await aiohttp_client(create_app(settings, backends={"local": old}))
    job_id = await start(first, "sleep")
    await job_reaches(first, job_id, "running")
    new = FakeBackend(resumable=False)  # the local backend: the job's process died with the server
    second = await restart(aiohttp_client, settings, first, {"local": new})
    doc = await job_reaches(second, job_id)
    assert (doc["status"], doc["message"]) == ("failed", FakeBackend.LOST)
    assert new.submissions == []
    await problem(await second.get(f"/jobs/{job_id}/results"), 500, f"{EXC}/job-failed", FakeBackend.LOST)


async def test_jobs_of_a_backend_no_longer_configured_fail_at_restart(
    aiohttp_client: Client, settings: Settings
) -> None:
    old = FakeBackend()
    first = await aiohttp_client(create_app(settings, backends={"local": old}))
    running = await start(first, "sleep")
    await job_reaches(first, running, "running")
    finished = await start(first)
    assert (await job_reaches(first, finished))["status"] == "successful"
    other = FakeBackend()
    other.name = "slurm"
    second = await restart(aiohttp_client, settings, first, {"slurm": other})
    doc = await job_reaches(second, running)
    message = "backend 'local' is no longer configured on this server"
    assert (doc["status"], doc["message"]) == ("failed", message)
    await problem(await second.get(f"/jobs/{running}/results"), 500, f"{EXC}/job-failed", message)
    assert (await (await second.get(f"/jobs/{finished}")).json())["status"] == "successful"  # ended: untouched
