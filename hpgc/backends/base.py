"""The contract every backend fulfils (Parsl's providers: one base class, every hook declared here).

A backend knows nothing about HTTP or the job store: it gets a RunSpec to submit and JobRefs to find
jobs again (also after a restart), and answers in BackendStatus, Logs and bytes. The job service calls
only what is declared here; a hook a backend has no use for keeps its default.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from hpgc.models.resources import ResourceLimits
from hpgc.models.run import BackendStatus, Container, JobRef, Logs, RunSpec, UploadRef


class OnChange(Protocol):
    """How a backend tells the job monitor that a job (or some job) changed (Backend.start)."""

    def __call__(self, job_id: str | None = None) -> None: ...


class BackendError(Exception):
    """A backend could not do what was asked; the message is meant for the user."""


class PathNotAllowed(BackendError):
    """A path a request names may not be used by its user there (a 403, before any job exists)."""


@dataclass(frozen=True)
class Capabilities:
    resumable: bool  # a job still running when the server died can be followed after a restart
    runs_as_server: bool  # jobs run as the server's own account (docs/security.md: deploying there is an admin's)


class Backend(ABC):
    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    # life ------------------------------------------------------------------------------------------
    @abstractmethod
    async def start(self, on_change: OnChange) -> None:
        """Open connections. `on_change` may be called when the backend knows a job changed state, so the
        monitor polls at once instead of at its next tick: `on_change(job_id)` polls that job alone, right
        away (cheap: a local job's end); `on_change()` polls every active job, at most once per minimum
        poll interval."""

    @abstractmethod
    async def close(self) -> None: ...

    async def health(self, timeout_s: float) -> dict[str, bool]:
        """Whether what jobs need answers, by check name (e.g. `cluster:NAME`), each within `timeout_s`;
        /health/ready shows them. {}: nothing to check (this machine runs the jobs)."""
        return {}

    # where jobs run --------------------------------------------------------------------------------
    @property
    def cluster_names(self) -> list[str]:
        """The clusters a process or request may name (the first is the default); [] when there are none."""
        return []

    @property
    @abstractmethod
    def poll_intervals(self) -> tuple[float, float]:
        """(least, most) seconds between two polls of the monitor: short after a change, growing when quiet."""

    @property
    def deploy_needs_admin(self) -> bool:
        """Whether deploying a process that runs here needs an administrator (jobs run as the server)."""
        return self.capabilities.runs_as_server

    def stages_in_on_server(self, cluster: str | None) -> bool:
        """Whether the server downloads `href` inputs (through its guarded client) rather than the job."""
        return True

    def resource_limits(self, cluster: str | None) -> ResourceLimits:
        """The most one job on `cluster` (None: the default) may ask for; an execute asking for more is a 400.
        The default: no limits, and no partitions to choose from."""
        return ResourceLimits(partitions=[], where=f"the {self.name} backend")

    async def ensure_image(self, container: Container, cluster: str | None) -> None:
        """Make the image available on `cluster` (None: the default) before a process using it runs; raise
        BackendError saying why when it cannot be."""
        raise BackendError(f"the {self.name} backend does not run containers")

    async def remove_image(self, container: Container, cluster: str | None) -> None:
        """Delete an image hpgc pulled (`container.image`, never the site's own file) once no process uses it;
        a backend without an image cache has nothing to do."""
        return None

    # jobs ------------------------------------------------------------------------------------------
    @abstractmethod
    async def submit(self, spec: RunSpec) -> str:
        """Stage inputs and start the job; return the backend's id for it (stored as JobRef.external_id).
        Idempotent per spec.job_id: a second call for a job already submitted returns the same id."""

    async def submit_sweep(self, job_id: str, specs: list[RunSpec], max_parallel: int | None) -> tuple[str, list[str]]:
        """Start every task of sweep `job_id` (`specs` in task order, their job ids its task keys,
        hpgc.models.sweep.task_key), at most `max_parallel` at once (None: no limit of its own); return the
        sweep's id (what `cancel_sweep` gets) and each task's id (what `poll` gets). Idempotent per job id.
        The default submits each task as a job of its own, all at once (a backend that batches submissions,
        as the Slurm backend's SubmitBatcher does, sends them in few round trips); a scheduler's arrays do better."""
        return f"{self.name}:{job_id}", list(await asyncio.gather(*(self.submit(spec) for spec in specs)))

    async def cancel_sweep(self, job: JobRef, tasks: list[JobRef]) -> None:
        """Cancel a sweep's unfinished `tasks` (its whole array, for a scheduler that has them)."""
        for task in tasks:
            await self.cancel(task)

    @abstractmethod
    async def poll(self, jobs: list[JobRef]) -> dict[str, BackendStatus]:
        """Status of each job, keyed by job id; jobs it cannot tell about yet are left out. Must cost a
        bounded number of round trips whatever len(jobs) is."""

    @abstractmethod
    async def cancel(self, job: JobRef) -> None: ...

    @abstractmethod
    async def remove(self, job: JobRef) -> None:
        """Delete what the job left (its directory) once it is dismissed."""

    # what a job left -------------------------------------------------------------------------------
    @abstractmethod
    async def outputs(self, job: JobRef) -> dict[str, Any]:
        """The job's outputs.json (CWL output-object form) once it succeeded."""

    @abstractmethod
    def read_file(self, job: JobRef, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream a file of the job directory (path relative to it, or absolute inside it; anything
        outside the job directory raises BackendError)."""

    @abstractmethod
    async def file_size(self, job: JobRef, path: str) -> int: ...

    @abstractmethod
    async def logs(self, job: JobRef, tail: int | None = None) -> Logs: ...

    async def script(self, job: JobRef) -> str | None:
        """The script that was submitted, if the backend has one."""
        return None

    async def steps(self, job: JobRef) -> list[dict[str, Any]] | None:
        """The batch jobs a job's steps run as (Slurm: a Toil workflow's), each with its name, status, batch
        job id, node and logs; None when the job's steps do not run as jobs of their own."""
        return None

    def public_url(self, job: JobRef, path: str) -> str | None:
        """Where the site serves a result file itself (links in results documents); None: through hpgc."""
        return None

    # uploads (POST /files) ---------------------------------------------------------------------------
    async def store_upload(self, upload: UploadRef, chunks: AsyncIterator[bytes]) -> None:
        """Write an uploaded file where this backend's jobs read it, chunk by chunk as `chunks` yields them
        (never whole in memory). It appears under its name only when complete: when `chunks` raises (a cut
        connection, a size limit) nothing is left."""
        raise BackendError(f"the {self.name} backend does not keep uploaded files")

    async def remove_upload(self, upload: UploadRef) -> None:
        """Delete an uploaded file (one already gone is not an error)."""
        return None

    def upload_path(self, upload: UploadRef) -> str:
        """The absolute path, where jobs run, of an uploaded file: a RunSpec's StagedFile.source."""
        raise BackendError(f"the {self.name} backend does not keep uploaded files")

    # paths where jobs run (file:// inputs) ------------------------------------------------------------
    async def check_path(self, path: str, cluster: str | None, unix_user: str | None) -> str:
        """The physical path of a regular file on the machine where jobs run that `unix_user` may read, used in
        place by the job; PathNotAllowed (saying why, the same words whether it is missing or forbidden) if not."""
        raise PathNotAllowed(f"the {self.name} backend takes no file paths as inputs")

    async def check_folder(self, path: str, cluster: str | None, unix_user: str | None) -> None:
        """Whether outputs may be copied into this folder for `unix_user` (theirs, writable); PathNotAllowed if not."""
        raise PathNotAllowed(f"the {self.name} backend writes outputs to no folder outside the job")

    async def copy_out(self, job: JobRef, path: str, folder: str, name: str) -> tuple[int, str]:
        """Copy a job's output file into FOLDER/NAME as the job's user; (size, SHA-256 hex)."""
        raise PathNotAllowed(f"the {self.name} backend writes outputs to no folder outside the job")
