"""SlurmBackend end to end against a fake Slurm behind a real SSH server on 127.0.0.1: the backend's
real shell programs (submit, poll) run with bash; SFTP is asyncssh's own server."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TypeVar

import pytest

from hpgc.backends.base import BackendError
from hpgc.backends.slurm import poller as backend_module
from hpgc.backends.slurm.backend import SlurmBackend
from hpgc.backends.slurm.commands.submit import parse_submit, submit_command, tar_files
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.models.ogc import StatusCode
from hpgc.models.run import BackendStatus, JobRef, Resources, RunSpec, StagedFile
from hpgc.net import GuardedClient, OutboundSettings
from tests.unit.slurm_fake import FakeSSHServer, fake_jobs, install_fake_slurm, kill_fake_jobs, until

T = TypeVar("T")


@dataclass
class Env:
    server: FakeSSHServer
    state: Path
    work: Path
    settings: ClusterSettings
    backend: SlurmBackend

    def knob(self, name: str, value: float | str | None) -> None:
        p = self.state / name
        if value is None:
            p.unlink(missing_ok=True)
        else:
            p.write_text(str(value))

    def new_backend(self, **kw: object) -> SlurmBackend:
        # the http_file server is on loopback: allowed here, as an administrator would allow an in-house one
        return SlurmBackend({"fake": self.settings.model_copy(update=kw)},
                            GuardedClient(OutboundSettings(allowed_networks=["127.0.0.1/32"])))


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    bin_dir, state = install_fake_slurm(tmp_path / "slurm")
    work = tmp_path / "work"
    work.mkdir()
    server_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKESLURM_STATE": str(state), "HOME": str(tmp_path),
                  "LANG": "C.UTF-8"}
    server = FakeSSHServer(tmp_path, server_env)
    await server.start()
    settings = ClusterSettings(host="127.0.0.1", port=server.port, known_hosts=server.known_hosts, user="alice",
                               key_file=server.client_key_file, work_root=str(work), poll_min_s=0.1,
                               command_timeout_s=10, connect_timeout_s=5, unreachable_timeout_s=30,
                               squeue_grace_s=30,
                               follow_completions=False)  # the fake answers when a command ends: it cannot follow
    backend = SlurmBackend({"fake": settings})
    await backend.start(lambda job_id=None: None)
    try:
        yield Env(server, state, work, settings, backend)
    finally:
        await backend.close()
        await server.stop()
        kill_fake_jobs(state)


def _spec(job_id: str, argv: list[str], **kw: object) -> RunSpec:
    return RunSpec(job_id=job_id, process_id="p", kind="command", argv=argv, **kw)


async def _status(backend: SlurmBackend, ref: JobRef, done: Callable[[BackendStatus], bool], what: str,
                  timeout: float = 20) -> BackendStatus:
    """The job's status once DONE says so, asked of the backend until TIMEOUT."""
    async def probe() -> BackendStatus | None:
        st = (await backend.poll([ref])).get(ref.job_id)
        return st if st is not None and done(st) else None

    return await until(probe, f"job {ref.job_id}: {what}", timeout)


async def _final(backend: SlurmBackend, ref: JobRef, timeout: float = 20) -> BackendStatus:
    return await _status(backend, ref, lambda st: st.status.terminal, "final", timeout)


