"""The job service (hpgc/jobs/: submission, lifecycle, results, catalog) and the monitor (hpgc/jobs/monitor.py)
without HTTP: a real store, the built-in processes, the fault-injecting fake backend of tests/api. Expected
values are written out."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from hpgc.auth.principal import Principal
from hpgc.backends.base import BackendError
from hpgc.errors import (
    BackendUnavailable,
    InvalidParameterValue,
    InvalidRequest,
    JobFailed,
    LimitReached,
    NoSuchJob,
    NoSuchOutput,
    NotAllowed,
    ProcessNotReady,
    ResultNotReady,
)
from hpgc.jobs import catalog as catalog_module
from hpgc.jobs import monitor as monitor_module
from hpgc.jobs.lifecycle import POLL_COLUMNS, changes_of, coarse_progress, job_ref
from hpgc.jobs.limits import LimitSettings
from hpgc.jobs.monitor import Monitor
from hpgc.jobs.results import OutputFile, OutputValue, ResultFile
from hpgc.jobs.service import JobService
from hpgc.logs import current as log_fields
from hpgc.models.joblist import JobQuery
from hpgc.models.ogc import Execute, StatusCode
from hpgc.models.run import BackendStatus, JobRef
from hpgc.packages.registry import ProcessRegistry
from hpgc.store import Store
from tests.api.fake_backend import FakeBackend

REPO = Path(__file__).resolve().parents[2]
ALICE = Principal(subject="alice", unix_user="alice")
BOB = Principal(subject="bob")
ADMIN = Principal(subject="root", is_admin=True)
S = StatusCode


@pytest.fixture
async def svc(tmp_path: Path) -> Any:
    store = Store(tmp_path / "db.sqlite")
    registry = ProcessRegistry(store)
    registry.load_builtins(REPO / "appkgs")
    backend = FakeBackend()
    service = JobService(store, registry, {"local": backend}, "local",
                         limits=LimitSettings(active_jobs_per_user=2, processes_per_user=0, retry_after_s=7))
    service.fake = backend  # type: ignore[attr-defined]
    service.woken = []  # type: ignore[attr-defined]
    service.recorded = asyncio.Event()  # type: ignore[attr-defined]
    # called once a submitted job's backend id is stored
    service.on_submitted = lambda name: (service.woken.append(name), service.recorded.set())  # type: ignore[attr-defined]
    yield service
    service.close()
    store.close()


def row(job_id: str = "j1", **kw: Any) -> dict[str, Any]:
    return {"id": job_id, "process_id": "echo", "owner": "alice", "unix_user": "alice", "status": "running",
            "message": "running", "progress": 5, "backend": "local", "external_id": f"fake-{job_id}",
            "created": 100.0, "started": 101.0, "finished": None, "updated": 101.0, "request": {"inputs": {}},
            "results": None, "error": None, "cluster": None, **kw}


async def insert(svc: JobService, **kw: Any) -> dict[str, Any]:
    r = row(**kw)
    await svc.db(svc.store.insert_job, r)
    return r


# pure functions --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "reported", "current", "expected"), [
    (S.running, 40, 5, 40),
    (S.running, 150, 5, 100),
    (S.running, -3, 5, 0),
    (S.running, 0, 5, 0),
    (S.running, 100, 5, 100),
    (S.running, None, 0, 5),
    (S.running, None, None, 5),
    (S.running, None, 30, None),
    (S.successful, None, 40, 100),
    (S.successful, 70, 40, 70),
    (S.accepted, None, 0, None),
    (S.failed, None, 20, None),
    (S.dismissed, None, 0, None),
])
def test_coarse_progress(status: StatusCode, reported: int | None, current: int | None, expected: int | None) -> None:
    assert coarse_progress(status, reported, current) == expected


@pytest.mark.parametrize(("report", "expected"), [
    (BackendStatus(status=S.running), {}),
    (BackendStatus(status=S.running, progress=30), {"progress": 30}),
    (BackendStatus(status=S.running, message="running"), {}),
    (BackendStatus(status=S.running, message="step 2"), {"message": "step 2"}),
    (BackendStatus(status=S.successful), {"status": "successful", "progress": 100}),
    (BackendStatus(status=S.failed, message="boom"), {"status": "failed", "message": "boom"}),
    (BackendStatus(status=S.accepted, message=""), {"status": "accepted"}),
])
def test_changes_of(report: BackendStatus, expected: dict[str, Any]) -> None:
    assert changes_of({"status": "running", "progress": 5, "message": "running"}, report) == expected


def test_a_running_job_that_reports_nothing_keeps_its_progress() -> None:
    assert changes_of({"status": "running", "progress": 30, "message": "m"}, BackendStatus(status=S.running)) == {}


def test_job_ref_leaves_the_backend_id_to_the_backend() -> None:
    """What an external id means is the backend's to say (the Slurm backend reads its cluster from it)."""
    assert job_ref(row(external_id="big:123", cluster="small")) == JobRef(
        job_id="j1", external_id="big:123", cluster="small", unix_user="alice")
    assert job_ref(row(external_id="a:b:c")).cluster is None
    assert job_ref({"id": "j2"}) == JobRef(job_id="j2", external_id=None, cluster=None, unix_user=None)


# apply: the state machine ----------------------------------------------------------------------------------------
async def test_running_sets_started_once(svc: JobService) -> None:
    await insert(svc, status="accepted", started=None, progress=0, message="accepted")
    first = await svc.apply("j1", BackendStatus(status=S.running, message="go"))
    assert first is not None
    assert (first["status"], first["progress"], first["message"]) == ("running", 5, "go")
    assert first["started"] == first["updated"] and first["finished"] is None
    second = await svc.apply("j1", BackendStatus(status=S.running, progress=50, message="go"))
    assert second is not None and second["started"] == first["started"] and second["progress"] == 50
    assert await svc.apply("j1", BackendStatus(status=S.running, progress=50, message="go")) is None  # no change
    events = await svc.db(svc.store.job_events, "j1")
    assert [(e["status"], e["progress"], e["message"]) for e in events] == [
        ("accepted", 0, "job created"), ("running", 5, "go")]


