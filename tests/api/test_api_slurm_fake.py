"""The whole API with the Slurm backend under it, over the fake Slurm behind a real SSH server on 127.0.0.1
(tests/unit/slurm_fake.py): the job service and its monitor meet the Slurm backend's real shell programs.

Most jobs are held in the fake Slurm (they never run); each test then says what Slurm reports for the job
(state, ExitCode, reason, the files the job would have left) and checks the status a client reads over HTTP.
The expected statuses and messages are written out here, not taken from hpgc's own tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.api.keys import JOBS
from hpgc.auth.settings import AuthSettings
from hpgc.backends.slurm.backend import SlurmBackend
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.config import Settings
from hpgc.packages.workers import DeploySettings
from tests.unit.slurm_fake import FakeSSHServer, fake_jobs, install_fake_slurm, kill_fake_jobs, set_fake_job

REPO = Path(__file__).resolve().parents[2]
ASYNC = {"Prefer": "respond-async"}
ECHO = {"inputs": {"stringInput": "hello slurm"}}


@dataclass
class Site:
    client: TestClient
    state: Path  # the fake Slurm's records
    work: Path  # the cluster's work_root (alice's jobs are in work/alice/<job id>)

    def hold(self, on: bool) -> None:
        knob = self.state / "hold"
        if on:
            knob.write_text("1")
        else:
            knob.unlink(missing_ok=True)

    def job_dir(self, job_id: str) -> Path:
        return self.work / "alice" / job_id

    def slurm(self, job_id: str, **fields: str) -> None:
        """What the fake Slurm reports for the job from now on."""
        set_fake_job(self.state, f"hpgc-{job_id}", **fields)

    async def job(self, job_id: str) -> dict[str, Any]:
        resp = await self.client.get(f"/jobs/{job_id}")
        assert resp.status == 200
        return await resp.json()

    async def job_where(self, job_id: str, done: Callable[[dict[str, Any]], bool], what: str,
                        timeout: float = 30) -> dict[str, Any]:
        """The job's status document once DONE says so: read again on each change the job service records
        (its listeners are called on every status, progress or message change), never on a timer."""
        service = self.client.app[JOBS]
        changed = asyncio.Event()

        def listener(row: dict[str, Any]) -> None:
            if row.get("id") == job_id:
                changed.set()

        service.listeners.append(listener)
        doc: dict[str, Any] = {}
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed.clear()
                    doc = await self.job(job_id)
                    if done(doc):
                        return doc
                    await changed.wait()
        except TimeoutError:
            raise AssertionError(f"job {job_id}: {what}: not within {timeout} s; last: {doc}") from None
        finally:
            service.listeners.remove(listener)

    async def queued_job(self) -> str:
        """An echo job, submitted and seen PENDING in Slurm by the monitor."""
        resp = await self.client.post("/processes/echo/execution", json=ECHO, headers=ASYNC)
        assert resp.status == 201, await resp.text()
        job_id = (await resp.json())["jobID"]
        doc = await self.job_where(job_id, lambda d: d.get("message") == "queued in Slurm: PENDING",
                                   "queued in Slurm")
        assert doc["status"] == "accepted"
        return job_id


@contextlib.asynccontextmanager
async def fake_slurm_site(tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]],
                          **cluster: Any) -> AsyncIterator[Site]:
    """The API on the Slurm backend, over the fake Slurm behind a real SSH server; `cluster`: more settings."""
    bin_dir, state = install_fake_slurm(tmp_path / "slurm")
    work = tmp_path / "work"
    work.mkdir()
    server = FakeSSHServer(tmp_path, {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKESLURM_STATE": str(state),
                                      "HOME": str(tmp_path), "LANG": "C.UTF-8"})
    await server.start()
    settings_ = ClusterSettings(host="127.0.0.1", port=server.port, known_hosts=server.known_hosts, user="alice",
                                key_file=server.client_key_file, work_root=str(work), poll_min_s=0.05,
                                poll_max_s=0.2, command_timeout_s=20, connect_timeout_s=5,
                                follow_completions=False,  # the fake answers when a command ends: it cannot follow
                                cwltool=str(Path(sys.executable).parent / "cwltool"), **cluster)
    settings = Settings(data_dir=tmp_path / "data", appkgs_dir=REPO / "appkgs", auth=AuthSettings(enabled=False),
                        default_backend="slurm", deploy=DeploySettings(start_with_server=False))
    s = Site(await aiohttp_client(create_app(settings, backends={"slurm": SlurmBackend({"fake": settings_})})),
             state, work)
    s.hold(True)
    try:
        yield s
    finally:
        await s.client.close()
        await server.stop()
        kill_fake_jobs(state)


@pytest.fixture
async def site(tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> AsyncIterator[Site]:
    async with fake_slurm_site(tmp_path, aiohttp_client) as s:
        yield s


# Slurm's report of a finished or changed job → what a client reads. Each row: sacct's State, ExitCode
# (CODE:SIGNAL) and Reason; what the job left in stderr.log; the OGC status and the exact message.
STATES = [
    pytest.param("FAILED", "2:0", "None", "Traceback: boom\n", "failed",
                 "the job exited with code 2. stderr: Traceback: boom", id="failed-exit-2"),
    pytest.param("FAILED", "0:9", "None", "", "failed", "the job failed (signal 9)", id="failed-signal-9"),
    pytest.param("COMPLETED", "1:0", "None", "oops\n", "failed", "the job exited with code 1. stderr: oops",
                 id="completed-nonzero-exit"),
    pytest.param("NODE_FAIL", "0:0", "None", "", "failed", "NODE_FAIL: a compute node running the job failed",
                 id="node-fail"),
    pytest.param("OUT_OF_MEMORY", "0:125", "None", "slurmstepd: error: Detected 1 oom_kill event\n", "failed",
                 "OUT_OF_MEMORY: the job ran out of memory and Slurm stopped it. stderr: slurmstepd: error: "
                 "Detected 1 oom_kill event", id="out-of-memory"),
    pytest.param("OUT_OF_MEMORY", "137:0", "None", "", "failed",
                 "OUT_OF_MEMORY: the job ran out of memory and Slurm stopped it; exit code 137", id="oom-exit-137"),
    pytest.param("TIMEOUT", "0:15", "None", "", "failed",
                 "TIMEOUT: the job ran over its time limit and Slurm stopped it", id="timeout"),
    pytest.param("PREEMPTED", "0:0", "None", "", "failed",
                 "PREEMPTED: the job was preempted by a higher-priority job", id="preempted"),
    pytest.param("BOOT_FAIL", "0:0", "None", "", "failed",
                 "BOOT_FAIL: the compute node could not be booted for the job", id="boot-fail"),
    pytest.param("DEADLINE", "0:0", "None", "", "failed",
                 "DEADLINE: the job could not finish before its deadline", id="deadline"),
    # cancelled on the cluster (scancel by its owner or an administrator), not through hpgc
    pytest.param("CANCELLED", "0:15", "None", "", "dismissed", "cancelled in Slurm", id="cancelled"),
    # still active
    pytest.param("REQUEUED", "0:0", "BeginTime", "", "accepted", "queued in Slurm: REQUEUED (BeginTime)",
                 id="requeued"),
    pytest.param("PENDING", "0:0", "Resources", "", "accepted", "queued in Slurm: PENDING (Resources)",
                 id="pending-resources"),
    pytest.param("RUNNING", "0:0", "None", "", "running", "running in Slurm (RUNNING)", id="running"),
    pytest.param("SUSPENDED", "0:0", "None", "", "running", "running in Slurm (SUSPENDED)", id="suspended"),
    # a state this version of hpgc does not know: still active, and said as it is
    pytest.param("WEIRD_NEW_STATE", "0:0", "None", "", "running", "Slurm state WEIRD_NEW_STATE",
                 id="unknown-state"),
]


@pytest.mark.parametrize(("state", "exit_code", "reason", "stderr", "status", "message"), STATES)
async def test_slurm_state_reaches_the_client(site: Site, state: str, exit_code: str, reason: str, stderr: str,
                                              status: str, message: str) -> None:
    job_id = await site.queued_job()
    if stderr:
        (site.job_dir(job_id) / "stderr.log").write_text(stderr)
    site.slurm(job_id, state=state, exit=exit_code, reason=reason)
    doc = await site.job_where(job_id, lambda d: d["status"] == status and d.get("message") == message,
                               f"{status}: {message}")
    assert doc["jobID"] == job_id and doc["processID"] == "echo"
    if status in ("failed", "dismissed"):
        assert "finished" in doc
        assert doc["progress"] == 0  # no progress was reported, and a failure says nothing of how far it got
        resp = await site.client.get(f"/jobs/{job_id}/results")
        problem = await resp.json()
        if status == "failed":  # OGC: the job's own exception, with the message as its detail
            assert (resp.status, problem["detail"]) == (500, message)
        else:
            assert (resp.status, problem["detail"]) == (404, f"job '{job_id}' was dismissed")
    elif status == "running":
        assert doc["progress"] == 5  # started, nothing more known
    else:
        assert doc["progress"] == 0


async def test_completed_job_reads_its_results_from_the_cluster(site: Site) -> None:
    job_id = await site.queued_job()
    jd = site.job_dir(job_id)
    (jd / "outputs.json").write_text(json.dumps({"stringOutput": "hello slurm"}))
    (jd / "progress").write_text("40 halfway\n")  # progress left behind does not matter once it is done
    site.slurm(job_id, state="COMPLETED", exit="0:0")
    doc = await site.job_where(job_id, lambda d: d["status"] != "accepted", "finished")
    assert (doc["status"], doc["message"], doc["progress"]) == ("successful", "finished", 100)
    resp = await site.client.get(f"/jobs/{job_id}/results")
    assert resp.status == 200
    assert (await resp.json())["stringOutput"] == "hello slurm"


async def test_completed_job_without_outputs_fails_with_the_reason(site: Site) -> None:
    job_id = await site.queued_job()
    site.slurm(job_id, state="COMPLETED", exit="0:0")
    doc = await site.job_where(job_id, lambda d: d["status"] != "accepted", "finished")
    assert doc["status"] == "failed"
    assert doc["message"] == "results unreadable: the job left no outputs.json"


async def test_progress_while_running_then_failure(site: Site) -> None:
    job_id = await site.queued_job()
    jd = site.job_dir(job_id)
    site.slurm(job_id, state="RUNNING")
    doc = await site.job_where(job_id, lambda d: d["status"] == "running", "running")
    assert (doc["progress"], doc["message"]) == (5, "running in Slurm (RUNNING)")
    (jd / "progress").write_text("40 reprojecting\n")
    doc = await site.job_where(job_id, lambda d: d["progress"] == 40, "progress 40")
    assert (doc["status"], doc["message"]) == ("running", "reprojecting")
    (jd / "progress").write_text("40 reprojecting\n70 tiling\n")  # the last line counts
    doc = await site.job_where(job_id, lambda d: d["progress"] == 70, "progress 70")
    assert (doc["status"], doc["message"]) == ("running", "tiling")
    (jd / "stderr.log").write_text("tile 12: out of disk\n")
    site.slurm(job_id, state="FAILED", exit="1:0")
    doc = await site.job_where(job_id, lambda d: d["status"] == "failed", "failed")
    # the progress file is still there: it neither hides the failure's message nor moves the progress
    assert doc["message"] == "the job exited with code 1. stderr: tile 12: out of disk"
    assert doc["progress"] == 70
    logs = await (await site.client.get(f"/jobs/{job_id}/logs")).json()
    assert logs["stderr"] == "tile 12: out of disk\n"


async def test_requeued_after_running_goes_back_to_accepted_then_finishes(site: Site) -> None:
    job_id = await site.queued_job()
    site.slurm(job_id, state="RUNNING")
    await site.job_where(job_id, lambda d: d["status"] == "running", "running")
    site.slurm(job_id, state="REQUEUED", reason="JobHeldAdmin")
    doc = await site.job_where(job_id, lambda d: d["status"] == "accepted", "requeued")
    assert doc["message"] == "queued in Slurm: REQUEUED (JobHeldAdmin)"
    site.slurm(job_id, state="NODE_FAIL", exit="0:0", reason="None")
    doc = await site.job_where(job_id, lambda d: d["status"] == "failed", "failed")
    assert doc["message"] == "NODE_FAIL: a compute node running the job failed"


async def test_dismiss_cancels_the_slurm_job(site: Site) -> None:
    job_id = await site.queued_job()
    resp = await site.client.delete(f"/jobs/{job_id}")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "dismissed"
    # scancel reached the fake Slurm: the job is cancelled there, not left to run
    assert [j["state"] for j in fake_jobs(site.state) if j["name"] == f"hpgc-{job_id}"] == ["CANCELLED"]


async def test_echo_runs_for_real_through_cwltool_on_the_fake_cluster(site: Site) -> None:
    site.hold(False)
    resp = await site.client.post("/processes/echo/execution", json=ECHO, headers=ASYNC)
    assert resp.status == 201
    job_id = (await resp.json())["jobID"]
    doc = await site.job_where(job_id, lambda d: d["status"] in ("successful", "failed", "dismissed"),
                               "finished", timeout=120)
    logs = await (await site.client.get(f"/jobs/{job_id}/logs")).json()
    assert (doc["status"], doc["message"]) == ("successful", "finished"), logs
    results = await (await site.client.get(f"/jobs/{job_id}/results")).json()
    assert results["stringOutput"] == "hello slurm"
    script = await site.client.get(f"/jobs/{job_id}/script")
    assert script.status == 200
    assert f"#SBATCH --job-name=hpgc-{job_id}" in await script.text()


async def test_a_sweep_runs_each_task_in_its_own_directory_inside_the_sweeps(site: Site) -> None:
    """hpgc:sweep on the Slurm backend: ONE job array (one sbatch), each task in WORK/alice/<job>/tasks/<i>
    reading its own inputs through SLURM_ARRAY_TASK_ID; dismissing the sweep later removes them all."""
    site.hold(False)
    body = {"inputs": {}, "hpgc:sweep": {"inputs": {"stringInput": ["one", "two"]}}}
    resp = await site.client.post("/processes/echo/execution", json=body, headers=ASYNC)
    assert resp.status == 201, await resp.text()
    job_id = (await resp.json())["jobID"]
    doc = await site.job_where(job_id, lambda d: d["status"] in ("successful", "failed", "dismissed"),
                               "finished", timeout=120)
    assert doc["status"] == "successful", doc
    results = await (await site.client.get(f"/jobs/{job_id}/results")).json()
    assert results["stringOutput"] == ["one", "two"]
    assert sorted(p.name for p in (site.job_dir(job_id) / "tasks").iterdir()) == ["0", "1"]
    jobs = fake_jobs(site.state)
    assert [(j["id"].split("_")[1], j["name"]) for j in jobs] == [("0", f"hpgc-{job_id}"), ("1", f"hpgc-{job_id}")]
    assert len({j["id"].split("_")[0] for j in jobs}) == 1  # one sbatch: one array
    tasks = (await (await site.client.get(f"/jobs/{job_id}/tasks")).json())["tasks"]
    assert [t["backendId"] for t in tasks] == [f"fake:{j['id']}" for j in jobs]
    script = (site.job_dir(job_id) / "job.sbatch").read_text()
    assert "#SBATCH --array=0-1" in script
    assert (await site.client.delete(f"/jobs/{job_id}")).status == 200
