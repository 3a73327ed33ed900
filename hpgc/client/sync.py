"""`hpgc.client.Client`: the same calls as AsyncClient, blocking. The coroutines run on an event loop of the
client's own thread, so this works in scripts and in notebooks alike (a notebook's loop is already running,
which rules out asyncio.run)."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from hpgc.client.api import AsyncClient, AsyncJob, Progress
from hpgc.models.ogc import ProcessDescription, ProcessSummary, StatusInfo

T = TypeVar("T")


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="hpgc-client", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except KeyboardInterrupt:  # Ctrl-C in the caller's thread: stop the call too
            future.cancel()
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def _shutdown(aio: AsyncClient, loop: _LoopThread) -> None:
    if loop.thread.is_alive():
        loop.run(aio.close())
        loop.stop()


class Job:
    """A job on the server (see AsyncJob); `status` is the last statusInfo seen."""

    def __init__(self, client: Client, job: AsyncJob) -> None:
        self._client, self._job = client, job

    @property
    def id(self) -> str:
        return self._job.id

    @property
    def status(self) -> StatusInfo:
        return self._job.status

    def __repr__(self) -> str:
        return repr(self._job)

    def refresh(self) -> StatusInfo:
        return self._client._run(self._job.refresh())

    def wait(self, progress: Progress | None = None, check: bool = True) -> StatusInfo:
        return self._client._run(self._job.wait(progress, check))

    def results(self) -> dict[str, Any]:
        return self._client._run(self._job.results())

    def download(self, folder: str | Path) -> dict[str, Path]:
        return self._client._run(self._job.download(folder))

    def logs(self, tail: int | None = None) -> dict[str, Any]:
        return self._client._run(self._job.logs(tail))

    def dismiss(self) -> StatusInfo:
        return self._client._run(self._job.dismiss())


class Client:
    """A blocking client of one hpgc server: `Client(url)` (or HPGC_URL), token as for AsyncClient."""

    def __init__(self, url: str | None = None, token: str | None = None, **kw: Any) -> None:
        self.aio = AsyncClient(url, token, **kw)
        self.url = self.aio.url
        self._loop = _LoopThread()
        # a script that never calls close() still closes its connections at exit, without a warning
        self._finalizer = weakref.finalize(self, _shutdown, self.aio, self._loop)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(coro)

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def processes(self) -> list[ProcessSummary]:
        return self._run(self.aio.processes())

    def describe(self, process_id: str) -> ProcessDescription:
        return self._run(self.aio.describe(process_id))

    def deploy(self, source: str | Path | dict[str, Any], *, replace: bool = False,
               process_id: str | None = None) -> str:
        return self._run(self.aio.deploy(source, replace=replace, process_id=process_id))

    def undeploy(self, process_id: str) -> None:
        self._run(self.aio.undeploy(process_id))

    def execute(self, process_id: str, inputs: dict[str, Any] | None = None, **kw: Any) -> Job:
        return Job(self, self._run(self.aio.execute(process_id, inputs, **kw)))

    def job(self, job_id: str) -> Job:
        return Job(self, self._run(self.aio.job(job_id)))

    def rerun(self, job_id: str, changes: dict[str, Any] | None = None, **kw: Any) -> Job:
        return Job(self, self._run(self.aio.rerun(job_id, changes, **kw)))

    def jobs(self, **filters: Any) -> list[StatusInfo]:
        return self._run(self.aio.jobs(**filters))

    def status(self, job_id: str) -> StatusInfo:
        return self._run(self.aio.status(job_id))

    def results(self, job_id: str) -> dict[str, Any]:
        return self._run(self.aio.results(job_id))

    def logs(self, job_id: str, tail: int | None = None, full: bool = False) -> dict[str, Any]:
        return self._run(self.aio.logs(job_id, tail, full))

    def dismiss(self, job_id: str) -> StatusInfo:
        return self._run(self.aio.dismiss(job_id))

    def download(self, job_id: str, folder: str | Path) -> dict[str, Path]:
        return self._run(self.aio.download(job_id, folder))
