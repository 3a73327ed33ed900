"""hpgc/jobs/submission.py beyond test_job_service.py: OGC's sync/async rule, the package's cluster, what a
submission logs and counts, the log fields of its task. Expected values are written out."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from hpgc.auth.principal import InsufficientScope, Principal
from hpgc.backends.base import BackendError
from hpgc.errors import InvalidParameterValue, LimitReached, NotAllowed
from hpgc.jobs import submission as submission_module
from hpgc.jobs.limits import LimitSettings
from hpgc.jobs.service import JobService
from hpgc.jobs.submission import package_cluster, runs_async
from hpgc.logs import current
from hpgc.models.ogc import Execute, JobControlOption
from hpgc.models.resources import ResourceLimits
from hpgc.models.run import RunSpec
from hpgc.packages.registry import ProcessRegistry
from hpgc.store import Store
from tests.api.fake_backend import FakeBackend

REPO = Path(__file__).resolve().parents[2]
ALICE = Principal(subject="alice", unix_user="alice")
SYNC, ASYNC = JobControlOption.sync, JobControlOption.async_


@pytest.fixture
async def svc(tmp_path: Path) -> Any:
    store = Store(tmp_path / "db.sqlite")
    registry = ProcessRegistry(store)
    registry.load_builtins(REPO / "appkgs")
    backend = FakeBackend()
    service = JobService(store, registry, {"local": backend}, "local",
                         limits=LimitSettings(active_jobs_per_user=5, processes_per_user=0, retry_after_s=7))
    service.fake = backend  # type: ignore[attr-defined]
    service.recorded = asyncio.Event()  # type: ignore[attr-defined]  # set once a backend id is stored
    service.on_submitted = lambda name: service.recorded.set()  # type: ignore[method-assign]
    yield service
    service.close()
    store.close()


@pytest.mark.parametrize(("options", "want_async", "expected"), [
    ([SYNC, ASYNC], True, True),
    ([SYNC, ASYNC], False, False),
    ([SYNC], True, False),  # cannot run asynchronously: synchronously whatever the client prefers
    ([SYNC], False, False),
    ([ASYNC], True, True),
    ([ASYNC], False, True),  # cannot run synchronously
    ([], False, True),
    ([], True, True),
])
def test_runs_async(options: list[JobControlOption], want_async: bool, expected: bool) -> None:
    assert runs_async(options, want_async) is expected


def test_package_cluster(svc: JobService) -> None:
    echo = svc.registry.get("echo")
    assert package_cluster(echo) is None

    def naming(value: object) -> Any:
        params = {"parameters": [{"name": "cluster", "value": value}]}
        return dataclasses.replace(echo, description=echo.description.model_copy(
            update={"additionalParameters": params}))

    assert package_cluster(naming("gpu")) == "gpu"
    assert package_cluster(naming(["gpu"])) == "gpu"
    assert package_cluster(naming(7)) == "7"  # a name, whatever the JSON type
    assert package_cluster(naming("")) is None


def _submissions(result: str) -> float:
    return REGISTRY.get_sample_value("hpgc_submissions_total", {"backend": "local", "result": result}) or 0.0


def _submit_seconds() -> float:
    return REGISTRY.get_sample_value("hpgc_submit_seconds_sum", {"backend": "local"}) or 0.0


def _submit_durations() -> float:
    return REGISTRY.get_sample_value("hpgc_submit_seconds_count", {"backend": "local"}) or 0.0


async def test_submissions_are_counted_by_result_and_timed_when_they_succeed(
        svc: JobService, monkeypatch: pytest.MonkeyPatch) -> None:
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    echo = svc.registry.get("echo")
    clock = iter([50.0, 51.5, 60.0, 70.0])  # monotonic(): the first submission's start and end, then two starts
    monkeypatch.setattr(submission_module, "time", SimpleNamespace(time=time.time, monotonic=lambda: next(clock)))
    before = (_submissions("ok"), _submissions("failed"), _submit_durations(), _submit_seconds())
    await svc.create(ALICE, echo, Execute(inputs={"stringInput": "a"}))
    await asyncio.wait_for(svc.recorded.wait(), 10)  # type: ignore[attr-defined]  # counted and timed before
    for error in (BackendError("refused"), ValueError("bug")):
        fake.fail_submit = error
        job = await svc.create(ALICE, echo, Execute(inputs={"stringInput": "a"}))
        assert (await svc.wait(job["id"], 10))["status"] == "failed"  # counted before the job failed
    assert (_submissions("ok") - before[0], _submissions("failed") - before[1], _submit_durations() - before[2]) == (
        1, 2, 1)
    assert _submit_seconds() - before[3] == pytest.approx(1.5, abs=1e-9)


async def test_a_submission_logs_where_the_job_went_with_the_jobs_fields(
        svc: JobService, caplog: pytest.LogCaptureFixture) -> None:
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    fake.cluster_names = ["c1"]
    seen: list[dict[str, str]] = []
    submit = fake.submit

    async def submit_and_look(spec: RunSpec) -> str:
        seen.append(current())
        return await submit(spec)

    fake.submit = submit_and_look  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="hpgc"):
        job = await svc.create(ALICE, svc.registry.get("echo"), Execute(inputs={"stringInput": "a"}), cluster="c1")
        await asyncio.wait_for(svc.recorded.wait(), 10)  # type: ignore[attr-defined]  # logged before
    assert seen == [{"job_id": job["id"], "process_id": "echo", "user": "alice", "cluster": "c1"}]
    (record,) = [r for r in caplog.records if "submitted to" in r.getMessage()]
    assert (record.levelname, record.getMessage()) == (
        "INFO", f"job {job['id']} submitted to local as fake-{job['id']}")


async def test_a_job_dismissed_during_its_submission_whose_cancel_fails_is_still_removed(
        svc: JobService, caplog: pytest.LogCaptureFixture) -> None:
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    fake.submit_gate = gate = asyncio.Event()
    fake.fail_cancel = BackendError("cluster unreachable")
    job = await svc.create(ALICE, svc.registry.get("sleep"), Execute(inputs={}))
    await fake.until(lambda: job["id"] in fake.submissions, "the submission begun")
    await svc.dismiss(ALICE, job["id"])
    with caplog.at_level(logging.WARNING, logger="hpgc"):
        gate.set()
        await fake.until(lambda: job["id"] in fake.removed, "the late submission removed")
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"job {job['id']} was dismissed during its submission and could not be cancelled: cluster unreachable"]


async def test_a_token_without_execute_is_refused_with_why(svc: JobService) -> None:
    with pytest.raises(NotAllowed) as err:
        await svc.create(Principal(subject="x", can_execute=False), svc.registry.get("echo"),
                         Execute(inputs={"stringInput": "a"}))
    assert err.value.detail == "your token does not allow executing processes"


async def test_the_servers_cap_on_input_values_applies_to_a_new_job(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    registry = ProcessRegistry(store)
    registry.load_builtins(REPO / "appkgs")
    service = JobService(store, registry, {"local": FakeBackend()}, "local", max_inputs=2)
    hrefs = [{"href": f"https://example.org/{i}.tif"} for i in range(3)]
    try:
        with pytest.raises(InvalidParameterValue, match=r"^too many input values \(more than 2\)$"):
            await service.create(ALICE, registry.get("BandMath"), Execute(inputs={"il": hrefs, "exp": "im1b1"}))
        two = await service.create(ALICE, registry.get("BandMath"), Execute(inputs={"il": hrefs[:1], "exp": "im1b1"}))
        assert two["status"] == "accepted"
    finally:
        service.close()
        store.close()


class Callbacks:
    def __init__(self) -> None:
        self.checked: list[dict[str, str]] = []

    async def check(self, subscriber: dict[str, str]) -> None:
        self.checked.append(subscriber)


async def test_the_subscriber_is_checked_and_stored_as_sent(svc: JobService) -> None:
    echo = svc.registry.get("echo")
    job = await svc.create(ALICE, echo, Execute.model_validate(
        {"inputs": {"stringInput": "a"}, "subscriber": {"successUri": "https://example.org/done"}}))
    assert job["subscriber"] == {"successUri": "https://example.org/done"}  # no members that were not sent
    callbacks = Callbacks()
    svc.callbacks = callbacks  # type: ignore[assignment]
    job = await svc.create(ALICE, echo, Execute.model_validate(
        {"inputs": {"stringInput": "a"}, "subscriber": {"failedUri": "https://example.org/failed"}}))
    assert callbacks.checked == [{"failedUri": "https://example.org/failed"}]
    assert (await svc.db(svc.store.get_job, job["id"]))["subscriber"] == {  # type: ignore[index]
        "failedUri": "https://example.org/failed"}
    await svc.create(ALICE, echo, Execute(inputs={"stringInput": "a"}))
    assert len(callbacks.checked) == 1  # no subscriber: nothing to check


async def test_the_requested_outputs_and_resources_reach_the_spec_within_the_clusters_limits(
        svc: JobService) -> None:
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    fake.cluster_names = ["small", "big"]
    asked: list[str | None] = []

    def limits(cluster: str | None) -> ResourceLimits:
        asked.append(cluster)
        return ResourceLimits(cpus=4 if cluster == "big" else 2, partitions=[], where=f"cluster '{cluster}'")

    fake.resource_limits = limits  # type: ignore[method-assign]
    bandmath = svc.registry.get("BandMath")
    body = {"inputs": {"il": [{"href": "https://example.org/a.tif"}], "exp": "im1b1"},
            "outputs": {"out": {"format": {"mediaType": "image/png"}}}, "hpgc:resources": {"cpus": 3}}
    with pytest.raises(InvalidParameterValue, match="cluster 'small'"):
        await svc.create(ALICE, bandmath, Execute.model_validate(body), cluster="small")
    job = await svc.create(ALICE, bandmath, Execute.model_validate(body), cluster="big")
    await asyncio.wait_for(svc.recorded.wait(), 10)  # type: ignore[attr-defined]
    assert asked == ["small", "big"]  # the spec built at the execute is the one submitted, not built again
    spec = fake.specs[job["id"]]
    assert spec.outputs == {"out": "outputs/out.png"} and spec.resources.cpus == 3
    assert job["resources"]["cpus"] == 3


async def test_recover_logs_each_job_it_resubmits(svc: JobService, caplog: pytest.LogCaptureFixture) -> None:
    await svc.db(svc.store.insert_job, {
        "id": "new", "process_id": "echo", "owner": "alice", "status": "accepted", "backend": "local",
        "created": 1.0, "updated": 1.0, "request": {"inputs": {"stringInput": "a"}}})
    with caplog.at_level(logging.INFO, logger="hpgc"):
        await svc.recover()
        await asyncio.wait_for(svc.recorded.wait(), 10)  # type: ignore[attr-defined]
    assert "resubmitting job new (the server stopped before it reached the backend)" in [
        r.getMessage() for r in caplog.records]


async def test_who_may_deploy_on_which_backend(svc: JobService) -> None:
    """Catalog.check_deploy: the backend a deployed package runs on (none named: the default) decides."""
    local: FakeBackend = svc.fake  # type: ignore[attr-defined]
    local.deploy_needs_admin = True  # jobs run as the server's account
    svc.backends["cluster"] = FakeBackend()  # jobs run as their users: anyone may deploy
    with pytest.raises(InsufficientScope) as err:
        svc.check_deploy(ALICE)
    assert err.value.detail.startswith("deployed processes run on the 'local' backend here, as the server's own")
    with pytest.raises(InsufficientScope, match="'local' backend"):
        svc.check_deploy(ALICE, "local")
    svc.check_deploy(ALICE, "cluster")
    svc.check_deploy(Principal(subject="root", is_admin=True))
    svc.default_backend = "cluster"
    svc.check_deploy(ALICE)


async def test_the_new_job_as_returned_and_stored(svc: JobService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(submission_module, "time", SimpleNamespace(time=lambda: 1234.5, monotonic=time.monotonic))
    body = {"inputs": {"stringInput": "a"}, "subscriber": {"successUri": "https://example.org/done"}}
    created = await svc.create(ALICE, svc.registry.get("echo"), Execute.model_validate(body), base_url="http://h")
    assert sorted(created) == [
        "backend", "base_url", "cluster", "created", "error", "exit_code", "external_id", "finished", "id", "message",
        "owner", "process_id", "progress", "request", "resources", "results", "started", "status", "subscriber",
        "unix_user", "updated"]
    assert {k: created[k] for k in ("error", "exit_code", "results", "finished", "started")} == dict.fromkeys(
        ("error", "exit_code", "results", "finished", "started"))
    request = {**body, "response": "raw"}  # as sent with OGC's default response; no empty members, URLs as text
    assert created["request"] == request
    assert (created["created"], created["updated"]) == (1234.5, 1234.5)
    stored = await svc.db(svc.store.get_job, created["id"])
    assert stored is not None and stored["request"] == request and stored["subscriber"] == body["subscriber"]


async def test_the_active_job_limits_message(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    registry = ProcessRegistry(store)
    registry.load_builtins(REPO / "appkgs")
    backend = FakeBackend()
    backend.submit_gate = asyncio.Event()
    service = JobService(store, registry, {"local": backend}, "local",
                         limits=LimitSettings(active_jobs_per_user=1, processes_per_user=0, retry_after_s=7))
    try:
        await service.create(ALICE, registry.get("echo"), Execute(inputs={"stringInput": "a"}))
        with pytest.raises(LimitReached) as err:
            await service.create(ALICE, registry.get("echo"), Execute(inputs={"stringInput": "a"}))
        assert err.value.detail == ("you have 1 jobs accepted or running, the most this server runs for one user "
                                    "at once; wait for one to end or dismiss one")
    finally:
        backend.submit_gate.set()
        service.close()
        store.close()


async def test_a_resubmitted_job_keeps_its_resources_within_its_clusters_limits(svc: JobService) -> None:
    fake: FakeBackend = svc.fake  # type: ignore[attr-defined]
    fake.cluster_names = ["small", "big"]
    asked: list[str | None] = []

    def limits(cluster: str | None) -> ResourceLimits:
        asked.append(cluster)
        return ResourceLimits(cpus=4 if cluster == "big" else 2, partitions=[], where=f"cluster '{cluster}'")

    fake.resource_limits = limits  # type: ignore[method-assign]
    await svc.db(svc.store.insert_job, {
        "id": "again", "process_id": "echo", "owner": "alice", "status": "accepted", "backend": "local",
        "cluster": "big", "created": 1.0, "updated": 1.0,
        "request": {"inputs": {"stringInput": "a"}, "hpgc:resources": {"cpus": 3}}})
    await svc.recover()
    await asyncio.wait_for(svc.recorded.wait(), 10)  # type: ignore[attr-defined]
    assert asked == ["big"]
    spec = fake.specs["again"]
    assert (spec.resources.cpus, spec.cluster) == (3, "big")
