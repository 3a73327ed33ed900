"""The local backend for real: cwltool subprocesses, process groups, exit codes."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from hpgc.backends.local import LocalBackend
from hpgc.config import LocalBackendSettings
from hpgc.models.ogc import StatusCode
from hpgc.models.run import BackendStatus, JobRef, RunSpec, StagedFile
from hpgc.packages import cwl

REPO = Path(__file__).resolve().parents[2]


async def _until_final(backend: LocalBackend, ref: JobRef, timeout: float = 30) -> BackendStatus:
    for _ in range(int(timeout / 0.05)):
        st = (await backend.poll([ref]))[ref.job_id]
        if st.status.terminal:
            return st
        await asyncio.sleep(0.05)
    raise AssertionError(f"not final: {st}")


def _cwl_spec(job_id: str, tool: Path, job: dict) -> RunSpec:
    return RunSpec(job_id=job_id, process_id=tool.stem, kind="cwl", files=[
        StagedFile(path="tool.cwl", content=json.dumps(cwl.pack(tool)).encode()),
        StagedFile(path="job.json", content=json.dumps(job).encode()),
    ])


async def test_cwl_echo_runs_and_outputs(tmp_path: Path) -> None:
    backend = LocalBackend(LocalBackendSettings(), tmp_path)
    await backend.start(lambda: None)
    spec = _cwl_spec("j1", REPO / "appkgs/echo/echo.cwl", {"stringInput": "hi; rm -rf /", "arrayInput": [3]})
    ref = JobRef(job_id="j1", external_id=await backend.submit(spec))
    st = await _until_final(backend, ref)
    assert st.status == StatusCode.successful, (await backend.logs(ref)).stderr
    outputs = await backend.outputs(ref)
    assert outputs["stringOutput"] == "hi; rm -rf /"  # one argument, never interpreted by a shell
    assert outputs["arrayOutput"] == [3]
    await backend.close()


async def test_failing_command_reports_exit_code_and_stderr(tmp_path: Path) -> None:
    backend = LocalBackend(LocalBackendSettings(), tmp_path)
    await backend.start(lambda: None)
    spec = RunSpec(job_id="j2", process_id="x", kind="command", argv=["sh", "-c", "echo broken >&2; exit 3"])
    ref = JobRef(job_id="j2", external_id=await backend.submit(spec))
    st = await _until_final(backend, ref)
    assert st.status == StatusCode.failed and st.exit_code == 3
    assert "broken" in (st.message or "")


async def test_command_outputs_manifest_and_path_escape(tmp_path: Path) -> None:
    backend = LocalBackend(LocalBackendSettings(), tmp_path)
    await backend.start(lambda: None)
    spec = RunSpec(job_id="j3", process_id="x", kind="command", argv=["sh", "-c", "echo data > out.txt"],
                   outputs={"out": "out.txt", "missing": "nope.txt"})
    ref = JobRef(job_id="j3", external_id=await backend.submit(spec))
    assert (await _until_final(backend, ref)).status == StatusCode.successful
    manifest = await backend.outputs(ref)
    assert set(manifest) == {"out"}
    data = b"".join([c async for c in backend.read_file(ref, manifest["out"]["path"])])
    assert data == b"data\n"
    try:
        [c async for c in backend.read_file(ref, "../../etc/passwd")]
    except Exception as exc:
        assert "outside" in str(exc)
    else:
        raise AssertionError("path escape was allowed")


async def test_cancel_kills_the_whole_process_group(tmp_path: Path) -> None:
    backend = LocalBackend(LocalBackendSettings(), tmp_path)
    await backend.start(lambda: None)
    # the child writes its pid, then a grandchild sleeps: both must die
    spec = RunSpec(job_id="j4", process_id="x", kind="command",
                   argv=["sh", "-c", "sleep 60 & echo $! > child.pid; wait"])
    ref = JobRef(job_id="j4", external_id=await backend.submit(spec))
    pid_file = tmp_path / "j4" / "child.pid"
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.05)
    child = int(pid_file.read_text())
    await backend.cancel(ref)
    st = await _until_final(backend, ref)
    assert st.status == StatusCode.dismissed
    await asyncio.sleep(0.2)
    try:
        os.kill(child, 0)
        alive = Path(f"/proc/{child}/stat").read_text().split()[2] != "Z"
    except ProcessLookupError:
        alive = False
    assert not alive, "the grandchild survived the dismiss"


async def test_unknown_job_after_restart_is_failed(tmp_path: Path) -> None:
    backend = LocalBackend(LocalBackendSettings(), tmp_path)
    (tmp_path / "ghost").mkdir()
    st = (await backend.poll([JobRef(job_id="ghost", external_id="local:ghost")]))["ghost"]
    assert st.status == StatusCode.failed and "restart" in (st.message or "")


async def test_max_jobs_queues_the_rest(tmp_path: Path) -> None:
    backend = LocalBackend(LocalBackendSettings(max_jobs=1), tmp_path)
    await backend.start(lambda: None)
    refs = []
    for i in range(2):
        spec = RunSpec(job_id=f"q{i}", process_id="x", kind="command", argv=["sleep", "1"])
        refs.append(JobRef(job_id=f"q{i}", external_id=await backend.submit(spec)))
    await asyncio.sleep(0.3)
    states = await backend.poll(refs)
    assert [states[r.job_id].status for r in refs] == [StatusCode.running, StatusCode.accepted]
    await backend.close()


async def test_image_pulled_once_with_the_runtime(tmp_path: Path) -> None:
    runtime = tmp_path / "fake-apptainer"
    calls = tmp_path / "calls"
    runtime.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n[ "$1" = pull ] && echo image > "$2"\n')
    runtime.chmod(0o755)
    from hpgc.models.run import Container

    backend = LocalBackend(LocalBackendSettings(container_runtime=str(runtime), image_cache=tmp_path / "cache"),
                           tmp_path / "jobs")
    image = Container(image="tool_1.0.sif", source="docker://example/tool:1.0")
    await backend.ensure_image(image)
    await backend.ensure_image(image)
    assert calls.read_text().splitlines() == [f"pull {tmp_path}/cache/tool_1.0.sif docker://example/tool:1.0"]
    try:
        await backend.ensure_image(Container(image="../../escape.sif", source="docker://x/y"))
    except Exception as exc:
        assert "outside" in str(exc)
    else:
        raise AssertionError("an image path outside the cache was accepted")
