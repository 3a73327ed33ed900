"""Retention: ended jobs older than `retention.job_days` lose their files (through their backend's `remove`,
on the cluster or locally) and become tombstones (the row stays, `dismissed`, with an event saying why).

Files first, then the row: a restart between the two leaves the job expired and still `successful`/`failed`,
so the next sweep removes again (`remove` of a directory already gone deletes nothing) and marks it. A removal
that fails leaves the row as it is, for the next sweep. Running and recent jobs are never selected (the query
asks for ended jobs past their time); a job the user dismissed meanwhile keeps its own tombstone. Callbacks are
not sent for it: the subscriber heard of the job's end. The sweep runs in the background, its queries in the
store's worker thread, a batch's removals together."""

from __future__ import annotations

import asyncio
import contextlib
import time

from hpgc.backends.base import BackendError
from hpgc.jobs.lifecycle import job_ref
from hpgc.jobs.metrics import RETENTION_FAILURES, RETENTION_PURGED
from hpgc.jobs.ops_settings import RetentionSettings
from hpgc.jobs.parts import ServiceParts, log
from hpgc.logs import bind
from hpgc.store.rows import JobRow

DAY_S = 86400.0


class RetentionPart(ServiceParts):
    async def expired(self, days: float, limit: int, now: float | None = None) -> list[JobRow]:
        """Ended jobs past `days`, oldest first (what a sweep would delete: `hpgc purge --dry-run`)."""
        return await self.db(self.store.expired_jobs, (now or time.time()) - days * DAY_S, limit)

    async def purge_batch(self, rows: list[JobRow], days: float) -> list[str]:
        """Delete these jobs' files, then tombstone those whose files are gone; returns the ids tombstoned."""
        removed = await asyncio.gather(*(self._purge_files(row) for row in rows))
        done = [row["id"] for row, ok in zip(rows, removed, strict=True) if ok]
        if not done:
            return []
        message = f"deleted: ended more than {days:g} days ago (retention.job_days)"
        marked = await self.db(self.store.tombstone_jobs, done, message)
        by_id = {row["id"]: row for row in rows}
        for job_id in marked:
            RETENTION_PURGED.labels(by_id[job_id]["backend"]).inc()
        return marked

    async def _purge_files(self, row: JobRow) -> bool:
        backend = self.backends.get(row["backend"])
        if backend is None or not row.get("external_id"):
            return True  # nothing reached a backend this server knows: only the row is left
        with bind(job_id=row["id"], process_id=row["process_id"], user=row["owner"], cluster=row.get("cluster")):
            try:
                await backend.remove(job_ref(row))  # type: ignore[arg-type]
            except (BackendError, OSError) as exc:
                RETENTION_FAILURES.labels(backend.name).inc()
                log.warning("retention: the files of job %s could not be deleted (next sweep): %s", row["id"], exc)
                return False
        return True

    async def sweep(self, days: float, batch: int, now: float | None = None) -> int:
        """Batch after batch until nothing has expired (or only jobs whose removal failed are left)."""
        total = 0
        failed: set[str] = set()
        while True:
            rows = [r for r in await self.expired(days, batch + len(failed), now) if r["id"] not in failed][:batch]
            if not rows:
                return total
            marked = await self.purge_batch(rows, days)
            total += len(marked)
            failed.update(r["id"] for r in rows if r["id"] not in marked)


class RetentionSweeper:
    """The background task: a sweep every `interval_s` (the first one at start)."""

    def __init__(self, service: RetentionPart, settings: RetentionSettings) -> None:
        self.service = service
        self.settings = settings
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.job_days > 0:
            self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                purged = await self.service.sweep(self.settings.job_days, self.settings.batch)
                if purged:
                    log.info("retention: deleted the files of %d jobs older than %g days", purged,
                             self.settings.job_days)
            except Exception:
                log.exception("retention sweep failed; trying again at the next one")
            await asyncio.sleep(self.settings.interval_s)
