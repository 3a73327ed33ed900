"""The local backend: each job is a subprocess on this machine, in its own job directory and process group.

It is the embedded default (no cluster needed). Jobs beyond `max_jobs` wait their turn in `accepted`.

Its trust level (docs/security.md): a job runs as the server's own account. It gets a minimal
environment (nothing of hpgc's settings), runs in its own 0700 job directory, and whatever it leaves there
is read through hpgc/backends/jobfiles.py (regular files with one link inside the job directory only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hpgc.backends.base import Backend, BackendError, Capabilities, OnChange
from hpgc.backends.files import (
    OUTPUTS_FILE,
    PROGRESS_FILE,
    PROGRESS_HELPER,
    Downloads,
    command_outputs_manifest,
    parse_progress,
)
from hpgc.backends.jobfiles import (
    read_text_or_empty,
    size_inside,
    write_inside,
)
from hpgc.backends.launch import check_container, command_argv, container_argv, cwltool_argv
from hpgc.backends.local.environment import find_command, job_environment
from hpgc.backends.local.orphans import PID_FILE, kill_orphan
from hpgc.backends.local.paths import LocalPaths
from hpgc.backends.local.results import (
    COMMAND_FILE,
    SMALL_FILE_BYTES,
    command_line,
    log_tail,
    read_outputs,
    stream_file,
)
from hpgc.backends.local.settings import LocalBackendSettings
from hpgc.backends.local.uploads import LocalUploads, link_or_copy
from hpgc.backends.local.zygote_client import Zygote, ZygoteJob, use_zygote, zygote_environment
from hpgc.models.ogc import StatusCode
from hpgc.models.run import BackendStatus, Container, JobRef, Logs, RunSpec
from hpgc.net import GuardedClient
from hpgc.storage import ObjectStores

log = logging.getLogger(__name__)
EXIT_FILE = "exit_code"
CANCEL_FILE = "cancelled"
KILL_GRACE_S = 3  # after SIGTERM, before SIGKILL: cwltool cleans up its temporary folders
MAX_INPUT_BYTES = 10 * 1024**3
STDERR_TAIL = 2000
JOB_DIR_MODE = 0o700


class LocalBackend(LocalUploads, LocalPaths, Backend):
    name = "local"
    # a job here runs as the server's account: deploying to it is an admin's decision (deploy_needs_admin)
    capabilities = Capabilities(resumable=False, runs_as_server=True)

    def __init__(self, settings: LocalBackendSettings, jobs_dir: Path, outbound: GuardedClient | None = None,
                 poll_max_s: float = 1.0, storage: ObjectStores | None = None) -> None:
        self.settings = settings
        self.poll_max_s = poll_max_s
        self.jobs_dir = jobs_dir
        self.outbound = outbound or GuardedClient()  # href inputs; the app passes its one client
        self._own_outbound = outbound is None
        self.storage = storage  # s3:// inputs
        self._slots = asyncio.Semaphore(settings.max_jobs)
        self._procs: dict[str, asyncio.subprocess.Process | ZygoteJob] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._gates: dict[str, asyncio.Semaphore] = {}  # a sweep's tasks share its maxParallel
        self._lost: dict[str, str] = {}  # jobs whose end could not be written into their directory
        self._on_change: OnChange = lambda job_id=None: None
        self._zygote = Zygote(zygote_environment(settings), jobs_dir) if use_zygote(settings) else None

    @property
    def poll_intervals(self) -> tuple[float, float]:
        # a job's end has the monitor poll that job at once (on_change(job_id)): polls only catch progress; a
        # poll here is only file reads (docs/performance.md)
        return (0.05, self.poll_max_s)

    @property
    def deploy_needs_admin(self) -> bool:
        return not self.settings.allow_user_deploy

    def stages_in_on_server(self, cluster: str | None) -> bool:
        return True  # the job runs here: the server is where it downloads from

    async def start(self, on_change: OnChange) -> None:
        self.jobs_dir.mkdir(parents=True, exist_ok=True, mode=JOB_DIR_MODE)
        self.jobs_dir.chmod(JOB_DIR_MODE)
        self._on_change = on_change

    async def close(self) -> None:
        for job_id in list(self._procs):
            self._kill(job_id, signal.SIGKILL)
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if self._zygote is not None:
            await self._zygote.close()
        if self._own_outbound:
            await self.outbound.close()

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    # submit ----------------------------------------------------------------------------------------
    async def submit(self, spec: RunSpec) -> str:
        if spec.job_id in self._tasks:
            return f"local:{spec.job_id}"
        jd = self.job_dir(spec.job_id)
        jd.mkdir(parents=True, exist_ok=True, mode=JOB_DIR_MODE)
        jd.chmod(JOB_DIR_MODE)  # whatever the umask: other accounts on this machine must not read a job's files
        (jd / "bin").mkdir(exist_ok=True)
        (jd / "tmp").mkdir(exist_ok=True)
        helper = jd / "bin" / "hpgc-progress"
        helper.write_text(PROGRESS_HELPER)
        helper.chmod(0o755)
        downloads = Downloads(self.outbound, self.storage, spec.unix_user)
        for f in spec.files:
            target = self._inside(jd, f.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            if f.content is not None:
                target.write_bytes(f.content)
            elif f.source is not None:
                await asyncio.to_thread(link_or_copy, f.source, target)
            elif f.href is not None:
                with target.open("wb") as out:
                    async for chunk in downloads.fetch(f.href, MAX_INPUT_BYTES):
                        out.write(chunk)
        for rel in spec.outputs.values():  # tools write their outputs into folders that must exist
            self._inside(jd, rel).parent.mkdir(parents=True, exist_ok=True)
        argv = self._argv(spec, jd)
        write_inside(jd, COMMAND_FILE, json.dumps(argv))
        self._tasks[spec.job_id] = asyncio.create_task(self._run(spec, argv, jd))
        return f"local:{spec.job_id}"

    def _argv(self, spec: RunSpec, jd: Path) -> list[str]:
        if spec.kind == "cwl":
            return cwltool_argv(find_command(self.settings.cwltool), bool(self.settings.container_runtime),
                                str(jd / "outputs"), str(jd / "tmp") + "/", f"{jd}/")
        argv = command_argv(spec)
        if spec.container is None:
            return argv
        runtime = check_container(spec.container, self.settings.container_runtime, self.settings.image_cache,
                                  "the local backend", " (local.container_runtime, local.image_cache)")
        cache = self.settings.image_cache
        assert cache is not None  # check_container refused none
        image = next((cache / n for n in spec.container.candidates() if (cache / n).exists()),
                     cache / spec.container.image)
        return container_argv(runtime, str(image), argv, spec.binds)

    async def submit_sweep(self, job_id: str, specs: list[RunSpec], max_parallel: int | None) -> tuple[str, list[str]]:
        gate = asyncio.Semaphore(max_parallel or len(specs))
        self._gates.update((spec.job_id, gate) for spec in specs)
        return await super().submit_sweep(job_id, specs, max_parallel)

    async def _run(self, spec: RunSpec, argv: list[str], jd: Path) -> None:
        async with self._gates.pop(spec.job_id, contextlib.nullcontext()), self._slots:
            if (jd / CANCEL_FILE).exists():
                return
            env = job_environment(self.settings, jd, spec.env)
            stdout_name = OUTPUTS_FILE if spec.kind == "cwl" else "stdout.log"
            try:
                with (jd / stdout_name).open("wb") as out, (jd / "stderr.log").open("wb") as err:
                    proc = await self._start_process(spec, argv, jd, env, out.fileno(), err.fileno())
                    self._procs[spec.job_id] = proc
                    write_inside(jd, PID_FILE, str(proc.pid))
                    self._on_change(spec.job_id)
                    code = await proc.wait()
            except OSError as exc:
                (jd / "stderr.log").write_text(f"could not start {argv[0]}: {exc}\n")
                code = 127
            finally:
                self._procs.pop(spec.job_id, None)
            try:
                if spec.kind == "command" and code == 0:
                    exists = {oid: (jd / rel).is_file() for oid, rel in spec.outputs.items()}
                    manifest = command_outputs_manifest(spec.outputs, exists, str(jd))
                    write_inside(jd, OUTPUTS_FILE, json.dumps(manifest))
                write_inside(jd, EXIT_FILE, str(code))
            except OSError as exc:  # the job removed or replaced its own directory
                log.warning("job %s: its exit code could not be recorded: %s", spec.job_id, exc)
                self._lost[spec.job_id] = f"the job's directory was changed under hpgc: {exc}"
            self._on_change(spec.job_id)  # polled at once: a sync execute is waiting for this

    async def _start_process(self, spec: RunSpec, argv: list[str], jd: Path, env: dict[str, str], out: int,
                             err: int) -> asyncio.subprocess.Process | ZygoteJob:
        if spec.kind == "cwl" and self._zygote is not None:  # cwltool forked ready-loaded (cwl_zygote.py)
            return await self._zygote.spawn(argv, jd, env, out, err)
        return await asyncio.create_subprocess_exec(
            *argv, cwd=jd, env=env, stdout=out, stderr=err, stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # own process group: dismiss kills the whole tree
        )

    async def ensure_image(self, container: Container, cluster: str | None = None) -> None:
        """Pull a package's image into the image cache once (deploy time), with the runtime's own pull."""
        if not self.settings.container_runtime or not self.settings.image_cache:
            raise BackendError("no container runtime is configured for the local backend "
                               "(local.container_runtime, local.image_cache)")
        paths = [self._inside(self.settings.image_cache, n) for n in container.candidates()]
        if any(p.exists() for p in paths):
            return  # cached already, and never replaced (a pulled file's name is its reference's digest)
        if not container.source:
            raise BackendError(f"the image {container.image} is not in the image cache")
        target = paths[-1]
        target.parent.mkdir(parents=True, exist_ok=True)
        proc = await asyncio.create_subprocess_exec(
            self.settings.container_runtime, "pull", str(target), container.source,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise BackendError(out.decode(errors="replace")[-1000:].strip() or f"pull exited {proc.returncode}")

    async def remove_image(self, container: Container, cluster: str | None = None) -> None:
        if self.settings.image_cache and container.source:  # only what hpgc pulled, under its digest name
            self._inside(self.settings.image_cache, container.image).unlink(missing_ok=True)

    # follow ----------------------------------------------------------------------------------------
    async def poll(self, jobs: list[JobRef]) -> dict[str, BackendStatus]:
        return {ref.job_id: self._status(ref.job_id) for ref in jobs}

    def _status(self, job_id: str) -> BackendStatus:
        jd = self.job_dir(job_id)
        if job_id in self._lost:
            return BackendStatus(status=StatusCode.failed, message=self._lost[job_id])
        exit_text = read_text_or_empty(jd, EXIT_FILE, SMALL_FILE_BYTES)
        if exit_text or (jd / EXIT_FILE).exists():
            try:
                code = int(exit_text or "1")
            except ValueError:
                code = 1
            if (jd / CANCEL_FILE).exists():
                return BackendStatus(status=StatusCode.dismissed, message="dismissed by the user", exit_code=code)
            if code == 0:
                return BackendStatus(status=StatusCode.successful, progress=100, message="finished",
                                     exit_code=0)
            tail = log_tail(jd, "stderr.log", STDERR_TAIL)
            message = f"the process exited with code {code}" + (f": {tail}" if tail else "")
            return BackendStatus(status=StatusCode.failed, message=message, exit_code=code,
                                 details={"stderr_tail": tail})
        if job_id in self._procs:
            progress, message = parse_progress(read_text_or_empty(jd, PROGRESS_FILE, SMALL_FILE_BYTES, tail=True))
            return BackendStatus(status=StatusCode.running, progress=progress, message=message or "running")
        if (jd / CANCEL_FILE).exists():
            return BackendStatus(status=StatusCode.dismissed, message="dismissed by the user")
        if job_id in self._tasks:
            return BackendStatus(status=StatusCode.accepted, message="waiting for a free slot")
        kill_orphan(jd)
        return BackendStatus(
            status=StatusCode.failed,
            message="hpgc stopped while this job ran on the local backend; it cannot be followed after a "
            "restart. Please submit it again.",
        )

    async def cancel(self, job: JobRef) -> None:
        jd = self.job_dir(job.job_id)
        if jd.is_dir():
            write_inside(jd, CANCEL_FILE, "")
        if job.job_id in self._procs:
            self._kill(job.job_id, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._tasks[job.job_id]), timeout=KILL_GRACE_S)
            self._kill(job.job_id, signal.SIGKILL)
        self._on_change(job.job_id)

    def _kill(self, job_id: str, sig: int) -> None:
        proc = self._procs.get(job_id)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)

    # results ---------------------------------------------------------------------------------------
    async def outputs(self, job: JobRef) -> dict[str, Any]:
        return read_outputs(self.job_dir(job.job_id))

    def _inside(self, jd: Path, path: str) -> Path:
        target = (jd / path).resolve()
        if not target.is_relative_to(jd.resolve()):
            raise BackendError(f"{path} is outside the job directory")
        return target

    async def file_size(self, job: JobRef, path: str) -> int:
        try:
            return size_inside(self.job_dir(job.job_id), path)
        except OSError:
            raise BackendError(f"{path} does not exist") from None

    def read_file(self, job: JobRef, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        return stream_file(self.job_dir(job.job_id), path, offset, length)

    async def logs(self, job: JobRef, tail: int | None = None) -> Logs:
        jd = self.job_dir(job.job_id)
        return Logs(stdout=log_tail(jd, "stdout.log", tail), stderr=log_tail(jd, "stderr.log", tail))

    async def script(self, job: JobRef) -> str | None:
        return command_line(self.job_dir(job.job_id))

    async def remove(self, job: JobRef) -> None:
        """Delete a finished or cancelled job's directory, once its process is gone."""
        task = self._tasks.get(job.job_id)
        if task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), KILL_GRACE_S * 2)
            self._tasks.pop(job.job_id, None)
        await asyncio.to_thread(shutil.rmtree, self.job_dir(job.job_id), True)
