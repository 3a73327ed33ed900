"""The jobs table and its events: every status change is a job_events row written with it, so the
provenance log and the job cannot disagree; job lists use keyset paging over (created, id)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from hpgc.models.joblist import JobPage, JobQuery
from hpgc.store.base import Tables
from hpgc.store.rows import EventRow, JobRow
from hpgc.store.sql import JSON_COLUMNS, TERMINAL, _decode, _encode, _insert, _rows, _select_one, _update

# What a job list may cost the event loop on the read-only connection: at most this many rows, and about a
# millisecond of SQLite's work (10-20 million virtual machine steps a second here); more goes to the thread.
READ_LIMIT = 100
READ_STEPS = 20_000
PROGRESS_EVERY = 1000
# what a job list's statusInfo documents show (hpgc/jobs/documents.py): not the request, results or error,
# the large JSON columns, which a list would decode only to drop
LIST_COLUMNS = ("id", "process_id", "owner", "status", "message", "progress", "created", "started", "finished",
                "updated", "resources", "usage", "tasks")
LIST_JSON_COLUMNS = tuple(c for c in LIST_COLUMNS if c in JSON_COLUMNS)


class JobTable(Tables):
    def insert_job(self, row: JobRow, message: str = "job created", max_active: int = 0) -> bool:
        """Store a new job; False (nothing stored) when its owner has `max_active` (> 0) active jobs already:
        counted in the same transaction, so concurrent inserts cannot overshoot."""
        with self.transaction() as db:
            if max_active and self._active_of(db, row["owner"]) >= max_active:
                return False
            _insert(db, "jobs", _encode(row))
            self._event(db, row["id"], row["status"], row.get("progress"), message, None)
        return True

    @staticmethod
    def _active_of(db: sqlite_utils.Database, owner: str | None) -> int:
        return int(db.execute("SELECT COUNT(*) FROM jobs WHERE owner = ? AND status IN ('accepted', 'running')",
                              [owner]).fetchone()[0])

    def count_active_jobs(self, owner: str | None) -> int:
        with self._lock:
            return self._active_of(self.db, owner)

    def get_job(self, job_id: str) -> JobRow | None:
        with self._lock:
            return _select_one(self.db, "jobs", job_id)

    def get_jobs(self, job_ids: list[str]) -> dict[str, JobRow]:
        """Several jobs by id, in one query per 500."""
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for i in range(0, len(job_ids), 500):
                chunk = job_ids[i:i + 500]
                cur = self.db.execute(f"SELECT * FROM jobs WHERE id IN ({','.join('?' * len(chunk))})", chunk)
                out.update((r["id"], _decode(r)) for r in _rows(cur))  # type: ignore[misc]
        return out

    def read_job(self, job_id: str) -> JobRow | None:
        """get_job on the read-only connection: for one thread only (the event loop's); microseconds."""
        if self._reader is None:
            return self.get_job(job_id)
        return _select_one(self._reader, "jobs", job_id)

    def update_job(
        self,
        job_id: str,
        changes: dict[str, Any],
        event: str | None = None,
        details: dict[str, Any] | None = None,
        only_if_not_terminal: bool = True,
        outbox: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any] | None:
        """Apply changes (and log an event when the status or an event text is given).

        Returns the new row, or None when the job is gone or already terminal (terminal states are final:
        a late poll never overwrites `dismissed`). `outbox` rows (callback notifications caused by this
        change) are written in the same transaction: a change is never stored without its notifications,
        and a refused change leaves none.
        """
        with self.transaction() as db:
            if not self._update_job(db, job_id, changes, event, details, only_if_not_terminal, outbox):
                return None
            return _select_one(db, "jobs", job_id)

    def update_jobs(self, items: list[tuple[str, dict[str, Any], str | None]]) -> list[bool]:
        """Several (job id, changes, event) in one transaction: many jobs submitted in one SSH command are
        one commit, not one each. Same rules as update_job; True where the change was stored."""
        with self.transaction() as db:
            return [self._update_job(db, job_id, changes, event) for job_id, changes, event in items]

    def _update_job(
        self, db: sqlite_utils.Database, job_id: str, changes: dict[str, Any], event: str | None = None,
        details: dict[str, Any] | None = None, only_if_not_terminal: bool = True,
        outbox: list[dict[str, Any]] | None = None,
    ) -> bool:
        changes = {"updated": time.time(), **changes}
        cur = db.execute("SELECT status FROM jobs WHERE id = ?", [job_id]).fetchone()
        if cur is None or (only_if_not_terminal and cur[0] in TERMINAL):
            return False
        _update(db, "jobs", job_id, _encode(changes))
        if event is not None or "status" in changes:
            self._event(db, job_id, changes.get("status", cur[0]), changes.get("progress"),
                        event or changes.get("message"), details)
        if outbox:
            self._insert_outbox(db, outbox)
        return True

    @staticmethod
    def _insert_outbox(db: sqlite_utils.Database, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            _insert(db, "outbox", row)

    @staticmethod
    def _event(
        db: sqlite_utils.Database, job_id: str, status: str, progress: int | None, message: str | None,
        details: dict[str, Any] | None,
    ) -> None:
        _insert(db, "job_events", _encode({"job_id": job_id, "ts": time.time(), "status": status,
                                           "progress": progress, "message": message, "details": details}))

    def job_events(self, job_id: str) -> list[EventRow]:
        with self._lock:
            return [_decode(r) for r in self.db["job_events"].rows_where(  # type: ignore[misc]
                "job_id = ?", [job_id], order_by="id")]

    def active_jobs(self, backend: str | None = None, columns: tuple[str, ...] | None = None) -> list[JobRow]:
        """Jobs not final yet (optionally of one backend), whole or only `columns`."""
        sql = f"SELECT {', '.join(columns) if columns else '*'} FROM jobs WHERE status IN ('accepted', 'running')"
        args: list[Any] = []
        if backend is not None:
            sql += " AND backend = ?"
            args.append(backend)
        with self._lock:
            return [_decode(r) for r in _rows(self.db.execute(sql, args))]  # type: ignore[misc]

    def list_jobs(self, q: JobQuery, now: float | None = None) -> JobPage:
        sql, args, ascending = _page_sql(q, now or time.time())
        with self._lock:
            rows = _rows(self.db.execute(sql, args))
        return _page(q, rows, ascending)

    def read_jobs_page(self, q: JobQuery) -> JobPage | None:
        """list_jobs on the event loop's read-only connection, when SQLite answers within READ_STEPS virtual
        machine steps (an indexed page: well under a millisecond); None for a long page or one that would take
        longer (a filter that scans many rows), for the caller to run list_jobs in the worker thread instead."""
        if self._reader is None or q.limit > READ_LIMIT:
            return None
        sql, args, ascending = _page_sql(q, now=time.time())
        steps = 0

        def budget() -> int:
            nonlocal steps
            steps += 1
            return 1 if steps * PROGRESS_EVERY > READ_STEPS else 0

        self._reader.set_progress_handler(budget, PROGRESS_EVERY)
        try:
            rows = _rows(self._reader.execute(sql, args))
        except sqlite3.OperationalError as exc:
            if "interrupted" not in str(exc):
                raise
            return None
        finally:
            self._reader.set_progress_handler(None, 0)
        return _page(q, rows, ascending)

    def bulk_insert_jobs(self, rows: Iterable[JobRow]) -> None:
        """For benchmarks and imports: many rows in one transaction, without events."""
        with self.transaction() as db:
            db["jobs"].insert_all((_encode(r) for r in rows), batch_size=1000)


def _page_sql(q: JobQuery, now: float) -> tuple[str, list[Any], bool]:
    """A job list's query (keyset paging over (created, id)), its arguments, and whether it runs oldest first
    (a `prev` page)."""
    where: list[str] = []
    args: list[Any] = []
    if q.owner is not None:
        where.append("owner = ?")
        args.append(q.owner)
    for column, values in (("process_id", q.process_ids), ("status", q.statuses)):
        if values:
            where.append(f"{column} IN ({','.join('?' * len(values))})")
            args.extend(values)
    if q.created_min is not None:
        where.append("created >= ?")
        args.append(q.created_min)
    if q.created_max is not None:
        where.append("created <= ?")
        args.append(q.created_max)
    duration = "(COALESCE(finished, ?) - COALESCE(started, created))"
    for bound, op in ((q.min_duration, ">="), (q.max_duration, "<=")):
        if bound is not None:
            where.append(f"{duration} {op} ?")
            args.extend([now, bound])
    order = "DESC"
    if q.after is not None:
        where.append("(created < ? OR (created = ? AND id < ?))")
        args.extend([q.after[0], q.after[0], q.after[1]])
    elif q.before is not None:
        where.append("(created > ? OR (created = ? AND id > ?))")
        args.extend([q.before[0], q.before[0], q.before[1]])
        order = "ASC"
    sql = f"SELECT {', '.join(LIST_COLUMNS)} FROM jobs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY created {order}, id {order} LIMIT ?"
    return sql, [*args, q.limit + 1], order == "ASC"


def _page(q: JobQuery, rows: list[dict[str, Any]], ascending: bool) -> JobPage:
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    if ascending:
        rows.reverse()
        has_newer, has_older = more, True
    else:
        has_older, has_newer = more, q.after is not None
    return JobPage([_decode(r, LIST_JSON_COLUMNS) for r in rows], has_older=has_older,  # type: ignore[misc]
                   has_newer=has_newer)
