"""The interface every backend implements. It knows nothing about HTTP or the job store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, runtime_checkable

from hpgc.models.run import BackendStatus, JobRef, Logs, RunSpec


class BackendError(Exception):
    """A backend could not do what was asked; the message is meant for the user."""


@runtime_checkable
class Backend(Protocol):
    name: str

    async def start(self, on_change: Callable[[], None]) -> None:
        """Open connections. `on_change` may be called when the backend knows a job changed state, so the
        monitor polls at once instead of at its next tick."""

    async def close(self) -> None: ...

    async def submit(self, spec: RunSpec) -> str:
        """Stage inputs and start the job; return the backend's id for it (stored as JobRef.external_id).
        Idempotent per spec.job_id: a second call for a job already submitted returns the same id."""

    async def poll(self, jobs: list[JobRef]) -> dict[str, BackendStatus]:
        """Status of each job, keyed by job id; jobs it cannot tell about yet are left out. Must cost a
        bounded number of round trips whatever len(jobs) is."""

    async def cancel(self, job: JobRef) -> None: ...

    async def outputs(self, job: JobRef) -> dict[str, Any]:
        """The job's outputs.json (CWL output-object form) once it succeeded."""

    def read_file(
        self, job: JobRef, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream a file of the job directory (path relative to it, or absolute inside it; anything
        outside the job directory raises BackendError)."""

    async def file_size(self, job: JobRef, path: str) -> int: ...

    async def logs(self, job: JobRef, tail: int | None = None) -> Logs: ...

    async def script(self, job: JobRef) -> str | None:
        """The script that was submitted, if the backend has one."""

    @property
    def resumable(self) -> bool:
        """Whether a job still running when the server died can be followed after a restart."""
