"""Attacks on the Slurm path, against the real slurm-test-cluster: a job's user owns its job directory (a
job writes it, and on a real cluster the user can log in and change it at any time), so whatever is in
there is hostile when hpgc reads it. Another cluster user must see nothing of it.

The backend runs jobs as `alice` (the service account) and, mapped, as `bob`. Each module run uses its own
WORK_ROOT (a fresh 1777 folder, like the cluster's), so tests do not see each other's leftovers.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.auth.settings import AuthSettings
from hpgc.backends.base import BackendError
from hpgc.backends.slurm.backend import SlurmBackend
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.config import Settings
from hpgc.models.ogc import StatusCode
from hpgc.models.run import JobRef, RunSpec
from tests.integration.conftest import ssh_run_async

pytestmark = [pytest.mark.slurm, pytest.mark.asyncio(loop_scope="module")]
RUN = uuid.uuid4().hex[:8]
HANG_S = 20  # an answer later than this counts as a hang


def settings_for(cluster: dict, root: str, **kw: object) -> ClusterSettings:
    base: dict[str, object] = {
        "host": cluster["host"], "port": cluster["port"], "known_hosts": cluster["known_hosts"], "user": "alice",
        "key_file": cluster["users"]["alice"], "user_keys": {"bob": cluster["users"]["bob"]}, "work_root": root,
        "partition": cluster.get("partition"), "account": cluster.get("account"), "poll_min_s": 0.5,
        "poll_max_s": 1, "unreachable_timeout_s": 120, "command_timeout_s": 60,
    }
    return ClusterSettings(**{**base, **kw})


async def sh(cluster: dict, command: str, user: str = "alice", ok: bool = True) -> str:
    done = await ssh_run_async(cluster, command, user=user)
    if ok:
        assert done.exit_status == 0, (command, done.stderr)
    return str(done.stdout)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def root(cluster: dict) -> str:
    path = f"{cluster['work_root']}/sec-{RUN}"
    await sh(cluster, f"mkdir -m 1777 {path} && chmod 1777 {path}")
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend(cluster: dict, root: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SlurmBackend]:
    # no completion follower: this backend outlives the tests' own event loops, and a follower started from one
    # of them cannot be awaited at the module's end (its close hung there); the API test below has one
    b = SlurmBackend({"test": settings_for(cluster, root, follow_completions=False)})
    await b.start(lambda job_id=None: None)
    yield b
    await b.close()


async def run_job(backend: SlurmBackend, name: str, script: str, user: str | None = None,
                  outputs: dict[str, str] | None = None) -> tuple[JobRef, str]:
    """Run `sh -c SCRIPT` as USER (None: the service account) to its end; → (ref, job dir)."""
    spec = RunSpec(job_id=f"sec-{RUN}-{name}", process_id="attack", kind="command", argv=["sh", "-c", script],
                   outputs=outputs or {"out": "out.txt"}, unix_user=user)
    ref = JobRef(job_id=spec.job_id, external_id=await backend.submit(spec), unix_user=user)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        st = (await backend.poll([ref])).get(ref.job_id)
        if st is not None and st.status.terminal:
            assert st.status == StatusCode.successful, st
            return ref, f"{backend.clusters['test'].work_root}/{user or 'alice'}/{spec.job_id}"
        await asyncio.sleep(0.5)
    raise AssertionError(f"{ref.job_id} did not finish")


async def forge(cluster: dict, jd: str, user: str, outputs: dict) -> None:
    """The job's user rewrites its outputs.json (as they can, from a job or a login shell)."""
    await sh(cluster, f"printf %s {shlex.quote(json.dumps(outputs))} > {jd}/outputs.json", user=user)


async def refused(backend: SlurmBackend, ref: JobRef, path: str) -> str:
    """Both ways of serving PATH refuse it quickly with a BackendError (the API turns it into a 404)."""
    async with asyncio.timeout(HANG_S):
        with pytest.raises(BackendError) as size_error:
            await backend.file_size(ref, path)
        with pytest.raises(BackendError):
            async for _ in backend.read_file(ref, path):
                pass
    return str(size_error.value)


