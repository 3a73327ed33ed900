"""The local backend for real: cwltool subprocesses, process groups, exit codes."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

from hpgc.backends.local.backend import LocalBackend
from hpgc.backends.local.settings import LocalBackendSettings
from hpgc.models.ogc import StatusCode
from hpgc.models.run import BackendStatus, JobRef, RunSpec, StagedFile
from hpgc.packages import cwl

REPO = Path(__file__).resolve().parents[2]


async def _start(backend: LocalBackend) -> asyncio.Event:
    """Start the backend; the event is set at each of its changes (what the job monitor waits on)."""
    changed = asyncio.Event()
    await backend.start(lambda job_id=None: changed.set())
    return changed


async def _until(backend: LocalBackend, ref: JobRef, changed: asyncio.Event, done: Callable[[BackendStatus], bool],
                 timeout: float = 30) -> BackendStatus:
    """The job's status once `done` holds, polled again at each change of the backend (timeout: a deadline)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                changed.clear()
                st = (await backend.poll([ref]))[ref.job_id]
                if done(st):
                    return st
                await changed.wait()
    except TimeoutError:
        raise AssertionError(f"not reached within {timeout} s: {st}") from None


async def _until_final(backend: LocalBackend, ref: JobRef, changed: asyncio.Event) -> BackendStatus:
    return await _until(backend, ref, changed, lambda st: st.status.terminal)


async def _read_fifo(path: Path, timeout: float = 30) -> str:
    """What a job writes into the named pipe `path`, once it has written it (the read waits for the writer)."""
    reader = asyncio.ensure_future(asyncio.to_thread(path.read_text))
    try:
        return await asyncio.wait_for(asyncio.shield(reader), timeout)
    except TimeoutError:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # completes the reader's open: it reads EOF
        await reader
        raise AssertionError(f"nothing was written into {path} within {timeout} s") from None


