"""SlurmBackend against the real slurm-test-cluster, over real SSH.

The slow scenarios (TIMEOUT needs Slurm's time limit to pass; a killed node needs SlurmdTimeout) are
submitted first and checked last, so the module runs in about the time of its slowest job.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from hpgc.backends.slurm.backend import SlurmBackend
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.models.ogc import StatusCode
from hpgc.models.run import BackendStatus, Container, JobRef, Resources, RunSpec, StagedFile

pytestmark = [pytest.mark.slurm, pytest.mark.asyncio(loop_scope="module")]
REPO = Path(__file__).resolve().parents[2]
RUN = uuid.uuid4().hex[:8]  # job ids are new each run: a job dir left by an earlier run means "submitted"


def settings_for(cluster: dict, **kw: object) -> ClusterSettings:
    base: dict[str, object] = {
        "host": cluster["host"], "port": cluster["port"], "known_hosts": cluster["known_hosts"], "user": "alice",
        "key_file": cluster["users"]["alice"], "work_root": cluster["work_root"],
        "image_cache": cluster["image_cache"], "container_runtime": cluster.get("container_runtime", "apptainer"),
        "partition": cluster.get("partition"), "account": cluster.get("account"), "poll_min_s": 0.5,
        "unreachable_timeout_s": 120, "command_timeout_s": 60,
    }
    return ClusterSettings(**{**base, **kw})


def jid(name: str) -> str:
    return f"it-{RUN}-{name}"


def cmd(name: str, argv: list[str], **kw: object) -> RunSpec:
    return RunSpec(job_id=jid(name), process_id="test", kind="command", argv=argv, **kw)


async def sh(backend: SlurmBackend, command: str) -> str:
    r = await backend.pool.client("test").run(command)
    assert r.ok, r.stderr
    return r.stdout.strip()


def ctl(cluster: dict, *args: str) -> None:
    subprocess.run([cluster["ctl"], *args], check=True, timeout=120, capture_output=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend(cluster: dict) -> AsyncIterator[SlurmBackend]:
    b = SlurmBackend({"test": settings_for(cluster)})
    await b.start(lambda job_id=None: None)
    yield b
    await b.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slow(backend: SlurmBackend) -> dict[str, JobRef]:
    """Jobs that take long, submitted before everything else."""
    spec = cmd("timeout", ["sleep", "600"], resources=Resources(time_limit_s=60))
    return {"timeout": JobRef(job_id=spec.job_id, external_id=await backend.submit(spec))}


async def until(backend: SlurmBackend, ref: JobRef, done: object = None, timeout: float = 120) -> BackendStatus:
    """Poll until the status is terminal (or `done(status)` says so)."""
    deadline = time.monotonic() + timeout
    st: BackendStatus | None = None
    while time.monotonic() < deadline:
        st = (await backend.poll([ref])).get(ref.job_id)
        if st is not None and (done(st) if callable(done) else st.status.terminal):
            return st
        await asyncio.sleep(0.5)
    raise AssertionError(f"{ref.job_id}: still {st} after {timeout} s")


async def test_cwl_echo(backend: SlurmBackend, slow: dict[str, JobRef]) -> None:
    from hpgc.packages import cwl

    tool = cwl.pack(REPO / "appkgs/echo/echo.cwl")
    spec = RunSpec(job_id=jid("cwl"), process_id="echo", kind="cwl", files=[
        StagedFile(path="tool.cwl", content=json.dumps(tool).encode()),
        StagedFile(path="job.json", content=json.dumps({"stringInput": "hi $(id) 'x'", "arrayInput": [1]}).encode()),
    ])
    ref = JobRef(job_id=spec.job_id, external_id=await backend.submit(spec))
    st = await until(backend, ref)
    assert st.status == StatusCode.successful, (st, await backend.logs(ref))
    out = await backend.outputs(ref)
    assert out["stringOutput"] == "hi $(id) 'x'" and out["arrayOutput"] == [1]
    assert st.details.get("NodeList", "").startswith("node")


PY_TOOL = """cwlVersion: v1.2
class: CommandLineTool
requirements: {DockerRequirement: {dockerPull: "python:3.11-slim"}}
baseCommand: [python3, -c, "import sys; open('out.txt', 'w').write(sys.version)"]
inputs: {}
outputs: {out: {type: File, outputBinding: {glob: out.txt}}}
"""


@pytest.mark.container
async def test_cwl_in_container_from_image_cache(backend: SlurmBackend, slow: dict[str, JobRef],
                                                 tmp_path: Path) -> None:
    from hpgc.packages import cwl

    (tmp_path / "py.cwl").write_text(PY_TOOL)
    spec = RunSpec(job_id=jid("cwl-py"), process_id="py", kind="cwl", files=[
        StagedFile(path="tool.cwl", content=json.dumps(cwl.pack(tmp_path / "py.cwl")).encode()),
        StagedFile(path="job.json", content=b"{}"),
    ])
    ref = JobRef(job_id=spec.job_id, external_id=await backend.submit(spec))
    st = await until(backend, ref)
    assert st.status == StatusCode.successful, (st, await backend.logs(ref))
    out = (await backend.outputs(ref))["out"]
    data = b"".join([c async for c in backend.read_file(ref, out["path"])])
    assert data.startswith(b"3.11.")


@pytest.mark.container
async def test_container_command(backend: SlurmBackend, slow: dict[str, JobRef]) -> None:
    code = "import os; open('out.txt','w').write('py ' + os.environ['HPGC_JOB_DIR']); os.system('hpgc-progress 60 x')"
    spec = cmd("container", ["python3", "-c", code], container=Container(image="python_3.11-slim.sif"),
               outputs={"result": "out.txt", "absent": "nope.txt"})
    ref = JobRef(job_id=spec.job_id, external_id=await backend.submit(spec))
    st = await until(backend, ref)
    assert st.status == StatusCode.successful, (st, await backend.logs(ref))
    out = await backend.outputs(ref)
    assert list(out) == ["result"]
    data = b"".join([c async for c in backend.read_file(ref, "out.txt")])
    assert data.decode().startswith("py /data/hpgc/alice/")
    assert await backend.file_size(ref, out["result"]["path"]) == len(data)


async def test_exit_3_is_failed_with_stderr(backend: SlurmBackend, slow: dict[str, JobRef]) -> None:
    spec = cmd("exit3", ["sh", "-c", "echo 'cannot read input.tif' >&2; exit 3"])
    ref = JobRef(job_id=spec.job_id, external_id=await backend.submit(spec))
    st = await until(backend, ref)
    assert st.status == StatusCode.failed and st.exit_code == 3
    assert "exited with code 3" in (st.message or "") and "cannot read input.tif" in (st.message or "")
    assert "Elapsed" in st.details
    logs = await backend.logs(ref)
    assert "cannot read input.tif" in logs.stderr
    script = await backend.script(ref)
    assert script is not None and f"#SBATCH --job-name=hpgc-{spec.job_id}" in script


async def test_dismiss_cancels_in_slurm(backend: SlurmBackend, slow: dict[str, JobRef]) -> None:
    spec = cmd("dismiss", ["sh", "-c", "hpgc-progress 10 started; sleep 300"])
    ref = JobRef(job_id=spec.job_id, external_id=await backend.submit(spec))
    st = await until(backend, ref, lambda s: s.status == StatusCode.running and s.progress == 10, timeout=60)
    assert st.message == "started"
    await backend.cancel(ref)
    st = await until(backend, ref, timeout=60)
    assert st.status == StatusCode.dismissed
    slurm_id = ref.external_id.split(":")[1]
    assert (await sh(backend, f"sacct -X -n -P -j {slurm_id} -o State")).startswith("CANCELLED")


async def test_idempotent_submit(backend: SlurmBackend, slow: dict[str, JobRef]) -> None:
    spec = cmd("idem", ["true"])
    first = await backend.submit(spec)
    await sh(backend, f"rm /data/hpgc/alice/{spec.job_id}/slurm_job_id")  # as if hpgc died right after sbatch
    assert await backend.submit(spec) == first
    # slurmdbd 22.05 may know the job by its name only a few seconds later (commands/versions.py)
    ids: list[str] = []
    for _ in range(30):
        ids = (await sh(backend, f"sacct -X -n -P --name=hpgc-{spec.job_id} -o JobID")).split()
        if ids:
            break
        await asyncio.sleep(1)
    assert ids == [first.split(":")[1]]


CHILD = """
import asyncio, json, sys
from hpgc.backends.slurm.backend import SlurmBackend
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.models.run import RunSpec
settings = ClusterSettings.model_validate_json(sys.argv[1])
async def main():
    b = SlurmBackend({"test": settings})
    async def one(spec):
        ext = await b.submit(spec)
        print(json.dumps({"job_id": spec.job_id, "external_id": ext}), flush=True)
    specs = [RunSpec.model_validate(s) for s in json.loads(sys.stdin.read())]
    await asyncio.gather(*(one(s) for s in specs))
    await asyncio.sleep(3600)  # "polls" until killed