async def test_submit_poll_outputs_logs_script(env: Env) -> None:
    spec = _spec("j1", ["sh", "-c", "hpgc-progress 50 half; cat inputs/a_0.txt > out.txt; echo to-stdout"],
                 files=[StagedFile(path="inputs/a_0.txt", content=b"hello")], outputs={"out": "out.txt"})
    ext = await env.backend.submit(spec)
    assert ext.startswith("fake:") and ext.split(":")[1].isdigit()
    ref = JobRef(job_id="j1", external_id=ext, cluster="fake")
    st = await _final(env.backend, ref)
    assert st.status == StatusCode.successful, st
    assert st.details["NodeList"] == "fake1" and st.details["MaxRSS"] == "2048K"
    jd = env.work / "alice" / "j1"
    assert await env.backend.outputs(ref) == {"out": {"class": "File", "path": f"{jd}/out.txt"}}
    assert b"".join([c async for c in env.backend.read_file(ref, "out.txt")]) == b"hello"
    assert b"".join([c async for c in env.backend.read_file(ref, f"{jd}/out.txt", 1, 3)]) == b"ell"
    assert await env.backend.file_size(ref, "out.txt") == 5
    logs = await env.backend.logs(ref)
    assert logs.stdout == "to-stdout\n"
    script = await env.backend.script(ref)
    assert script is not None and "#SBATCH --job-name=hpgc-j1" in script
    assert (jd / "progress").read_text() == "50 half\n"


async def test_paths_outside_job_dir_refused(env: Env) -> None:
    ext = await env.backend.submit(_spec("j2", ["sh", "-c", "ln -s /etc/passwd link"]))
    ref = JobRef(job_id="j2", external_id=ext)
    await _final(env.backend, ref)
    for path in ["../j1/out.txt", "/etc/passwd", "link", "a/../../x"]:
        with pytest.raises(BackendError):
            async for _ in env.backend.read_file(ref, path):
                pass
    with pytest.raises(BackendError):
        await env.backend.file_size(ref, "nope.txt")


async def test_failed_job_exit_code_and_stderr(env: Env) -> None:
    ext = await env.backend.submit(_spec("j3", ["sh", "-c", "echo 'it broke' >&2; exit 3"]))
    st = await _final(env.backend, JobRef(job_id="j3", external_id=ext))
    assert st.status == StatusCode.failed and st.exit_code == 3
    assert st.message == "the job exited with code 3. stderr: it broke"
    assert st.details["stderr_tail"] == "it broke"


async def test_timeout(env: Env) -> None:
    env.knob("time_scale", 0.01)  # the fake runs a 60 s limit for 0.6 s
    ext = await env.backend.submit(_spec("j4", ["sleep", "30"], resources=Resources(time_limit_s=60)))
    st = await _final(env.backend, JobRef(job_id="j4", external_id=ext))
    assert st.status == StatusCode.failed and (st.message or "").startswith("TIMEOUT")


async def test_progress_while_running_and_cancel(env: Env) -> None:
    ext = await env.backend.submit(_spec("j5", ["sh", "-c", "hpgc-progress 42 tiling; sleep 30"]))
    ref = JobRef(job_id="j5", external_id=ext)
    st = await _status(env.backend, ref, lambda st: st.progress is not None, "progress reported")
    assert st.status == StatusCode.running and st.progress == 42 and st.message == "tiling"
    await env.backend.cancel(ref)
    st = await _final(env.backend, ref)
    assert st.status == StatusCode.dismissed


async def test_submit_is_idempotent(env: Env) -> None:
    spec = _spec("j6", ["true"])
    first = await env.backend.submit(spec)
    assert await env.backend.submit(spec) == first
    # a crash between sbatch and storing the id: the id file is gone, the script is there
    (env.work / "alice" / "j6" / "slurm_job_id").unlink()
    assert await env.new_backend().submit(spec) == first
    assert [j["name"] for j in fake_jobs(env.state)].count("hpgc-j6") == 1


async def test_submit_refuses_to_resubmit_when_slurm_cannot_say(env: Env) -> None:
    spec = _spec("j7", ["true"])
    await env.backend.submit(spec)
    (env.work / "alice" / "j7" / "slurm_job_id").unlink()
    env.knob("sacct_fail", 1)
    with pytest.raises(BackendError, match="not resubmitting"):
        await env.backend.submit(spec)
    assert [j["name"] for j in fake_jobs(env.state)].count("hpgc-j7") == 1


async def test_sbatch_error_is_reported(env: Env) -> None:
    env.knob("sbatch_fail", 1)
    with pytest.raises(BackendError, match="fake failure"):
        await env.backend.submit(_spec("j8", ["true"]))