async def _exited(pid: int, timeout: float = 10) -> bool:
    """Whether process `pid` (any process, not only a child) ends within `timeout`: waits on its pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    ended = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, ended.set)  # a pidfd becomes readable when its process ends
    try:
        await asyncio.wait_for(ended.wait(), timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _cwl_spec(job_id: str, tool: Path, job: dict) -> RunSpec:
    return RunSpec(job_id=job_id, process_id=tool.stem, kind="cwl", files=[
        StagedFile(path="tool.cwl", content=json.dumps(cwl.pack(tool)).encode()),
        StagedFile(path="job.json", content=json.dumps(job).encode()),
    ])


async def test_cwl_echo_runs_and_outputs(tmp_path: Path) -> None:
    backend = LocalBackend(LocalBackendSettings(), tmp_path)
    changed = await _start(backend)
    spec = _cwl_spec("j1", REPO / "appkgs/echo/echo.cwl", {"stringInput": "hi; rm -rf /", "arrayInput": [3]})
    ref = JobRef(job_id="j1", external_id=await backend.submit(spec))
    st = await _until_final(backend, ref, changed)
    assert st.status == StatusCode.successful, (await backend.logs(ref)).stderr
    outputs = await backend.outputs(ref)
    assert outputs["stringOutput"] == "hi; rm -rf /"  # one argument, never interpreted by a shell
    assert outputs["arrayOutput"] == [3]
    await backend.close()


async def test_failing_command_reports_exit_code_and_stderr(tmp_path: Path) -> None:
    backend = LocalBackend(LocalBackendSettings(), tmp_path)
    changed = await _start(backend)
    spec = RunSpec(job_id="j2", process_id="x", kind="command", argv=["sh", "-c", "echo broken >&2; exit 3"])
    ref = JobRef(job_id="j2", external_id=await backend.submit(spec))
    st = await _until_final(backend, ref, changed)
    assert st.status == StatusCode.failed and st.exit_code == 3
    assert "broken" in (st.message or "")


async def test_command_outputs_manifest_and_path_escape(tmp_path: Path) -> None:
    backend = LocalBackend(LocalBackendSettings(), tmp_path)
    changed = await _start(backend)
    spec = RunSpec(job_id="j3", process_id="x", kind="command", argv=["sh", "-c", "echo data > out.txt"],
                   outputs={"out": "out.txt", "missing": "nope.txt"})
    ref = JobRef(job_id="j3", external_id=await backend.submit(spec))
    assert (await _until_final(backend, ref, changed)).status == StatusCode.successful
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
    changed = await _start(backend)
    # the child writes its pid, then a grandchild sleeps: both must die
    spec = RunSpec(job_id="j4", process_id="x", kind="command",
                   argv=["sh", "-c", "sleep 60 & echo $! > child.pid; wait"])
    pid_pipe = tmp_path / "j4" / "child.pid"
    pid_pipe.parent.mkdir()
    os.mkfifo(pid_pipe)  # the job's write waits for our read: no polling for the file
    ref = JobRef(job_id="j4", external_id=await backend.submit(spec))
    child = int(await _read_fifo(pid_pipe))
    await backend.cancel(ref)
    st = await _until_final(backend, ref, changed)
    assert st.status == StatusCode.dismissed
    assert await _exited(child), "the grandchild survived the dismiss"


async def test_unknown_job_after_restart_is_failed(tmp_path: Path) -> None:
    backend = LocalBackend(LocalBackendSettings(), tmp_path)
    (tmp_path / "ghost").mkdir()
    st = (await backend.poll([JobRef(job_id="ghost", external_id="local:ghost")]))["ghost"]
    assert st.status == StatusCode.failed and "restart" in (st.message or "")


async def test_max_jobs_queues_the_rest(tmp_path: Path) -> None:
    backend = LocalBackend(LocalBackendSettings(max_jobs=1), tmp_path)
    changed = await _start(backend)
    refs = []
    for i in range(2):
        spec = RunSpec(job_id=f"q{i}", process_id="x", kind="command", argv=["sleep", "60"])
        refs.append(JobRef(job_id=f"q{i}", external_id=await backend.submit(spec)))
    await _until(backend, refs[0], changed, lambda st: st.status != StatusCode.accepted)  # q0 started
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
    await backend.ensure_image(image, None)
    await backend.ensure_image(image, None)
    assert calls.read_text().splitlines() == [f"pull {tmp_path}/cache/tool_1.0.sif docker://example/tool:1.0"]
    try:
        await backend.ensure_image(Container(image="../../escape.sif", source="docker://x/y"), None)
    except Exception as exc:
        assert "outside" in str(exc)
    else:
        raise AssertionError("an image path outside the cache was accepted")


async def test_only_a_pulled_image_is_removed(tmp_path: Path) -> None:
    from hpgc.models.run import Container

    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("tool-0123456789abcdef.sif", "site.sif"):
        (cache / name).write_text("image")
    backend = LocalBackend(LocalBackendSettings(container_runtime="apptainer", image_cache=cache), tmp_path / "jobs")
    await backend.remove_image(Container(image="site.sif"), None)  # the site's own file: no source, kept
    await backend.remove_image(Container(image="tool-0123456789abcdef.sif", source="docker://x/tool",
                                         site_image="site.sif"), None)
    await backend.remove_image(Container(image="gone-0123456789abcdef.sif", source="docker://x/gone"), None)
    assert sorted(p.name for p in cache.iterdir()) == ["site.sif"]


async def test_a_sweep_runs_its_tasks_in_the_sweeps_directory_at_most_max_parallel_at_once(tmp_path: Path) -> None:
    """Each task is a subprocess in JOB/tasks/<i>; with maxParallel 2 no third one starts while two run (each
    task counts the running ones in a shared folder and exits 9 if it sees more than two)."""
    from hpgc.models.sweep import task_key

    backend = LocalBackend(LocalBackendSettings(max_jobs=4), tmp_path)
    changed = await _start(backend)
    script = ("mkdir -p ../../running; touch ../../running/$$; n=$(ls ../../running | wc -l); "
              "sleep 0.3; rm ../../running/$$; [ \"$n\" -le 2 ] || exit 9; pwd > where.txt")
    specs = [RunSpec(job_id=task_key("sw", i), process_id="x", kind="command", argv=["sh", "-c", script],
                     outputs={"where": "where.txt"}) for i in range(5)]
    sweep_id, task_ids = await backend.submit_sweep("sw", specs, 2)
    assert sweep_id == "local:sw" and task_ids == [f"local:sw/tasks/{i}" for i in range(5)]
    for i in range(5):
        ref = JobRef(job_id=task_key("sw", i), external_id=task_ids[i])
        st = await _until_final(backend, ref, changed)
        assert st.status == StatusCode.successful, st
        assert (tmp_path / "sw" / "tasks" / str(i) / "where.txt").read_text().strip().endswith(f"sw/tasks/{i}")
    await backend.remove(JobRef(job_id="sw", external_id=sweep_id))
    assert not (tmp_path / "sw").exists()
    await backend.close()
