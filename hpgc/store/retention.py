"""Retention's queries: the ended jobs past their time, and their tombstones (the row stays, `dismissed`,
with an event saying why; the files are gone)."""

from __future__ import annotations

import time

from hpgc.store.base import Tables
from hpgc.store.jobs import JobTable
from hpgc.store.rows import JobRow
from hpgc.store.sql import _decode, _rows

ENDED = ("successful", "failed")


class RetentionTable(Tables):
    def expired_jobs(self, ended_before: float, limit: int) -> list[JobRow]:
        """Successful or failed jobs that ended before `ended_before`, oldest first, at most `limit`."""
        sql = ("SELECT * FROM jobs WHERE status IN ('successful', 'failed') AND finished < ?"
               " ORDER BY finished, id LIMIT ?")
        with self._lock:
            return [_decode(r) for r in _rows(self.db.execute(sql, [ended_before, limit]))]  # type: ignore[misc]

    def tombstone_jobs(self, job_ids: list[str], message: str) -> list[str]:
        """Mark jobs whose files were deleted as dismissed, with an event, in one transaction; only those still
        successful or failed (one the user dismissed meanwhile is left as it is). Returns the ids marked."""
        now = time.time()
        marked: list[str] = []
        with self.transaction() as db:
            for job_id in job_ids:
                cur = db.execute("UPDATE jobs SET status = 'dismissed', message = ?, updated = ? WHERE id = ?"
                                 " AND status IN ('successful', 'failed')", [message, now, job_id])
                if cur.rowcount:
                    JobTable._event(db, job_id, "dismissed", None, message, None)
                    marked.append(job_id)
        return marked
