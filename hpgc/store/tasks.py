"""The tasks of sweeps (hpgc:sweep): one row per task, written with its job in one transaction; the job row
carries the counts by state (`jobs.tasks`), so its status document needs no second query."""

from __future__ import annotations

import time
from typing import Any

from hpgc.store.base import Tables
from hpgc.store.jobs import JobTable
from hpgc.store.sql import _decode, _encode, _insert, _rows

ACTIVE = ("accepted", "running")


class TaskTable(Tables):
    def insert_sweep(self, row: dict[str, Any], count: int, message: str, max_active: int = 0) -> bool:
        """A new sweep job and its `count` tasks (accepted); False (nothing stored) over `max_active`, as
        insert_job."""
        now = time.time()
        with self.transaction() as db:
            if max_active and JobTable._active_of(db, row["owner"]) >= max_active:
                return False
            _insert(db, "jobs", _encode(row))
            JobTable._event(db, row["id"], row["status"], row.get("progress"), message, None)
            db.conn.executemany("INSERT INTO job_tasks (job_id, idx, status, updated) VALUES (?, ?, 'accepted', ?)",
                                [(row["id"], i, now) for i in range(count)])
        return True

    def job_tasks(self, job_id: str, offset: int = 0, limit: int = -1) -> list[dict[str, Any]]:
        """A sweep's tasks in task order (`limit` -1: all)."""
        with self._lock:
            cur = self.db.execute("SELECT * FROM job_tasks WHERE job_id = ? ORDER BY idx LIMIT ? OFFSET ?",
                                  [job_id, limit, offset])
            return [_decode(r) for r in _rows(cur)]  # type: ignore[misc]

    def job_task(self, job_id: str, index: int) -> dict[str, Any] | None:
        with self._lock:
            rows = _rows(self.db.execute("SELECT * FROM job_tasks WHERE job_id = ? AND idx = ?", [job_id, index]))
        return _decode(rows[0]) if rows else None

    def active_tasks(self, job_ids: list[str]) -> dict[str, list[tuple[int, str | None]]]:
        """(index, backend id) of the tasks not final yet, by job, for the given sweeps (all of them present)."""
        out: dict[str, list[tuple[int, str | None]]] = {j: [] for j in job_ids}
        with self._lock:
            for i in range(0, len(job_ids), 500):
                chunk = job_ids[i:i + 500]
                cur = self.db.execute(
                    f"SELECT job_id, idx, external_id FROM job_tasks WHERE job_id IN ({','.join('?' * len(chunk))})"
                    " AND status IN ('accepted', 'running') ORDER BY job_id, idx", chunk)
                for job_id, idx, ext in cur.fetchall():
                    out[job_id].append((idx, ext))
        return out

    def update_tasks(self, job_id: str, changes: dict[int, dict[str, Any]], counts: dict[str, int]) -> bool:
        """Task changes by index and the job's new counts, in one transaction; False when the job is final
        (a late poll changes nothing of a dismissed sweep)."""
        with self.transaction() as db:
            cur = db.execute("SELECT status FROM jobs WHERE id = ?", [job_id]).fetchone()
            if cur is None or cur[0] not in ACTIVE:
                return False
            for idx, change in changes.items():
                enc = _encode({"updated": time.time(), **change})
                db.execute(f"UPDATE job_tasks SET {', '.join(f'{c} = ?' for c in enc)} WHERE job_id = ? AND idx = ?",
                           [*enc.values(), job_id, idx])
            db.execute("UPDATE jobs SET tasks = ? WHERE id = ?", [_encode({"tasks": counts})["tasks"], job_id])
        return True

    def record_sweep_submitted(self, job_id: str, external_id: str, task_ids: list[str], event: str) -> bool:
        """The sweep's backend id and each task's, in one transaction; False when it ended meanwhile (dismissed)."""
        with self.transaction() as db:
            if not self._update_job(db, job_id, {"external_id": external_id}, event):  # type: ignore[attr-defined]
                return False
            db.conn.executemany("UPDATE job_tasks SET external_id = ? WHERE job_id = ? AND idx = ?",
                                [(ext, job_id, i) for i, ext in enumerate(task_ids)])
        return True

    def end_tasks(self, job_id: str, status: str, message: str) -> dict[str, int]:
        """Every task not final yet becomes `status` (a dismissed sweep); returns the new counts."""
        with self.transaction() as db:
            db.execute("UPDATE job_tasks SET status = ?, message = ?, updated = ? WHERE job_id = ? AND status IN "
                       "('accepted', 'running')", [status, message, time.time(), job_id])
            counts = dict(db.execute("SELECT status, COUNT(*) FROM job_tasks WHERE job_id = ? GROUP BY status",
                                     [job_id]).fetchall())
        return counts