async def test_failed_sbatch_leaves_no_id_and_a_retry_submits(env: Env) -> None:
    env.knob("sbatch_fail", 1)
    with pytest.raises(BackendError, match="fake failure"):
        await env.backend.submit(_spec("j8b", ["true"]))
    assert (env.work / "alice" / "j8b" / "slurm_job_id").read_text() == "failed\n"
    env.knob("sbatch_fail", None)
    ext = await env.backend.submit(_spec("j8b", ["true"]))
    assert (env.work / "alice" / "j8b" / "slurm_job_id").read_text() == ext.split(":")[1] + "\n"
    assert [j["name"] for j in fake_jobs(env.state)].count("hpgc-j8b") == 1


async def test_slurm_refusing_jobs_stops_the_batch_and_fails_them_clearly(env: Env) -> None:
    env.knob("sbatch_busy", 0.3)
    files = {f"alice/b{i}/job.sbatch": (b"#!/bin/bash\ntrue\n", 0o644) for i in range(3)}
    jobs = [(f"alice/b{i}", f"hpgc-b{i}") for i in range(3)]
    result = await env.backend.pool.client("fake").run(submit_command(str(env.work), jobs),
                                                       input=tar_files(files))
    answers = parse_submit(result.stdout)
    assert [answers[rel][0] for rel, _ in jobs] == ["busy"] * 3
    assert all("Slurm is not accepting jobs" in answers[rel][1] for rel, _ in jobs)
    # one sbatch gave up after its retries: the rest of the batch was not tried (each would sleep as long)
    assert (env.state / "sbatch_busy_calls").read_text() == "1\n"
    backend = env.new_backend(unreachable_timeout_s=0.2)
    with pytest.raises(BackendError, match=r"Slurm is not accepting jobs.*gave up after"):
        await backend.submit(_spec("b3", ["true"]))
    assert not fake_jobs(env.state)
    await backend.close()


async def test_an_sbatch_outliving_its_command_is_never_repeated(env: Env) -> None:
    """The command times out while sbatch sleeps through Slurm's retries; hpgc asks again while that sbatch
    still runs: the job is busy, not submitted a second time, and then found with the first sbatch's id."""
    env.knob("sbatch_busy", 3.0)  # still sleeping when hpgc asks again, SUBMIT_RETRY_S (2 s) after the timeout
    env.knob("sbatch_busy_then_ok", 1)
    backend = env.new_backend(command_timeout_s=0.5, unreachable_timeout_s=30)
    ext = await backend.submit(_spec("b9", ["true"]))
    assert [j["name"] for j in fake_jobs(env.state)] == ["hpgc-b9"]
    assert ext == f"fake:{fake_jobs(env.state)[0]['id']}"
    assert len((env.state / "sbatch_busy_calls").read_text().split()) == 1
    await backend.close()


async def test_federated_sbatch_answer_gives_the_id_only(env: Env) -> None:
    env.knob("sbatch_federated", 1)
    ext = await env.backend.submit(_spec("j8c", ["true"]))
    slurm_id = ext.split(":")[1]
    assert slurm_id.isdigit()
    # the file keeps what sbatch printed (`ID;CLUSTER`): only jobid.py reads what that means
    assert (env.work / "alice" / "j8c" / "slurm_job_id").read_text() == slurm_id + ";fed1\n"
    assert await env.backend.submit(_spec("j8c", ["true"])) == ext  # read back from the file: not resubmitted