async def test_success_reads_the_results(svc: JobService) -> None:
    await insert(svc)
    svc.fake.manifest = {"out": "v", "f": {"class": "File", "path": "/j/a.txt"}}  # type: ignore[attr-defined]
    done = await svc.apply("j1", BackendStatus(status=S.successful, exit_code=0, message="finished"))
    assert done is not None
    assert (done["status"], done["progress"], done["exit_code"], done["message"]) == ("successful", 100, 0,
                                                                                      "finished")
    assert done["results"] == {"out": "v", "f": {"class": "File", "path": "/j/a.txt"}}
    assert done["started"] == 101.0 and done["finished"] == done["updated"] and done["error"] is None


async def test_success_with_progress_reported_still_ends_at_100(svc: JobService) -> None:
    await insert(svc)
    svc.fake.manifest = {}  # type: ignore[attr-defined]
    done = await svc.apply("j1", BackendStatus(status=S.successful, progress=60))
    assert done is not None and done["progress"] == 100 and done["results"] == {}
    assert (await svc.db(svc.store.job_events, "j1"))[-1]["progress"] == 100


@pytest.mark.parametrize("error", [BackendError("no outputs.json"), OSError("no outputs.json")])
async def test_unreadable_results_fail_the_job(svc: JobService, error: Exception) -> None:
    await insert(svc)
    svc.fake.fail_outputs = error  # type: ignore[attr-defined]
    done = await svc.apply("j1", BackendStatus(status=S.successful, exit_code=0))
    assert done is not None
    assert (done["status"], done["message"], done["results"]) == ("failed", "results unreadable: no outputs.json",
                                                                  None)
    assert done["error"] == {"type": "job-failed", "title": "Job failed",
                             "detail": "results unreadable: no outputs.json"}
    assert done["exit_code"] == 0 and done["finished"] is not None


async def test_a_failure_keeps_its_exit_code_and_message(svc: JobService) -> None:
    await insert(svc, started=None, status="accepted")
    done = await svc.apply("j1", BackendStatus(status=S.failed, exit_code=3, message="exit 3",
                                               details={"stderr_tail": "boom"}))
    assert done is not None
    assert (done["status"], done["exit_code"], done["message"], done["progress"]) == ("failed", 3, "exit 3", 5)
    assert done["started"] == done["finished"] == done["updated"]
    assert done["error"] == {"type": "job-failed", "title": "Job failed", "detail": "exit 3"}
    assert (await svc.db(svc.store.job_events, "j1"))[-1]["details"] == {"stderr_tail": "boom"}


async def test_a_failure_with_the_same_message_or_none_says_why(svc: JobService) -> None:
    await insert(svc, message="node lost")
    done = await svc.apply("j1", BackendStatus(status=S.failed, message="node lost"))
    assert done is not None and done["error"]["detail"] == "node lost"  # type: ignore[index]
    await insert(svc, job_id="j2")
    done = await svc.apply("j2", BackendStatus(status=S.failed))
    assert done is not None and done["error"]["detail"] == "failed" and done["message"] == "running"  # type: ignore[index]


async def test_final_states_are_final(svc: JobService) -> None:
    for final in ("successful", "failed", "dismissed"):
        await insert(svc, job_id=final, status=final, progress=70)
        assert await svc.apply(final, BackendStatus(status=S.running, progress=90, message="late")) is None
        stored = await svc.db(svc.store.get_job, final)
        assert (stored["status"], stored["progress"]) == (final, 70)  # type: ignore[index]
    assert await svc.apply("nope", BackendStatus(status=S.running)) is None


async def test_apply_trusts_the_given_row_but_the_store_refuses_a_final_job(svc: JobService) -> None:
    stale = await insert(svc)
    await svc.db(svc.store.update_job, "j1", {"status": "dismissed"})
    assert await svc.apply("j1", BackendStatus(status=S.running, progress=90), stale) is None
    assert (await svc.db(svc.store.get_job, "j1"))["status"] == "dismissed"  # type: ignore[index]


async def test_listeners_and_waiters_hear_every_change(svc: JobService) -> None:
    heard: list[tuple[str, str]] = []
    svc.listeners.append(lambda r: heard.append((r["id"], r["status"])))
    await insert(svc)
    waiting = asyncio.create_task(svc.wait("j1", 30))  # it registers while apply waits on the store
    svc.fake.manifest = {}  # type: ignore[attr-defined]
    await svc.apply("j1", BackendStatus(status=S.running, progress=50))
    assert not waiting.done()
    await svc.apply("j1", BackendStatus(status=S.successful))
    done = await asyncio.wait_for(waiting, 10)
    assert done["status"] == "successful"
    assert heard == [("j1", "running"), ("j1", "successful")]


async def test_wait_gives_the_job_as_it_is_after_the_timeout(svc: JobService) -> None:
    await insert(svc)
    assert (await asyncio.wait_for(svc.wait("j1", 0), 10))["status"] == "running"  # 0: at once, not never
    with pytest.raises(NoSuchJob, match=r"^job 'nope' does not exist$"):
        await svc.wait("nope", 0)


# create, submit, recover -----------------------------------------------------------------------------------------
async def test_create_checks_before_storing(svc: JobService) -> None:
    echo = svc.registry.get("echo")
    with pytest.raises(NotAllowed, match="does not allow executing"):
        await svc.create(Principal(subject="x", can_execute=False), echo, Execute(inputs={"stringInput": "a"}))
    with pytest.raises(InvalidParameterValue, match="'stringInput' is required"):
        await svc.create(ALICE, echo, Execute(inputs={}))
    with pytest.raises(InvalidRequest) as err:
        await svc.create(ALICE, echo, Execute.model_validate({"inputs": {"stringInput": "a"},
                                                              "outputs": {"zz": {}, "aa": {}}}))
    assert err.value.detail == ("unknown output 'aa'; process 'echo' has: arrayOutput, doubleOutput, enumOutput, "
                                "stringOutput")
    with pytest.raises(InvalidParameterValue) as bad_cluster:
        await svc.create(ALICE, echo, Execute(inputs={"stringInput": "a"}), cluster="big")
    assert bad_cluster.value.detail == ("unknown cluster 'big'; clusters: none: this backend runs jobs on the "
                                        "server itself")
    svc.fake.cluster_names = ["small", "big"]
    with pytest.raises(InvalidParameterValue, match=r"^unknown cluster 'huge'; clusters: small, big$"):
        await svc.create(ALICE, echo, Execute(inputs={"stringInput": "a"}), cluster="huge")
    svc.backends.clear()
    with pytest.raises(BackendUnavailable, match="backend 'local' is not configured on this server"):
        await svc.create(ALICE, echo, Execute(inputs={"stringInput": "a"}))
    assert (await svc.db(svc.store.list_jobs, JobQuery())).rows == []


