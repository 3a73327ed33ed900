"""One monitor per backend: polls all of its active jobs in one call per cycle, at an adaptive interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hpgc.backends.base import Backend
from hpgc.jobs.lifecycle import POLL_COLUMNS, changes_of, job_ref
from hpgc.jobs.metrics import POLL_FAILURES, POLL_SECONDS
from hpgc.jobs.service import JobService
from hpgc.logs import bind
from hpgc.models.ogc import StatusCode

log = logging.getLogger(__name__)


class Monitor:
    def __init__(self, service: JobService, backend: Backend, min_interval: float, max_interval: float) -> None:
        self.service = service
        self.backend = backend
        self.min_interval = min_interval
        self.max_interval = max_interval
        self._wake = asyncio.Event()  # poll every active job (rate-limited to once per min_interval)
        self._signal = asyncio.Event()  # a wake, or a job that changed: the waiting loop looks
        self._changed: set[str] = set()  # jobs the backend said changed: polled at once, alone
        self._task: asyncio.Task[None] | None = None

    def wake(self, job_id: str | None = None) -> None:
        """Poll at once: the job that the backend saw change (a local job's end: a sync execute waits for
        it), or every active job (a job was submitted, or the backend saw some change)."""
        if job_id is None:
            self._wake.set()
        else:
            self._changed.add(job_id)
        self._signal.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"monitor-{self.backend.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def poll_once(self) -> int:
        """One cycle over every active job; returns how many jobs changed."""
        self._changed.clear()  # this cycle polls them too
        active = await self.service.db(self.service.store.active_jobs, self.backend.name, POLL_COLUMNS)
        return await self._poll(active)

    async def poll_changed(self) -> int:
        """Only the jobs the backend said changed (one file read each on the local backend), whatever the
        rate limit; a sweep's task, or a job not found active, makes the next cycle a full one."""
        ids, self._changed = sorted(self._changed), set()
        rows = await self.service.db(self.service.store.get_jobs, ids)
        active = [r for r in rows.values() if not StatusCode(r["status"]).terminal
                  and r["backend"] == self.backend.name and r.get("tasks") is None]
        if len(active) < len(ids):
            self._wake.set()
        return await self._poll(active)

    async def _poll(self, active: list[dict[str, Any]]) -> int:
        refs = [job_ref(r) for r in active if r.get("external_id") and r.get("tasks") is None]
        refs += await self.service.task_refs(active)  # a sweep's unfinished tasks, in the same poll
        if not refs:
            return 0
        statuses = await self.backend.poll(refs)
        seen = {r["id"]: r for r in active}
        moved = [job_id for job_id, st in statuses.items() if job_id in seen and changes_of(seen[job_id], st)]
        rows = await self.service.db(self.service.store.get_jobs, moved) if moved else {}
        changed = 0
        for job_id in moved:
            row = rows.get(job_id) or {}
            with bind(job_id=job_id, process_id=row.get("process_id"), user=row.get("owner"),
                      cluster=row.get("cluster")):
                if await self.service.apply(job_id, statuses[job_id], rows.get(job_id)) is not None:
                    changed += 1
        return changed + await self.service.apply_task_reports(statuses)

    async def _guarded(self, poll: Callable[[], Awaitable[int]]) -> int:
        started = time.monotonic()
        try:
            return await poll()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("polling %s failed; trying again", self.backend.name)
            POLL_FAILURES.labels(self.backend.name).inc()
            return 0
        finally:
            POLL_SECONDS.labels(self.backend.name).observe(time.monotonic() - started)

    async def _run(self) -> None:
        interval = self.min_interval
        while True:
            self._wake.clear()
            started = time.monotonic()
            changed = await self._guarded(self.poll_once)
            # quick while things change, slower while jobs just run
            interval = self.min_interval if changed else min(interval * 1.5, self.max_interval)
            await self._wait(interval)
            if self._wake.is_set():
                interval = self.min_interval
                # a burst of submissions wakes the monitor hundreds of times: poll at most once per
                # min_interval, or polling (one sacct over SSH each) crowds out the submissions themselves
                await asyncio.sleep(max(0.0, self.min_interval - (time.monotonic() - started)))

    async def _wait(self, interval: float) -> None:
        """Until a wake or `interval` passed; jobs said to have changed meanwhile are polled as they come, in
        this task (never beside a full cycle, so no job is applied twice at once)."""
        until = time.monotonic() + interval
        while not self._wake.is_set():
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for loses a cancel (stop) that arrives as the
            # event is set, and the loop would run on with stop() waiting for it forever
            try:
                async with asyncio.timeout(interval):
                    await self._signal.wait()
            except TimeoutError:
                return
            self._signal.clear()
            if self._changed and not self._wake.is_set():
                await self._guarded(self.poll_changed)
            interval = max(0.0, until - time.monotonic())