async def test_squeue_fallback_then_lost(env: Env) -> None:
    env.knob("sacct_lag", 1000)  # slurmdbd far behind slurmctld
    ext = await env.backend.submit(_spec("j9", ["sleep", "30"]))
    ref = JobRef(job_id="j9", external_id=ext)
    st = await _status(env.backend, ref, lambda st: st.status == StatusCode.running, "running (from squeue)")
    assert st.message == "running in Slurm (RUNNING)" and st.details == {"slurm_state": "RUNNING"}
    # finished and not in sacct yet: left out during the grace period (30 s here), then declared lost
    await env.backend.cancel(ref)
    assert await env.backend.poll([ref]) == {}
    assert await env.backend.poll([ref]) == {}
    backend = env.new_backend(squeue_grace_s=0)  # a grace period that is over at once
    st = (await backend.poll([ref]))["j9"]
    assert st.status == StatusCode.failed
    assert st.message == (f"Slurm has no record of job {ext.split(':')[1]} on cluster fake (neither sacct nor "
                          "squeue knows it)")
    await backend.close()


async def test_sacct_down_is_not_lost(env: Env) -> None:
    ext = await env.backend.submit(_spec("j10", ["true"]))

    async def finished() -> bool:  # out of squeue too: neither command knows it while sacct is down
        return [j["state"] for j in fake_jobs(env.state)] == ["COMPLETED"]

    await until(finished, "the job finishes in the fake Slurm")
    env.knob("sacct_fail", 1)
    backend = env.new_backend(squeue_grace_s=0)  # a job missing from an answer would be lost at once
    for _ in range(3):
        assert await backend.poll([JobRef(job_id="j10", external_id=ext)]) == {}
    await backend.close()


async def test_many_jobs_one_round_trip(env: Env) -> None:
    exts = await asyncio.gather(*(env.backend.submit(_spec(f"m{i}", ["true"])) for i in range(30)))
    refs = [JobRef(job_id=f"m{i}", external_id=e) for i, e in enumerate(exts)]
    # fake ids too: sacct gets them all in chunks of 7, still one SSH command
    refs += [JobRef(job_id=f"x{i}", external_id=f"fake:{900000 + i}") for i in range(200)]
    backend = env.new_backend(sacct_chunk=7)

    async def all_finished() -> bool:
        return all(j["state"] == "COMPLETED" for j in fake_jobs(env.state))

    await until(all_finished, "the 30 jobs finish in the fake Slurm")
    before = len(env.server.commands)
    calls_before = _sacct_calls(env)
    statuses = await backend.poll(refs)
    assert len(env.server.commands) == before + 1
    assert _sacct_calls(env) - calls_before == (230 + 6) // 7
    assert sum(1 for s in statuses.values() if s.status == StatusCode.successful) == 30
    await backend.close()


def _sacct_calls(env: Env) -> int:
    p = env.state / "sacct_calls"
    return len(p.read_text().splitlines()) if p.exists() else 0