async def test_job_dirs_are_private_to_their_user(backend: SlurmBackend, cluster: dict, root: str) -> None:
    ref, jd = await run_job(backend, "private", "echo bob-secret > out.txt; echo bob-log", user="bob")
    modes = await sh(cluster, f"stat -c '%a %U %n' {root}/bob {jd} {jd}/out.txt {jd}/stdout.log", user="bob")
    for line in modes.splitlines():
        mode, owner, _ = line.split(" ", 2)
        assert owner == "bob" and int(mode, 8) & 0o077 == 0, modes
    for command in (f"ls {root}/bob", f"ls {jd}", f"cat {jd}/out.txt", f"cat {jd}/stdout.log"):
        done = await ssh_run_async(cluster, command, user="alice")
        assert done.exit_status != 0 and "bob-" not in str(done.stdout), (command, done.stdout)
    # and hpgc itself still serves bob his own result
    outputs = await backend.outputs(ref)
    assert b"".join([c async for c in backend.read_file(ref, outputs["out"]["path"])]) == b"bob-secret\n"


async def test_another_user_cannot_take_a_users_folder_first(backend: SlurmBackend, cluster: dict) -> None:
    """alice makes WORK_ROOT/bob before bob's first job (the root is 1777): bob's job is refused, and
    nothing of his is written where alice can read it."""
    other_root = f"{cluster['work_root']}/sec-{RUN}-squat"
    await sh(cluster, f"mkdir -m 1777 {other_root} && chmod 1777 {other_root} && "
                      f"mkdir -m 777 {other_root}/bob && chmod 777 {other_root}/bob")
    squatted = SlurmBackend({"test": settings_for(cluster, other_root)})
    try:
        spec = RunSpec(job_id=f"sec-{RUN}-squat", process_id="attack", kind="command", argv=["true"],
                       unix_user="bob")
        with pytest.raises(BackendError, match="not a folder owned by this account"):
            await squatted.submit(spec)
    finally:
        await squatted.close()
    assert (await sh(cluster, f"ls -A {other_root}/bob")).strip() == ""


@pytest.mark.parametrize("target", ["/etc/passwd", "alice-only", "other-job"])
async def test_output_symlinked_out_of_the_job_dir_is_not_served(backend: SlurmBackend, cluster: dict, root: str,
                                                                  target: str) -> None:
    """Already refused before (realpath over SFTP): kept as a regression test of the new reader."""
    if target == "alice-only":  # a file only the service account can read
        await sh(cluster, "umask 077; echo service-secret > ~/hpgc-sec-secret")
        target = "/home/alice/hpgc-sec-secret"
    elif target == "other-job":
        _, other = await run_job(backend, f"victim-{uuid.uuid4().hex[:4]}", "echo victim > out.txt", user="bob")
        target = f"{other}/out.txt"
    ref, jd = await run_job(backend, f"symlink-{uuid.uuid4().hex[:4]}", f"ln -s {shlex.quote(target)} out.txt",
                            user="bob")
    # the script's stage-out lists only outputs its user can stat: the user lists the dangling one himself
    await forge(cluster, jd, "bob", {"out": {"class": "File", "path": f"{jd}/out.txt"}})
    await refused(backend, ref, (await backend.outputs(ref))["out"]["path"])


async def test_output_hard_link_is_not_served(backend: SlurmBackend) -> None:
    ref, _ = await run_job(backend, "hardlink", "echo kept > keep.txt; ln keep.txt out.txt", user="bob")
    message = await refused(backend, ref, (await backend.outputs(ref))["out"]["path"])
    assert "single link" in message


async def test_outputs_json_naming_paths_outside_is_refused(backend: SlurmBackend, cluster: dict) -> None:
    """The user rewrites outputs.json after the job (already refused before: normpath; regression test)."""
    ref, jd = await run_job(backend, "manifest", "echo ok > out.txt", user="bob")
    forged = {"passwd": {"class": "File", "path": "/etc/passwd"},
              "up": {"class": "File", "path": f"{jd}/../other/out.txt"},
              "rel": {"class": "File", "path": "../../alice/x"}}
    await forge(cluster, jd, "bob", forged)
    outputs = await backend.outputs(ref)
    for oid in forged:
        assert "outside the job directory" in await refused(backend, ref, outputs[oid]["path"])


