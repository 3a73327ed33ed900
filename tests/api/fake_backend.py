"""A backend that runs nothing: for tests of the API layer only (never proof that a real backend works).

It can also fail on demand (the `fail_*`, `omit`, `late` and `*_gate` attributes), so the API tests can walk
every failure path of the job service: a submission that raises, results that cannot be read, a poll that
leaves jobs out or reports on a job that already finished, a cancel that raises, a restart.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from hpgc.backends.base import Backend, BackendError, Capabilities, OnChange
from hpgc.models.ogc import StatusCode
from hpgc.models.run import BackendStatus, Container, JobRef, Logs, RunSpec


class FakeBackend(Backend):
    """echo: succeeds with its inputs mirrored; sleep: runs until cancelled; stringInput 'fail' → exit 3.

    Faults (None / empty: none):
    - `fail_submit`: submit raises it;
    - `fail_outputs`: outputs (reading outputs.json) raises it;
    - `fail_read`: read_file and file_size raise it (the result files are gone);
    - `fail_cancel`: cancel raises it;
    - `omit`: job ids poll leaves out of its answer (the backend cannot tell about them yet);
    - `late`: job id → a status poll reports for that job whatever it is (e.g. progress after the end);
    - `manifest`: the outputs.json every job leaves (default: echo's outputs from its inputs);
    - `submit_gate` / `poll_gate` / `pull_gate`: submit / poll / ensure_image wait until the event is set.
    `resumable` says whether jobs survive a restart of the server: a new FakeBackend given the `specs` of the
    old one (`FakeBackend(resumed=old)`) knows them; one that is not resumable fails jobs it does not know, as
    the local backend does.
    """

    name = "local"
    capabilities = Capabilities(resumable=True, runs_as_server=False)
    cluster_names: list[str] = []  # type: ignore[assignment]  # tests set the clusters it offers
    deploy_needs_admin = False  # type: ignore[assignment]  # tests set it: a backend whose jobs run as the server
    poll_intervals = (0.2, 0.2)  # type: ignore[assignment]  # the app's tests poll as often as the local backend
    LOST = "the fake backend lost this job when the server stopped"

    def __init__(self, resumed: FakeBackend | None = None, resumable: bool = True) -> None:
        self.specs: dict[str, RunSpec] = dict(resumed.specs) if resumed is not None else {}
        self.resumable = resumable
        self.cancelled: list[str] = []
        self.files: dict[tuple[str, str], bytes] = {}
        self.on_change: OnChange = lambda job_id=None: None
        self.pulled: list[str] = []
        self.removed_images: list[str] = []
        self.removed: list[str] = []
        self.pull_error: str | None = None
        self.submissions: list[str] = []  # job ids, once per submit call
        self.logs_asked: list[tuple[str, int | None]] = []  # (job id, tail) of each logs call
        self.fail_submit: BaseException | None = None
        self.fail_outputs: BaseException | None = None
        self.fail_read: BaseException | None = None
        self.fail_cancel: BaseException | None = None
        self.omit: set[str] = set()
        self.late: dict[str, BackendStatus] = {}
        self.manifest: dict[str, Any] | None = None  # what outputs() answers instead of the echo of the inputs
        self.submit_gate: asyncio.Event | None = None
        self.poll_gate: asyncio.Event | None = None
        self.pull_gate: asyncio.Event | None = None
        self.polls = 0  # poll calls begun
        self.polled: list[set[str]] = []  # the job ids each finished poll was asked about
        self._changed: asyncio.Condition | None = None

    # waiting on the fake's own events (never on time) ------------------------------------------------
    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _signal(self) -> None:
        cond = self._condition()
        async with cond:
            cond.notify_all()

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 10) -> None:
        """Wait until `predicate()` holds (checked whenever the fake does something), at most `timeout` s."""
        cond = self._condition()
        async with cond:
            try:
                await asyncio.wait_for(cond.wait_for(predicate), timeout)
            except TimeoutError:
                raise AssertionError(f"the fake backend never saw: {what}") from None

    # the Backend interface ----------------------------------------------------------------------------
    async def start(self, on_change: OnChange) -> None:
        self.on_change = on_change

    async def close(self) -> None:
        return None

    async def submit(self, spec: RunSpec) -> str:
        self.submissions.append(spec.job_id)
        await self._signal()
        if self.submit_gate is not None:
            await self.submit_gate.wait()
        if self.fail_submit is not None:
            raise self.fail_submit
        self.specs[spec.job_id] = spec
        self.on_change()
        await self._signal()
        return f"fake-{spec.job_id}"

    def _job(self, job_id: str) -> dict[str, Any]:
        spec = self.specs[job_id]
        files = {f.path: f.content for f in spec.files}
        return json.loads(files.get("job.json") or b"{}")

    async def poll(self, jobs: list[JobRef]) -> dict[str, BackendStatus]:
        self.polls += 1
        await self._signal()
        if self.poll_gate is not None:
            await self.poll_gate.wait()
        out: dict[str, BackendStatus] = {}
        for ref in jobs:
            spec = self.specs.get(ref.job_id)
            if ref.job_id in self.omit:
                continue
            if ref.job_id in self.late:
                out[ref.job_id] = self.late[ref.job_id]
            elif spec is None:
                if not self.resumable:
                    out[ref.job_id] = BackendStatus(status=StatusCode.failed, message=self.LOST)
            elif ref.job_id in self.cancelled:
                out[ref.job_id] = BackendStatus(status=StatusCode.dismissed)
            elif spec.process_id == "sleep":
                out[ref.job_id] = BackendStatus(status=StatusCode.running, progress=40, message="sleeping")
            elif self._job(ref.job_id).get("stringInput") == "fail":
                out[ref.job_id] = BackendStatus(status=StatusCode.failed, exit_code=3,
                                                message="the process exited with code 3: boom")
            else:
                out[ref.job_id] = BackendStatus(status=StatusCode.successful, exit_code=0)
        self.polled.append({ref.job_id for ref in jobs})
        await self._signal()
        return out

    async def cancel(self, job: JobRef) -> None:
        if self.fail_cancel is not None:
            raise self.fail_cancel
        self.cancelled.append(job.job_id)

    async def outputs(self, job: JobRef) -> dict[str, Any]:
        if self.fail_outputs is not None:
            raise self.fail_outputs
        if self.manifest is not None:
            return self.manifest
        inp = self._job(job.job_id)
        self.files[(job.job_id, "/jobs/report.txt")] = f"report for {inp.get('stringInput')}".encode()
        return {
            "stringOutput": inp.get("stringInput"),
            "doubleOutput": inp.get("doubleInput"),
            "arrayOutput": inp.get("arrayInput"),
            "report": {"class": "File", "path": "/jobs/report.txt"},
        }

    async def file_size(self, job: JobRef, path: str) -> int:
        if self.fail_read is not None:
            raise self.fail_read
        if (job.job_id, path) not in self.files:
            raise BackendError("no such file")
        return len(self.files[(job.job_id, path)])

    async def read_file(self, job: JobRef, path: str, offset: int = 0,
                        length: int | None = None) -> AsyncIterator[bytes]:
        if self.fail_read is not None:
            raise self.fail_read
        data = self.files[(job.job_id, path)]
        yield data[offset: None if length is None else offset + length]

    async def logs(self, job: JobRef, tail: int | None = None) -> Logs:
        self.logs_asked.append((job.job_id, tail))
        return Logs(stdout="out", stderr="err")

    async def remove(self, job: JobRef) -> None:
        self.removed.append(job.job_id)
        await self._signal()

    async def ensure_image(self, container: Container, cluster: str | None = None) -> None:
        if self.pull_gate is not None:
            await self.pull_gate.wait()
        if self.pull_error:
            raise BackendError(self.pull_error)
        self.pulled.append(container.image)
        await self._signal()

    async def remove_image(self, container: Container, cluster: str | None = None) -> None:
        self.removed_images.append(container.image)

    async def script(self, job: JobRef) -> str | None:
        return f"#!/bin/sh\necho fake {job.job_id}\n"


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


async def submitted(backend: FakeBackend, job_id: str, timeout: float = 10) -> RunSpec:
    """The spec the job service submitted (submission runs in the background)."""
    await backend.until(lambda: job_id in backend.specs, f"job {job_id} submitted", timeout)
    return backend.specs[job_id]