async def test_create_refuses_a_process_that_is_not_ready(svc: JobService) -> None:
    await svc.db(svc.registry.set_status, "echo", "deploying")
    with pytest.raises(ProcessNotReady, match=r"^process 'echo' is not ready to run: deploying$"):
        await svc.create(ALICE, svc.registry.get("echo"), Execute(inputs={"stringInput": "a"}))


async def test_create_stores_submits_and_records_the_backend_id(svc: JobService) -> None:
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    created = await svc.create(ALICE, svc.registry.get("echo"), Execute(inputs={"stringInput": "a"}),
                               base_url="http://h")
    assert (created["status"], created["message"], created["progress"], created["owner"], created["unix_user"]) == (
        "accepted", "accepted", 0, "alice", "alice")
    assert created["base_url"] == "http://h" and created["external_id"] is None and created["cluster"] is None
    spec = await _submitted(svc, created["id"])
    assert spec.unix_user == "alice" and spec.cluster is None and spec.job_id == created["id"]
    stored = await svc.db(svc.store.get_job, created["id"])
    assert stored["external_id"] == f"fake-{created['id']}" and svc.woken == ["local"]  # type: ignore[attr-defined]
    assert stored["external_id"] == f"fake-{created['id']}"  # type: ignore[index]
    assert [e["message"] for e in await svc.db(svc.store.job_events, created["id"])] == [
        "job accepted", f"submitted to local as fake-{created['id']}"]
    assert fake.submissions == [created["id"]]


async def _submitted(svc: JobService, job_id: str) -> Any:
    """The spec once the job's backend id is stored (the submission runs in the background)."""
    await asyncio.wait_for(svc.recorded.wait(), 10)  # type: ignore[attr-defined]
    assert (await svc.db(svc.store.get_job, job_id))["external_id"] == f"fake-{job_id}"  # type: ignore[index]
    return svc.fake.specs[job_id]  # type: ignore[attr-defined]


async def test_the_active_job_limit(svc: JobService) -> None:
    svc.fake.submit_gate = asyncio.Event()  # type: ignore[attr-defined]
    echo = svc.registry.get("echo")
    for _ in range(2):
        await svc.create(ALICE, echo, Execute(inputs={"stringInput": "a"}))
    with pytest.raises(LimitReached) as err:
        await svc.create(ALICE, echo, Execute(inputs={"stringInput": "a"}))
    assert err.value.headers == {"Retry-After": "7"}
    assert err.value.extra == {"limit": "active_jobs_per_user", "setting": "limits.active_jobs_per_user", "value": 2}
    assert err.value.detail.startswith("you have 2 jobs accepted or running")
    assert (await svc.create(BOB, echo, Execute(inputs={"stringInput": "a"})))["owner"] == "bob"


async def test_submission_failures_fail_the_job(svc: JobService) -> None:
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    echo = svc.registry.get("echo")
    for error, message in ((BackendError("refused"), "submission failed: refused"),
                           (OSError("reset"), "submission failed: reset"),
                           (ValueError("bug"), "submission failed: ValueError: bug")):
        fake.fail_submit = error
        job = await svc.create(ADMIN, echo, Execute(inputs={"stringInput": "a"}))
        done = await svc.wait(job["id"], 10)
        assert (done["status"], done["message"]) == ("failed", message)
        assert done["error"] == {"type": "job-failed", "title": "Job failed", "detail": message}


async def test_a_submission_that_fails_unexpectedly_is_logged_with_its_job(
        svc: JobService, caplog: pytest.LogCaptureFixture) -> None:
    svc.fake.fail_submit = ValueError("bug")  # type: ignore[attr-defined]
    job = await svc.create(ADMIN, svc.registry.get("echo"), Execute(inputs={"stringInput": "a"}))
    await svc.wait(job["id"], 10)
    (record,) = [r for r in caplog.records if r.name == "hpgc.jobs.service"]
    assert (record.levelname, record.getMessage()) == ("ERROR", f"submission of job {job['id']} failed")
    assert record.exc_info is not None and record.exc_info[0] is ValueError  # with the traceback


async def test_a_job_dismissed_during_its_submission_is_cancelled_and_removed_by_its_backend_id(
        svc: JobService) -> None:
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    fake.cluster_names = ["c1"]
    fake.submit_gate = gate = asyncio.Event()
    asked: list[tuple[str, JobRef]] = []
    cancel, remove = fake.cancel, fake.remove

    async def cancelled(job: JobRef) -> None:
        asked.append(("cancel", job))
        await cancel(job)

    async def removed(job: JobRef) -> None:
        asked.append(("remove", job))
        await remove(job)

    fake.cancel, fake.remove = cancelled, removed  # type: ignore[method-assign]
    job = await svc.create(ALICE, svc.registry.get("sleep"), Execute(inputs={}), cluster="c1")
    await fake.until(lambda: job["id"] in fake.submissions, "the submission begun")
    await svc.dismiss(ALICE, job["id"])
    gate.set()
    await fake.until(lambda: job["id"] in fake.removed, "the late submission cancelled and removed")
    ref = JobRef(job_id=job["id"], external_id=f"fake-{job['id']}", cluster="c1", unix_user="alice")
    assert asked == [("cancel", ref), ("remove", ref)]


async def test_recover_resubmits_only_what_never_reached_a_backend(svc: JobService) -> None:
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    request = {"inputs": {"stringInput": "again"}}
    await insert(svc, job_id="new", status="accepted", external_id=None, request=request, unix_user="carol",
                 cluster=None)
    await insert(svc, job_id="sent", status="running")
    await insert(svc, job_id="gone", status="accepted", backend="slurm")
    await insert(svc, job_id="over", status="successful", external_id=None)
    await svc.recover()
    gone = await svc.db(svc.store.get_job, "gone")
    assert (gone["status"], gone["message"]) == ("failed", "backend 'slurm' is no longer configured on this server")  # type: ignore[index]
    spec = await _submitted(svc, "new")
    assert fake.submissions == ["new"] and spec.unix_user == "carol"
    assert b'"again"' in {f.path: f.content for f in spec.files}["job.json"]
    assert (await svc.db(svc.store.get_job, "sent"))["status"] == "running"  # type: ignore[index]