async def test_unreachable_cluster_fails_jobs_after_timeout(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    ext = await env.backend.submit(_spec("j11", ["sleep", "30"]))
    ref = JobRef(job_id="j11", external_id=ext)
    await env.server.stop()
    backend = env.new_backend(unreachable_timeout_s=300, connect_timeout_s=1)
    assert await backend.poll([ref]) == {}  # not yet: a transient drop must not fail jobs
    # the backend's clock, 301 s later than the last answer from the cluster
    last_ok = backend.pool.client("fake").last_ok
    monkeypatch.setattr(backend_module, "time", SimpleNamespace(monotonic=lambda: last_ok + 301))
    st = (await backend.poll([ref]))["j11"]
    assert st.status == StatusCode.failed
    assert (st.message or "").startswith("cluster fake has been unreachable for 301 s (more than "
                                         "unreachable_timeout_s=300): cluster fake: cannot connect to 127.0.0.1")
    await backend.close()


async def test_start_connects_in_the_background(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    client = env.backend.pool.client("fake")
    assert client.round_trips == 0
    await until(_async(lambda: client.connects), "connected")
    assert client.connects == 1  # before any job: the first one does not wait for the handshake
    await env.backend.submit(_spec("j11b", ["true"]))
    assert client.connects == 1
    await env.server.stop()
    down = env.new_backend(connect_timeout_s=1)
    await down.start(lambda job_id=None: None)
    # start returned before the connection attempt even began: an unreachable cluster does not hold it up
    assert down._warmups and not any(t.done() for t in down._warmups)
    await asyncio.wait_for(asyncio.gather(*down._warmups), 20)
    assert "cannot connect to 127.0.0.1" in caplog.text and "jobs for it wait and retry" in caplog.text
    await down.close()


def _async(f: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    async def probe() -> T:
        return f()

    return probe


async def test_a_tcsh_account_works_like_any_other(env: Env) -> None:
    """Many HPC accounts log in to tcsh; sshd runs hpgc's commands through it."""
    if shutil.which("tcsh") is None:
        pytest.skip("tcsh is not installed")
    env.server.login_shell = "tcsh"
    spec = _spec("t1", ["sh", "-c", "cat inputs/a_0.txt > out.txt; echo \"$HOME\" '!x'"],
                 files=[StagedFile(path="inputs/a_0.txt", content=b"from tcsh")], outputs={"out": "out.txt"})
    ext = await env.backend.submit(spec)
    ref = JobRef(job_id="t1", external_id=ext)
    assert (await _final(env.backend, ref)).status == StatusCode.successful
    assert b"".join([c async for c in env.backend.read_file(ref, "out.txt")]) == b"from tcsh"
    assert (await env.backend.logs(ref)).stdout.endswith("!x\n")
    sleeper = JobRef(job_id="t2", external_id=await env.backend.submit(_spec("t2", ["sleep", "30"])))
    await env.backend.cancel(sleeper)
    assert (await _final(env.backend, sleeper)).status == StatusCode.dismissed
    await env.backend.remove(ref)
    assert not (env.work / "alice" / "t1").exists()


async def test_unknown_cluster_and_identity(env: Env) -> None:
    with pytest.raises(BackendError, match="unknown cluster"):
        await env.backend.submit(_spec("j12", ["true"], cluster="nope"))
    with pytest.raises(BackendError, match="no SSH key"):
        await env.backend.submit(_spec("j12", ["true"], unix_user="mallory"))


async def test_hostile_argv_in_real_job(env: Env, tmp_path: Path) -> None:
    ext = await env.backend.submit(_spec("j13", ["printf", "%s|", "$(touch pwned)", "`touch pwned`", "a'b"]))
    st = await _final(env.backend, JobRef(job_id="j13", external_id=ext))
    assert st.status == StatusCode.successful
    logs = await env.backend.logs(JobRef(job_id="j13", external_id=ext))
    assert logs.stdout == "$(touch pwned)|`touch pwned`|a'b|"
    assert not [p for p in tmp_path.rglob("pwned")]
    assert os.path.exists(env.work / "alice" / "j13" / "job.sbatch")


async def test_submit_waits_out_a_short_outage(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    await env.server.stop()
    backend = env.new_backend(unreachable_timeout_s=0.5, connect_timeout_s=1)
    with pytest.raises(BackendError, match="gave up after"):
        await backend.submit(_spec("j14", ["true"]))
    backend = env.new_backend(unreachable_timeout_s=30, connect_timeout_s=1)
    caplog.clear()
    task = asyncio.create_task(backend.submit(_spec("j14", ["true"])))
    await until(_async(lambda: "submitting j14: cluster fake: cannot connect" in caplog.text), "a failed attempt")
    assert not task.done()  # it failed once, and waits to try again
    await env.server.start()
    assert (await asyncio.wait_for(task, 20)).startswith("fake:")
    await backend.close()


async def test_slurm_id_of_another_job_is_not_followed(env: Env) -> None:
    ext = await env.backend.submit(_spec("j15", ["true"]))
    other = JobRef(job_id="someone-else", external_id=ext)  # as after a reset of Slurm's job ids
    st = await _status(env.backend, other, lambda st: True, "any answer")
    assert st.status == StatusCode.failed
    assert st.message == (f"Slurm job {ext.split(':')[1]} on cluster fake is now 'hpgc-j15', not this job: the "
                          "cluster's job records were reset, and this job was lost")


def _submit_commands(env: Env) -> int:
    return sum(1 for c in env.server.commands if "tar -x" in c)


async def test_concurrent_submits_share_commands(env: Env) -> None:
    before = _submit_commands(env)
    exts = await asyncio.gather(*(env.backend.submit(_spec(f"b{i}", ["true"])) for i in range(40)))
    assert len(set(exts)) == 40
    assert _submit_commands(env) - before < 20
    names = [j["name"] for j in fake_jobs(env.state)]
    assert all(names.count(f"hpgc-b{i}") == 1 for i in range(40))
    # the same job twice at once: one submission
    a, b = await asyncio.gather(env.backend.submit(_spec("b-dup", ["true"])),
                                env.backend.submit(_spec("b-dup", ["true"])))
    assert a == b and [j["name"] for j in fake_jobs(env.state)].count("hpgc-b-dup") == 1


async def test_batch_mixing_new_existing_and_crashed(env: Env) -> None:
    done = await env.backend.submit(_spec("c-done", ["true"]))
    crashed = await env.backend.submit(_spec("c-crashed", ["true"]))
    (env.work / "alice" / "c-crashed" / "slurm_job_id").unlink()
    marker = env.work / "alice" / "c-done" / "job.sbatch"
    marker.write_text("# edited on the cluster\n")
    env.knob("sbatch_fail_name", "hpgc-c-bad")
    backend = env.new_backend(max_channels=2)  # one command at a time: all five go in one batch
    specs = [_spec(n, ["true"]) for n in ("c-other", "c-done", "c-crashed", "c-new", "c-bad")]
    results = await asyncio.gather(*(backend.submit(s) for s in specs), return_exceptions=True)
    assert [b.batches for b in backend._batchers.values()] == [1]
    await backend.close()
    assert results[1] == done and results[2] == crashed
    assert isinstance(results[3], str) and results[3] not in (done, crashed)
    assert isinstance(results[4], BackendError) and "Invalid account" in str(results[4])
    assert marker.read_text() == "# edited on the cluster\n"  # a submitted job's files are left alone
    names = [j["name"] for j in fake_jobs(env.state)]
    assert names.count("hpgc-c-done") == names.count("hpgc-c-crashed") == names.count("hpgc-c-new") == 1


@pytest.fixture
async def http_file() -> AsyncIterator[str]:
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    async def serve(request: web.Request) -> web.Response:
        if request.path != "/in.txt":
            return web.Response(status=404)
        return web.Response(body=b"from http")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


@pytest.mark.parametrize("mode", ["server", "job"])
async def test_href_inputs(env: Env, http_file: str, mode: str) -> None:
    if mode == "job" and shutil.which("curl") is None:
        pytest.skip("curl is not installed here (the job downloads with curl)")
    backend = env.new_backend(stage_in=mode)
    spec = _spec(f"h-{mode}", ["cat", "inputs/a_0.txt"],
                 files=[StagedFile(path="inputs/a_0.txt", href=f"{http_file}/in.txt")])
    ref = JobRef(job_id=spec.job_id, external_id=await backend.submit(spec))
    st = await _final(backend, ref)
    assert st.status == StatusCode.successful, (st, await backend.logs(ref))
    assert (await backend.logs(ref)).stdout == "from http"
    assert await backend.submit(spec) == ref.external_id
    bad = _spec(f"h-{mode}-404", ["cat", "inputs/a_0.txt"],
                files=[StagedFile(path="inputs/a_0.txt", href=f"{http_file}/missing.txt")])
    if mode == "server":
        with pytest.raises(BackendError, match="404"):
            await backend.submit(bad)
    else:
        st = await _final(backend, JobRef(job_id=bad.job_id, external_id=await backend.submit(bad)))
        assert st.status == StatusCode.failed and "could not download input" in (st.message or "")
    await backend.close()
    await backend.outbound.close()