async def test_fifo_output_and_fifo_logs_do_not_hang(backend: SlurmBackend, cluster: dict) -> None:
    ref, jd = await run_job(backend, "fifo", "echo ok > out.txt", user="bob")
    await sh(cluster, f"cd {jd} && mkfifo pipe && rm stderr.log && mkfifo stderr.log && "
                      """printf '{"out": {"class": "File", "path": "%s/pipe"}}' "$PWD" > outputs.json""", user="bob")
    started = time.monotonic()
    outputs = await asyncio.wait_for(backend.outputs(ref), HANG_S)
    assert "not a regular file" in await refused(backend, ref, outputs["out"]["path"])
    with pytest.raises(BackendError, match="not a regular file"):
        await asyncio.wait_for(backend.logs(ref), HANG_S)
    assert time.monotonic() - started < HANG_S
    # the same account's other requests are still answered
    await sh(cluster, f"cd {jd} && rm pipe stderr.log && echo fine > stderr.log", user="bob")
    assert (await asyncio.wait_for(backend.logs(ref), HANG_S)).stderr == "fine\n"


async def test_a_fifo_progress_file_does_not_stall_everyones_poll(backend: SlurmBackend, cluster: dict) -> None:
    """With one service account all jobs are polled in one command: a FIFO where a job's progress file
    should be must not block it."""
    spec = RunSpec(job_id=f"sec-{RUN}-progress", process_id="attack", kind="command",
                   argv=["sh", "-c", "mkfifo progress; sleep 30"])
    ref = JobRef(job_id=spec.job_id, external_id=await backend.submit(spec))
    async with asyncio.timeout(90):
        while True:
            st = (await backend.poll([ref])).get(ref.job_id)
            if st is not None and st.status == StatusCode.running:
                break
            await asyncio.sleep(0.5)
    await asyncio.sleep(1)  # the FIFO is made right after the job starts
    started = time.monotonic()
    st = (await asyncio.wait_for(backend.poll([ref]), 50)).get(ref.job_id)
    assert st is not None and st.status == StatusCode.running and time.monotonic() - started < HANG_S
    await backend.cancel(ref)


# --- the same through the API: the request ends, and other requests are answered -----------------------------
@pytest_asyncio.fixture(loop_scope="function")
async def api(cluster: dict, root: str, tmp_path: Path,
              aiohttp_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    settings = Settings(data_dir=tmp_path / "data", auth=AuthSettings(enabled=False), default_backend="slurm",
                        clusters={"test": settings_for(cluster, root)})
    return await aiohttp_client(create_app(settings))


@pytest.mark.asyncio(loop_scope="function")  # aiohttp_client's loop
async def test_fifo_result_through_the_api(api: TestClient, cluster: dict, root: str) -> None:
    """The user swaps outputs.json while the job runs (cwltool writes the old, renamed-over file) so that
    the result is a FIFO: the download is a clear 4xx and the server keeps answering."""
    resp = await api.post("/processes/sleep/execution", json={"inputs": {"seconds": 12},
                                                                 "outputs": {"message": {"transmissionMode": "value"}}},
                          headers={"Prefer": "respond-async"})
    assert resp.status == 201, await resp.text()
    job_id = (await resp.json())["jobID"]
    jd = f"{root}/alice/{job_id}"
    async with asyncio.timeout(90):
        while (await (await api.get(f"/jobs/{job_id}")).json())["status"] != "running":
            await asyncio.sleep(0.5)
    await sh(cluster, f"cd {jd} && mkfifo pipe && "
                      """printf '{"message": {"class": "File", "path": "%s/pipe"}}' "$PWD" > new && """
                      "mv new outputs.json")
    async with asyncio.timeout(90):
        while (status := (await (await api.get(f"/jobs/{job_id}")).json())["status"]) == "running":
            await asyncio.sleep(0.5)
    assert status == "successful"
    started = time.monotonic()
    resp = await asyncio.wait_for(api.get(f"/jobs/{job_id}/results/message"), HANG_S)
    assert 400 <= resp.status < 500 and resp.content_type == "application/problem+json", resp.status
    assert "not a regular file" in (await resp.json())["detail"]
    # asked for by value (the execute request did): the server reads it whole, refused the same way
    resp = await asyncio.wait_for(api.get(f"/jobs/{job_id}/results"), HANG_S)
    assert 400 <= resp.status < 500 and "not a regular file" in (await resp.json())["detail"], resp.status
    logs = await asyncio.wait_for(api.get(f"/jobs/{job_id}/logs"), HANG_S)
    assert logs.status == 200 and "unavailable" not in (await logs.json())["stderr"]
    assert time.monotonic() - started < HANG_S