async def test_a_resubmitted_command_job_keeps_its_requested_outputs(svc: JobService) -> None:
    """The run spec of a job recovered after a restart is rebuilt from the stored request, outputs included:
    the requested media type names the output file on the command line (BandMath: `-out <file> <type>`)."""
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    assert svc.registry.get("BandMath").kind == "command"  # appkgs/BandMath, loaded by the fixture
    request = {"inputs": {"il": [{"href": "https://example.org/a.tif"}], "out": "uint8", "exp": "im1b1"},
               "outputs": {"out": {"format": {"mediaType": "image/png"}, "transmissionMode": "reference"}}}
    await insert(svc, job_id="png", process_id="BandMath", status="accepted", external_id=None, request=request)
    await svc.recover()
    spec = await _submitted(svc, "png")
    assert fake.submissions == ["png"] and spec.outputs == {"out": "outputs/out.png"}
    assert spec.argv == ["/opt/otbtf/bin/otbcli_BandMath", "-il", "inputs/il_0.tif", "-ram", "128", "-exp", "im1b1",
                         "-out", "outputs/out.png", "uint8"]


class _Asyncio:
    """hpgc.jobs.catalog's asyncio (where prepare runs), with the bounds given to wait_for recorded."""

    def __init__(self) -> None:
        self.bounds: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def wait_for(self, aw: Any, timeout: float) -> Any:
        self.bounds.append(timeout)
        return await asyncio.wait_for(aw, timeout)


