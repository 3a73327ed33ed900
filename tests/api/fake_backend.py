"""A backend that runs nothing: for tests of the API layer only (never proof that a real backend works)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from hpgc.backends.base import BackendError
from hpgc.models.ogc import StatusCode
from hpgc.models.run import BackendStatus, Container, JobRef, Logs, RunSpec


class FakeBackend:
    """echo: succeeds with its inputs mirrored; sleep: runs until cancelled; stringInput 'fail' → exit 3."""

    name = "local"
    resumable = True

    def __init__(self) -> None:
        self.specs: dict[str, RunSpec] = {}
        self.cancelled: list[str] = []
        self.files: dict[tuple[str, str], bytes] = {}
        self.on_change: Callable[[], None] = lambda: None
        self.pulled: list[str] = []
        self.removed: list[str] = []
        self.pull_delay = 0.0
        self.pull_error: str | None = None

    async def start(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change

    async def close(self) -> None:
        return None

    async def submit(self, spec: RunSpec) -> str:
        self.specs[spec.job_id] = spec
        self.on_change()
        return f"fake-{spec.job_id}"

    def _job(self, job_id: str) -> dict[str, Any]:
        spec = self.specs[job_id]
        files = {f.path: f.content for f in spec.files}
        return json.loads(files.get("job.json") or b"{}")

    async def poll(self, jobs: list[JobRef]) -> dict[str, BackendStatus]:
        out: dict[str, BackendStatus] = {}
        for ref in jobs:
            spec = self.specs.get(ref.job_id)
            if spec is None:
                continue
            if ref.job_id in self.cancelled:
                out[ref.job_id] = BackendStatus(status=StatusCode.dismissed)
            elif spec.process_id == "sleep":
                out[ref.job_id] = BackendStatus(status=StatusCode.running, progress=40, message="sleeping")
            elif self._job(ref.job_id).get("stringInput") == "fail":
                out[ref.job_id] = BackendStatus(status=StatusCode.failed, exit_code=3,
                                                message="the process exited with code 3: boom")
            else:
                out[ref.job_id] = BackendStatus(status=StatusCode.successful, exit_code=0)
        return out

    async def cancel(self, job: JobRef) -> None:
        self.cancelled.append(job.job_id)

    async def outputs(self, job: JobRef) -> dict[str, Any]:
        inp = self._job(job.job_id)
        self.files[(job.job_id, "/jobs/report.txt")] = f"report for {inp.get('stringInput')}".encode()
        return {
            "stringOutput": inp.get("stringInput"),
            "doubleOutput": inp.get("doubleInput"),
            "arrayOutput": inp.get("arrayInput"),
            "report": {"class": "File", "path": "/jobs/report.txt"},
        }

    async def file_size(self, job: JobRef, path: str) -> int:
        if (job.job_id, path) not in self.files:
            raise BackendError("no such file")
        return len(self.files[(job.job_id, path)])

    async def read_file(self, job: JobRef, path: str, offset: int = 0,
                        length: int | None = None) -> AsyncIterator[bytes]:
        data = self.files[(job.job_id, path)]
        yield data[offset: None if length is None else offset + length]

    async def logs(self, job: JobRef, tail: int | None = None) -> Logs:
        return Logs(stdout="out", stderr="err")

    async def remove(self, job: JobRef) -> None:
        self.removed.append(job.job_id)

    async def ensure_image(self, container: Container) -> None:
        import asyncio

        await asyncio.sleep(self.pull_delay)
        if self.pull_error:
            raise BackendError(self.pull_error)
        self.pulled.append(container.image)

    async def script(self, job: JobRef) -> str | None:
        return "#!/bin/sh\necho fake\n"


class GateBackend(FakeBackend):
    """Every job runs until `release()`: then they all finish in the same poll."""

    def __init__(self) -> None:
        super().__init__()
        self.released = False

    async def poll(self, jobs: list[JobRef]) -> dict[str, BackendStatus]:
        if not self.released:
            return {r.job_id: BackendStatus(status=StatusCode.running) for r in jobs if r.job_id in self.specs}
        return await super().poll(jobs)

    def release(self) -> None:
        self.released = True
        self.on_change()


async def submitted(backend: FakeBackend, job_id: str, timeout: float = 5) -> RunSpec:
    """The spec the job service submitted (submission runs in the background)."""
    import asyncio

    for _ in range(int(timeout / 0.01)):
        if job_id in backend.specs:
            return backend.specs[job_id]
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} was never submitted")