asyncio.run(main())
"""


async def test_kill_9_with_20_jobs_in_flight(backend: SlurmBackend, cluster: dict, slow: dict[str, JobRef],
                                             ) -> None:
    specs = [cmd(f"k9-{i}", ["sh", "-c", f"sleep 4; exit {3 if i % 4 == 0 else 0}"]) for i in range(20)]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, settings_for(cluster).model_dump_json()], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(json.dumps([s.model_dump(mode="json") for s in specs]))
    child.stdin.close()
    stored: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    while len(stored) < 10:  # the "database" has only some of the ids when the server dies
        line = await loop.run_in_executor(None, child.stdout.readline)
        assert line, "child died"
        rec = json.loads(line)
        stored[rec["job_id"]] = rec["external_id"]
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    # restart: jobs without a stored id are submitted again (the service does this), then followed
    fresh = SlurmBackend({"test": settings_for(cluster)})
    refs = []
    for spec in specs:
        ext = await fresh.submit(spec)
        if spec.job_id in stored:
            assert ext == stored[spec.job_id]
        refs.append(JobRef(job_id=spec.job_id, external_id=ext))
    final: dict[str, BackendStatus] = {}
    deadline = time.monotonic() + 120
    while len(final) < 20 and time.monotonic() < deadline:
        for job_id, st in (await fresh.poll([r for r in refs if r.job_id not in final])).items():
            if st.status.terminal:
                final[job_id] = st
        await asyncio.sleep(1)
    await fresh.close()
    assert len(final) == 20
    for i, spec in enumerate(specs):
        expected = (StatusCode.failed, 3) if i % 4 == 0 else (StatusCode.successful, 0)
        assert (final[spec.job_id].status, final[spec.job_id].exit_code) == expected, final[spec.job_id]
    names = (await sh(backend, f"sacct -X -n -P -S now-1hours --name={','.join('hpgc-' + s.job_id for s in specs)} "
                      "-o JobName")).split()
    assert sorted(names) == sorted(f"hpgc-{s.job_id}" for s in specs)  # each exactly once


async def test_sshd_restart_mid_run(backend: SlurmBackend, cluster: dict, slow: dict[str, JobRef]) -> None:
    spec = cmd("sshd", ["sh", "-c", "sleep 8; echo survived"])
    ref = JobRef(job_id=spec.job_id, external_id=await backend.submit(spec))
    await until(backend, ref, lambda s: s.status == StatusCode.running, timeout=60)
    client = backend.pool.client("test")
    before = client.connects
    assert client._conn is not None
    port = client._conn.get_extra_info("sockname")[1]
    ctl(cluster, "stop", "sshd")
    # Stopping the listener leaves sessions alive: end ours too (only ours: others may use alice).
    ss = subprocess.run([cluster["ctl"], "exec", "login", "ss", "-tnpH", "state", "established",
                         f"( dport = :{port} )"], capture_output=True, text=True, timeout=30).stdout
    pids = re.findall(r"pid=(\d+)", ss)
    assert pids, ss
    ctl(cluster, "exec", "login", "kill", "-KILL", *pids)
    try:
        assert await backend.poll([ref]) == {}  # a transient drop: no verdict, no failure
    finally:
        ctl(cluster, "start", "sshd")
    st = await until(backend, ref, timeout=90)
    assert st.status == StatusCode.successful
    assert client.connects > before
    assert (await backend.logs(ref)).stdout == "survived\n"


async def test_timeout(backend: SlurmBackend, slow: dict[str, JobRef]) -> None:
    st = await until(backend, slow["timeout"], timeout=150)
    assert st.status == StatusCode.failed and (st.message or "").startswith("TIMEOUT"), st
    assert st.details["slurm_state"] == "TIMEOUT"


async def test_node_kill(backend: SlurmBackend, cluster: dict) -> None:
    """Last: it takes a compute node away for a while."""
    pinned = SlurmBackend({"test": settings_for(cluster, sbatch_options=["--nodelist=node2"])})
    spec = cmd("node", ["sleep", "300"])
    ref = JobRef(job_id=spec.job_id, external_id=await pinned.submit(spec))
    try:
        await until(pinned, ref, lambda s: s.status == StatusCode.running, timeout=60)
        ctl(cluster, "kill-node", "node2")
        # Slurm notices after SlurmdTimeout; then NODE_FAIL, or a requeue (PENDING again)
        st = await until(pinned, ref, lambda s: s.status != StatusCode.running, timeout=120)
        assert (st.status == StatusCode.failed and st.details["slurm_state"] == "NODE_FAIL") or \
            st.status == StatusCode.accepted, st
    finally:
        ctl(cluster, "start-node", "node2")
        await pinned.cancel(ref)
        await pinned.close()