async def test_a_deploy_waits_two_seconds_at_most_for_its_image(
        svc: JobService, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/architecture.md: the deploy answers within two seconds; the pull goes on after that."""
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    recorder = _Asyncio()
    monkeypatch.setattr(catalog_module, "asyncio", recorder)
    await svc.prepare("BandMath")
    assert recorder.bounds == [2.0]
    assert fake.pulled == ["otbtf_4.1.0-cpu-41faafe128236ad4.sif"]
    assert svc.registry.get("BandMath").status == "ready"
    assert svc.store.get_process("BandMath")["status"] == "ready"  # type: ignore[index]  # as stored
    assert svc._tasks == set()  # the finished pull is not kept


async def test_a_failed_pull_names_the_image_and_why(svc: JobService) -> None:
    svc.fake.pull_error = "manifest unknown"  # type: ignore[attr-defined]
    await svc.prepare("BandMath")
    assert svc.registry.get("BandMath").status == (
        "failed: the image docker://otbtf/4.1.0-cpu could not be pulled: manifest unknown")


async def test_a_process_whose_backend_is_not_configured_is_left_as_it_is(svc: JobService) -> None:
    svc.backends.pop("local")  # the default backend, which BandMath names none instead of
    await svc.prepare("BandMath")
    assert svc.registry.get("BandMath").status == "ready"
    assert svc.fake.pulled == []  # type: ignore[attr-defined]


# read, dismiss, results -----------------------------------------------------------------------------------------
async def test_other_users_jobs_do_not_exist_for_them(svc: JobService) -> None:
    await insert(svc)
    assert (await svc.get(ALICE, "j1"))["id"] == "j1"
    assert (await svc.get(ADMIN, "j1"))["id"] == "j1"
    with pytest.raises(NoSuchJob, match=r"^job 'j1' does not exist$"):
        await svc.get(BOB, "j1")
    with pytest.raises(NoSuchJob):
        await svc.dismiss(BOB, "j1")
    await insert(svc, job_id="j2", owner="bob")
    assert [r["id"] for r in (await svc.list(ALICE, JobQuery(owner="bob"))).rows] == ["j1"]  # owner forced
    assert sorted(r["id"] for r in (await svc.list(ADMIN, JobQuery(owner="alice"))).rows) == ["j1", "j2"]


async def test_dismiss(svc: JobService) -> None:
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    await insert(svc)
    done = await svc.dismiss(ALICE, "j1")
    assert (done["status"], done["message"]) == ("dismissed", "dismissed by the user")
    assert done["finished"] == done["updated"]
    assert fake.cancelled == ["j1"]
    await fake.until(lambda: fake.removed == ["j1"], "files removed")
    assert await svc.dismiss(ALICE, "j1") == done  # again: the same, nothing more
    assert fake.cancelled == ["j1"]
    await insert(svc, job_id="j2", status="successful", finished=150.0)
    assert (await svc.dismiss(ALICE, "j2"))["finished"] == 150.0
    assert fake.cancelled == ["j1"]
    await insert(svc, job_id="j3", status="accepted", external_id=None)
    await svc.dismiss(ALICE, "j3")
    assert fake.cancelled == ["j1"]  # not submitted yet: nothing to cancel
    fake.fail_cancel = BackendError("down")
    await insert(svc, job_id="j4")
    with pytest.raises(BackendUnavailable, match=r"^the job could not be cancelled: down$"):
        await svc.dismiss(ALICE, "j4")
    assert (await svc.get(ALICE, "j4"))["status"] == "running"


async def test_results_by_state(svc: JobService) -> None:
    await insert(svc, status="failed", message="exit 3", error={"type": "job-failed", "title": "Job failed",
                                                                  "detail": "exit 3"})
    with pytest.raises(JobFailed) as failed:
        await svc.results(ALICE, "j1")
    assert failed.value.detail == "exit 3" and failed.value.error["detail"] == "exit 3"
    await insert(svc, job_id="j2", status="failed", message=None)
    with pytest.raises(JobFailed, match=r"^the job failed$"):
        await svc.results(ALICE, "j2")
    await insert(svc, job_id="j3", status="dismissed")
    with pytest.raises(NoSuchJob, match=r"^job 'j3' was dismissed$"):
        await svc.results(ALICE, "j3")
    for status in ("accepted", "running"):
        await insert(svc, job_id=status, status=status)
        with pytest.raises(ResultNotReady, match=f"^job '{status}' is {status}; its results are not ready$"):
            await svc.results(ALICE, status)


async def test_results_values_and_files(svc: JobService) -> None:
    await insert(svc, status="successful", results={
        "stringOutput": "hi", "none": None, "n": 0,
        "tif": {"class": "File", "path": "/j/out.tif", "size": 12},
        "loc": {"class": "File", "location": "file:///j/data.bin"},
        "doubleOutput": {"class": "File", "path": "/j/noext"},
        "other": {"class": "File", "path": "/j/noext2"},
        "obj": {"class": "Directory", "path": "/j/d"}, "bare": {"class": "File"}})
    _, items = await svc.results(ALICE, "j1")
    assert items == {
        "stringOutput": OutputValue("hi"), "n": OutputValue(0),
        "tif": OutputFile(path="/j/out.tif", media_type="image/tiff", size=12),
        "loc": OutputFile(path="/j/data.bin", media_type="application/octet-stream"),
        "doubleOutput": OutputFile(path="/j/noext", media_type="application/octet-stream"),
        "other": OutputFile(path="/j/noext2", media_type="application/octet-stream"),
        "obj": OutputValue({"class": "Directory", "path": "/j/d"}),
        "bare": OutputFile(path="", media_type="application/octet-stream"),  # a File naming nothing
    }
    result = await svc.output(ALICE, "j1", "tif")
    assert isinstance(result, ResultFile)
    assert result.ref.external_id == "fake-j1" and result.backend is svc.fake and result.item.path == "/j/out.tif"  # type: ignore[attr-defined]
    with pytest.raises(NoSuchOutput, match=r"^job 'j1' has no output 'none'$"):
        await svc.output(ALICE, "j1", "none")


async def test_media_type_from_the_description_when_the_name_says_nothing(svc: JobService) -> None:
    from hpgc.models.ogc import OutputDescription

    process = svc.registry.get("echo")
    process.description.outputs["plain"] = OutputDescription.model_validate(
        {"schema": {"type": "string", "contentMediaType": "text/csv"}})
    process.description.outputs["alt"] = OutputDescription.model_validate(
        {"schema": {"oneOf": [{"type": "string"}, {"type": "string", "contentMediaType": "image/png"}]}})
    registry_get = svc.registry.get
    svc.registry.get = lambda pid: process if pid == "echo" else registry_get(pid)  # type: ignore[method-assign]
    await insert(svc, status="successful", results={"plain": {"class": "File", "path": "/j/x"},
                                                      "alt": {"class": "File", "path": "/j/y"},
                                                      "named": {"class": "File", "path": "/j/y.json"}})
    _, items = await svc.results(ALICE, "j1")
    assert {k: v.media_type for k, v in items.items()} == {  # type: ignore[union-attr]
        "plain": "text/csv", "alt": "image/png", "named": "application/json"}


async def test_public_urls_of_result_files(svc: JobService) -> None:
    svc.fake.public_url = lambda ref, path: f"https://files/{ref.job_id}{path}"  # type: ignore[attr-defined]
    await insert(svc, status="successful", results={"v": 1, "f": {"class": "File", "path": "/a.txt"}})
    _, items = await svc.results(ALICE, "j1")
    assert items["f"] == OutputFile(path="/a.txt", media_type="text/plain", public_url="https://files/j1/a.txt")
    assert items["v"] == OutputValue(1)


async def test_logs_and_script(svc: JobService) -> None:
    await insert(svc)
    logs = await svc.logs(ALICE, "j1", None)
    assert (logs["jobID"], logs["stdout"], logs["stderr"]) == ("j1", "out", "err")
    assert svc.fake.logs_asked == [("j1", None)]  # type: ignore[attr-defined]
    await svc.logs(ALICE, "j1", 64)
    assert svc.fake.logs_asked[-1] == ("j1", 64)  # type: ignore[attr-defined]
    assert [e["status"] for e in logs["events"]] == ["running"]
    assert await svc.script(ALICE, "j1") == "#!/bin/sh\necho fake j1\n"
    with pytest.raises(NoSuchJob):  # the events come with the logs: another user's job does not exist for you
        await svc.logs(BOB, "j1", None)
    await insert(svc, job_id="j2", external_id=None)
    assert (await svc.logs(ALICE, "j2", 10))["stdout"] == "" and await svc.script(ALICE, "j2") is None

    async def broken(job: JobRef, tail: int | None = None) -> Any:
        raise BackendError("ssh down")

    svc.fake.logs = broken  # type: ignore[attr-defined]
    got = await svc.logs(ALICE, "j1", None)
    assert (got["stdout"], got["stderr"]) == ("", "(logs unavailable: ssh down)")


# monitor ---------------------------------------------------------------------------------------------------------
async def test_poll_once_applies_what_changed(svc: JobService) -> None:
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    monitor = Monitor(svc, fake, 0.1, 1.0)
    assert await monitor.poll_once() == 0 and fake.polls == 0  # nothing active: the backend is not asked
    await insert(svc, job_id="a")
    await insert(svc, job_id="b")
    await insert(svc, job_id="c", external_id=None, status="accepted")  # not submitted: not polled
    await insert(svc, job_id="d", status="successful")  # final: not polled
    await insert(svc, job_id="e", backend="slurm")  # another backend's
    fake.late = {"a": BackendStatus(status=S.running, progress=60), "b": BackendStatus(status=S.running),
                 "zz": BackendStatus(status=S.failed)}  # zz: not a job of ours
    assert await monitor.poll_once() == 1
    assert fake.polled == [{"a", "b"}]
    assert (await svc.db(svc.store.get_job, "a"))["progress"] == 60  # type: ignore[index]
    assert (await svc.db(svc.store.get_job, "zz")) is None
    assert await monitor.poll_once() == 0  # nothing new


async def test_poll_once_counts_only_changes_that_were_stored(svc: JobService) -> None:
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    monitor = Monitor(svc, fake, 0.1, 1.0)
    await insert(svc, job_id="a")
    await insert(svc, job_id="b")
    fake.late = {"a": BackendStatus(status=S.failed, message="x"), "b": BackendStatus(status=S.failed, message="y")}
    fake.poll_gate = gate = asyncio.Event()
    cycle = asyncio.create_task(monitor.poll_once())
    await fake.until(lambda: fake.polls == 1, "the poll begun")
    await svc.dismiss(ALICE, "a")  # ends while the backend is being asked
    gate.set()
    assert await asyncio.wait_for(cycle, 10) == 1
    assert (await svc.db(svc.store.get_job, "a"))["status"] == "dismissed"  # type: ignore[index]
    assert (await svc.db(svc.store.get_job, "b"))["status"] == "failed"  # type: ignore[index]


def test_poll_columns_address_a_job_and_show_a_change() -> None:
    assert set(POLL_COLUMNS) == {"id", "external_id", "cluster", "unix_user", "status", "progress", "message",
                                 "tasks"}  # a sweep (tasks not None) is polled by its tasks


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_monitor_interval_grows_while_quiet_and_resets_on_change(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = Monitor(SimpleNamespace(), SimpleNamespace(name="x"), 1.0, 3.0)  # type: ignore[arg-type]
    script: list[Any] = [0, 0, 0, 0, 2, RuntimeError("sacct failed"), 0]
    waits: list[float] = []

    async def poll_once() -> int:
        if not script:
            raise asyncio.CancelledError
        step = script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    @contextlib.asynccontextmanager
    async def timeout(seconds: float) -> AsyncIterator[None]:
        waits.append(seconds)
        raise TimeoutError  # the interval passed without a wake
        yield

    monitor.poll_once = poll_once  # type: ignore[method-assign]
    monkeypatch.setattr(monitor_module, "asyncio", SimpleNamespace(
        timeout=timeout, sleep=None, CancelledError=asyncio.CancelledError))
    failures = REGISTRY.get_sample_value("hpgc_poll_failures_total", {"backend": "x"}) or 0.0
    cycles = REGISTRY.get_sample_value("hpgc_poll_cycle_seconds_count", {"backend": "x"}) or 0.0
    took = REGISTRY.get_sample_value("hpgc_poll_cycle_seconds_sum", {"backend": "x"}) or 0.0
    with pytest.raises(asyncio.CancelledError):
        await monitor._run()
    assert REGISTRY.get_sample_value("hpgc_poll_failures_total", {"backend": "x"}) == failures + 1
    assert REGISTRY.get_sample_value("hpgc_poll_cycle_seconds_count", {"backend": "x"}) == cycles + 8  # with the last
    assert 0 <= (REGISTRY.get_sample_value("hpgc_poll_cycle_seconds_sum", {"backend": "x"}) or 0.0) - took < 5
    assert waits == [1.5, 2.25, 3.0, 3.0, 1.0, 1.5, 2.25]
    assert [r.getMessage() for r in caplog.records] == ["polling x failed; trying again"]  # and it went on


async def test_a_woken_monitor_polls_at_most_once_per_min_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monitor = Monitor(SimpleNamespace(), SimpleNamespace(name="x"), 2.0, 10.0)  # type: ignore[arg-type]
    clock = _Clock()
    script = [(0, 0.5), (0, 3.0), (0, 0.0)]  # (jobs changed, seconds the cycle took before the wake)
    waits: list[float] = []
    sleeps: list[float] = []

    async def poll_once() -> int:
        if not script:
            raise asyncio.CancelledError
        changed, took = script.pop(0)
        clock.now += took
        return changed

    @contextlib.asynccontextmanager
    async def timeout(seconds: float) -> AsyncIterator[None]:
        waits.append(seconds)
        monitor.wake()  # a submission arrived while waiting
        yield

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monitor.poll_once = poll_once  # type: ignore[method-assign]
    monkeypatch.setattr(monitor_module, "asyncio", SimpleNamespace(
        timeout=timeout, sleep=sleep, CancelledError=asyncio.CancelledError))
    monkeypatch.setattr(monitor_module, "time", clock)
    with pytest.raises(asyncio.CancelledError):
        await monitor._run()
    assert waits == [3.0, 3.0, 3.0]  # woken: back to the minimum, then ×1.5 after a quiet cycle
    assert sleeps == [1.5, 0.0, 2.0]  # the rest of min_interval since the cycle began


async def test_monitor_start_wake_and_stop(svc: JobService) -> None:
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    await insert(svc)
    monitor = Monitor(svc, fake, 0.01, 0.02)
    monitor.start()
    assert monitor._task is not None and monitor._task.get_name() == "monitor-local"
    await fake.until(lambda: fake.polls >= 2, "two polls")
    await monitor.stop()
    assert monitor._task is not None and monitor._task.cancelled()
    await Monitor(svc, fake, 0.01, 0.02).stop()  # never started: nothing to stop


async def test_a_job_the_backend_names_is_polled_at_once_and_alone(svc: JobService) -> None:
    """A local job's end (on_change(job_id)) is polled right away, without the min_interval a full cycle
    waits after a wake, and only that job; a name that is no active job of this backend makes a full cycle."""
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    for job_id in ("j1", "j2"):
        await insert(svc, job_id=job_id)
        fake.late[job_id] = BackendStatus(status=S.running, progress=5, message="running")
    monitor = Monitor(svc, fake, 3600.0, 3600.0)  # a full cycle only at start
    monitor.start()
    await fake.until(lambda: fake.polled == [{"j1", "j2"}], "the first full cycle")
    fake.late["j1"] = BackendStatus(status=S.failed, exit_code=3, message="boom")
    ended = asyncio.Event()
    svc.listeners.append(lambda r: ended.set() if r["id"] == "j1" and r["status"] == "failed" else None)
    monitor.wake("j1")
    await asyncio.wait_for(ended.wait(), 10)  # not the hour a full cycle would wait
    assert fake.polled[1:] == [{"j1"}]
    assert svc.store.get_job("j2")["status"] == "running"
    await monitor.stop()
    monitor.wake("no-such-job")  # not an active job here: the next cycle polls every active job
    assert await monitor.poll_changed() == 0 and monitor._wake.is_set() and fake.polled[1:] == [{"j1"}]


async def test_only_active_plain_jobs_of_its_backend_are_polled_alone(svc: JobService) -> None:
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    await insert(svc, job_id="mine")
    await insert(svc, job_id="ended", status="successful")
    await insert(svc, job_id="elsewhere", backend="slurm")
    await insert(svc, job_id="sweep", tasks={"total": 2, "running": 2})
    fake.late["mine"] = BackendStatus(status=S.running, progress=5, message="running")
    monitor = Monitor(svc, fake, 3600.0, 3600.0)
    monitor.wake("sweep")  # a sweep's tasks are polled in a full cycle (which also ends a sweep left taskless)
    await monitor.poll_changed()
    assert monitor._wake.is_set() and fake.polled == [] and svc.store.get_job("sweep")["status"] == "running"
    monitor._wake.clear()
    monitor.wake("mine")
    await monitor.poll_changed()
    assert fake.polled == [{"mine"}] and not monitor._wake.is_set()  # all it was told of was polled
    for job_id in ("mine", "ended", "elsewhere", "sweep"):
        monitor.wake(job_id)
    await monitor.poll_changed()
    assert fake.polled[1:] == [{"mine"}] and monitor._changed == set()
    assert monitor._wake.is_set()  # the others: the next full cycle
    await monitor.poll_once()
    assert fake.polled[2:] == [{"mine"}]  # a sweep is polled as its tasks (it has none here), never as one job


async def test_a_jobs_status_is_applied_with_its_log_fields(svc: JobService) -> None:
    """Whatever the monitor logs while it applies a job's change names the job, its process, owner and cluster."""
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    await insert(svc, job_id="j1", cluster="c1")
    fake.late["j1"] = BackendStatus(status=S.failed, exit_code=3, message="boom")
    seen: list[dict[str, str]] = []
    apply = svc.apply

    async def recording(*args: Any) -> Any:
        seen.append(log_fields())
        return await apply(*args)

    svc.apply = recording  # type: ignore[method-assign]
    assert await Monitor(svc, fake, 1.0, 1.0).poll_once() == 1
    assert seen == [{"job_id": "j1", "process_id": "echo", "user": "alice", "cluster": "c1"}]


async def test_polls_of_single_jobs_leave_the_cycle_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the monitor waits out its interval, a spurious signal polls nothing, a named job is polled alone at
    once, and the full cycle still comes when the interval ends, not later and not earlier."""
    monitor = Monitor(SimpleNamespace(), SimpleNamespace(name="x"), 2.0, 10.0)  # type: ignore[arg-type]
    clock = _Clock()
    cycles: list[float] = []
    alone: list[set[str]] = []
    waits: list[float] = []

    async def poll_once() -> int:
        cycles.append(clock.now)
        if len(cycles) == 2:
            raise asyncio.CancelledError
        return 0

    async def poll_changed() -> int:
        alone.append(set(monitor._changed))
        monitor._changed.clear()
        clock.now += 0.5
        return 1

    @contextlib.asynccontextmanager
    async def timeout(seconds: float) -> AsyncIterator[None]:
        waits.append(seconds)
        if len(waits) == 1:
            clock.now += 0.5
            monitor._signal.set()  # spurious: nothing changed
        elif len(waits) == 2:
            clock.now += 1.5
            monitor.wake("j1")
        else:
            clock.now += seconds
            raise TimeoutError
        yield

    monitor.poll_once = poll_once  # type: ignore[method-assign]
    monitor.poll_changed = poll_changed  # type: ignore[method-assign]
    monkeypatch.setattr(monitor_module, "asyncio", SimpleNamespace(
        timeout=timeout, sleep=None, CancelledError=asyncio.CancelledError))
    monkeypatch.setattr(monitor_module, "time", clock)
    with pytest.raises(asyncio.CancelledError):
        await monitor._run()
    assert alone == [{"j1"}]
    assert waits == [3.0, 2.5, 0.5]  # the quiet cycle's 3 s, less what passed, less the single job's poll
    assert cycles == [1000.0, 1003.0]


async def test_stop_right_after_a_wake_stops_the_monitor() -> None:
    """A submission at shutdown wakes the monitor as it is stopped: the stop must still end it (on Python 3.11,
    asyncio.wait_for returned the set event and lost that cancel: the loop ran on and stop() waited forever)."""
    monitor = Monitor(SimpleNamespace(), SimpleNamespace(name="x"), 3600.0, 3600.0)  # type: ignore[arg-type]
    polled = asyncio.Event()

    async def poll_once() -> int:
        polled.set()
        return 0

    monitor.poll_once = poll_once  # type: ignore[method-assign]
    monitor.start()
    await asyncio.wait_for(polled.wait(), 10)  # it has polled and now waits for a wake or its interval
    monitor.wake()
    stopping = asyncio.ensure_future(monitor.stop())
    # not wait_for(stop(), ...): its cancel at the deadline would end the monitor and hide the hang
    done, _ = await asyncio.wait({stopping}, timeout=10)
    assert monitor._task is not None
    if not done:
        monitor._task.cancel()
        await stopping
    assert stopping in done, "stop() hung: the monitor lost the cancel"
    assert monitor._task.cancelled()


async def test_files_that_cannot_be_removed_are_logged(svc: JobService, caplog: pytest.LogCaptureFixture) -> None:
    async def remove(job: JobRef) -> None:
        raise OSError("read-only file system")

    svc.fake.remove = remove  # type: ignore[attr-defined]
    await JobService._remove(svc.fake, JobRef(job_id="j9"))  # type: ignore[attr-defined]
    assert [r.getMessage() for r in caplog.records] == [
        "the files of dismissed job j9 could not be removed: read-only file system"]
    assert caplog.records[0].levelname == "WARNING"


async def test_poll_once_counts_every_change_and_ignores_jobs_not_asked_about(svc: JobService) -> None:
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    await insert(svc, job_id="a")
    await insert(svc, job_id="b")
    await insert(svc, job_id="c")
    asked = fake.poll

    async def poll(jobs: list[JobRef]) -> dict[str, BackendStatus]:
        out = await asked(jobs)
        out["stranger"] = BackendStatus(status=S.failed, message="not ours")  # a backend may say too much
        return out

    fake.poll = poll  # type: ignore[method-assign]
    fake.late = {"a": BackendStatus(status=S.running, progress=20), "b": BackendStatus(status=S.running, progress=30),
                 "c": BackendStatus(status=S.running, progress=5)}
    assert await Monitor(svc, fake, 0.1, 1.0).poll_once() == 2
    assert await svc.db(svc.store.get_job, "stranger") is None


class _Callbacks:
    """Stands in for the notifier: one outbox row per change of a job that has a subscriber."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []
        self.afters: list[dict[str, Any]] = []

    async def check(self, subscriber: dict[str, str]) -> None:
        return None

    async def rows(self, before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
        self.changes.append((before["status"], after["status"]))
        self.afters.append(after)
        return [{"job_id": after["id"], "event": after["status"], "url": "http://cb/x", "host": "cb",
                 "payload": "{}", "attempts": 0, "created": 1.0, "next_attempt": 1.0}]


async def test_changes_carry_their_callbacks_in_the_same_write(svc: JobService) -> None:
    callbacks = _Callbacks()
    svc.callbacks = callbacks
    await insert(svc, subscriber={"successUri": "http://cb/x"})
    await insert(svc, job_id="quiet")  # no subscriber: no rows asked for
    await svc.apply("j1", BackendStatus(status=S.running, progress=50))
    await svc.apply("quiet", BackendStatus(status=S.running, progress=50))
    await svc.dismiss(ALICE, "j1")
    await svc.dismiss(ALICE, "quiet")
    assert callbacks.changes == [("running", "running"), ("running", "dismissed")]
    assert [r["event"] for r in await svc.db(svc.store.job_outbox, "j1")] == ["running", "dismissed"]
    assert await svc.db(svc.store.job_outbox, "quiet") == []


async def test_the_callback_of_a_dismiss_sees_the_job_as_stored(
        svc: JobService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notification of a dismiss is built from the job as the dismiss leaves it: finished and updated now."""
    callbacks = _Callbacks()
    svc.callbacks = callbacks
    await insert(svc, subscriber={"failedUri": "http://cb/x"})  # running since 101.0, updated 101.0
    monkeypatch.setattr(time, "time", lambda: 5000.0)
    new = await svc.dismiss(ALICE, "j1")
    (after,) = callbacks.afters
    assert (after["status"], after["message"], after["finished"], after["updated"]) == (
        "dismissed", "dismissed by the user", 5000.0, 5000.0)
    assert (new["finished"], new["updated"]) == (5000.0, 5000.0)


async def test_the_callbacks_of_changes_see_the_job_as_stored(
        svc: JobService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each notification is built from the job as the change leaves it: started, updated, finished now."""
    callbacks = _Callbacks()
    svc.callbacks = callbacks
    await insert(svc, status="accepted", started=None, subscriber={"successUri": "http://cb/x"})
    monkeypatch.setattr(time, "time", lambda: 5000.0)
    await svc.apply("j1", BackendStatus(status=S.running, progress=10))
    monkeypatch.setattr(time, "time", lambda: 6000.0)
    svc.fake.manifest = {"out": "v"}  # type: ignore[attr-defined]
    await svc.apply("j1", BackendStatus(status=S.successful, exit_code=0))
    running, done = callbacks.afters
    assert (running["status"], running["started"], running["updated"], running["finished"]) == (
        "running", 5000.0, 5000.0, None)
    assert (done["status"], done["started"], done["updated"], done["finished"], done["progress"]) == (
        "successful", 5000.0, 6000.0, 6000.0, 100)
    stored = await svc.db(svc.store.get_job, "j1")
    assert (stored["started"], stored["updated"], stored["finished"]) == (5000.0, 6000.0, 6000.0)  # type: ignore[index]
    # a job that ends without having been seen running starts and ends at once
    await insert(svc, job_id="j2", status="accepted", started=None, subscriber={"failedUri": "http://cb/x"})
    await svc.apply("j2", BackendStatus(status=S.failed, exit_code=2, message="boom"))
    failed = callbacks.afters[-1]
    assert (failed["status"], failed["started"], failed["updated"], failed["finished"], failed["exit_code"]) == (
        "failed", 6000.0, 6000.0, 6000.0, 2)
    assert failed["error"] == {"type": "job-failed", "title": "Job failed", "detail": "boom"}


class _Outbound:
    def __init__(self) -> None:
        self.checked: list[tuple[str, str]] = []

    def check_url(self, url: str, where: str) -> None:
        self.checked.append((url, where))
        if "10.0.0.1" in url:
            raise InvalidParameterValue(f"{where}: refused by policy")


async def test_hrefs_are_checked_at_submission_when_the_server_downloads_them(svc: JobService) -> None:
    from hpgc.models.ogc import InputDescription

    process = svc.registry.get("echo")
    process.description.inputs["f"] = InputDescription.model_validate(
        {"schema": {"type": "string", "format": "binary"}, "minOccurs": 0, "maxOccurs": 2})
    outbound = _Outbound()
    svc.outbound = outbound  # type: ignore[assignment]
    body = Execute.model_validate({"inputs": {"stringInput": "a", "f": [{"href": "https://x/1"},
                                                                        {"href": "https://x/2"}]}})
    await svc.create(ALICE, process, body)
    assert outbound.checked == [("https://x/1", "input 'f'"), ("https://x/2", "input 'f'")]
    with pytest.raises(InvalidParameterValue, match=r"^input 'f': refused by policy$"):
        await svc.create(ALICE, process, Execute.model_validate(
            {"inputs": {"stringInput": "a", "f": {"href": "http://10.0.0.1/x"}}}))
    asked: list[str | None] = []

    def on_server(cluster: str | None) -> bool:
        asked.append(cluster)
        return cluster == "here"

    svc.fake.stages_in_on_server = on_server  # type: ignore[attr-defined]
    svc.fake.cluster_names = ["here", "there"]
    outbound.checked.clear()
    await svc.create(ADMIN, process, body, cluster="there")  # the cluster's job downloads: not checked here
    assert outbound.checked == [] and asked == ["there"]
    await svc.create(ADMIN, process, body, cluster="here")
    assert [url for url, _ in outbound.checked] == ["https://x/1", "https://x/2"]
    svc.outbound = None
    await svc.create(BOB, process, Execute.model_validate(
        {"inputs": {"stringInput": "a", "f": {"href": "http://10.0.0.1/x"}}}), cluster="here")  # no client: none


async def test_a_failed_write_of_backend_ids_reaches_every_waiting_submission(svc: JobService) -> None:
    import sqlite3

    def broken(items: list[Any]) -> list[bool]:
        raise sqlite3.OperationalError("disk I/O error")

    svc.store.update_jobs = broken  # type: ignore[method-assign]
    first = asyncio.create_task(svc._record_submitted("a", "fake-a", "local"))
    second = asyncio.create_task(svc._record_submitted("b", "fake-b", "local"))
    for task in (first, second):
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            await asyncio.wait_for(task, 10)


async def test_a_resubmission_checks_inputs_against_the_servers_cap(svc: JobService) -> None:
    svc.max_inputs = 1
    await insert(svc, job_id="new", status="accepted", external_id=None,
                 request={"inputs": {"stringInput": "a", "doubleInput": 1.5}})
    await svc.recover()
    done = await asyncio.wait_for(svc.wait("new", 10), 20)
    assert (done["status"], done["message"]) == (
        "failed", "submission failed: InvalidParameterValue: too many input values (more than 1)")
