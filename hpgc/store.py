"""All persistent state, in one SQLite file through sqlite-utils (WAL mode).

The store is synchronous and small; the job service runs its calls in one worker thread so the event
loop never waits on the disk. Every job status change and its `job_events` row are written in one
transaction, so the provenance log and the job row cannot disagree.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

SCHEMA_VERSION = 4
TERMINAL = ("successful", "failed", "dismissed")
JSON_COLUMNS = ("request", "results", "error", "subscriber", "details", "package", "description")


def _migrate_1(db: sqlite_utils.Database) -> None:
    db["processes"].create(
        {
            "id": str, "kind": str, "owner": str, "media_type": str, "package": str, "description": str,
            "backend": str, "status": str, "created": float, "updated": float,
        },
        pk="id",
    )
    db["jobs"].create(
        {
            "id": str, "process_id": str, "owner": str, "unix_user": str, "status": str, "message": str,
            "progress": int, "backend": str, "external_id": str, "created": float, "started": float,
            "finished": float, "updated": float, "request": str, "results": str, "error": str,
            "subscriber": str, "exit_code": int, "run_spec": str,
        },
        pk="id",
    )
    db["jobs"].create_index(["created", "id"])
    db["jobs"].create_index(["owner", "created", "id"])
    db["jobs"].create_index(["status", "created"])
    db["jobs"].create_index(["process_id", "created"])
    db["jobs"].create_index(["backend", "status"])
    db["job_events"].create(
        {"id": int, "job_id": str, "ts": float, "status": str, "progress": int, "message": str, "details": str},
        pk="id",
    )
    db["job_events"].create_index(["job_id", "id"])


def _migrate_2(db: sqlite_utils.Database) -> None:
    """Subscriber callbacks: the outbox (one row per notification) and its delivery attempts."""
    db["jobs"].add_column("base_url", str)  # the URL the job was submitted to: absolute links in callbacks
    db["outbox"].create(
        {
            "id": int, "job_id": str, "event": str, "url": str, "host": str, "payload": str,
            "delivery_id": str, "attempts": int, "created": float, "next_attempt": float, "last_status": int,
            "last_error": str, "delivered": float, "given_up": float,
        },
        pk="id",
    )
    # the dispatcher only ever looks for pending rows: a partial index keeps that cheap however long the
    # history of delivered ones grows
    db.execute("CREATE INDEX outbox_pending ON outbox(next_attempt) WHERE delivered IS NULL AND given_up IS NULL")
    db["outbox"].create_index(["job_id", "id"])
    db["outbox_attempts"].create(
        {"id": int, "outbox_id": int, "ts": float, "status": int, "error": str, "duration_ms": float}, pk="id"
    )
    db["outbox_attempts"].create_index(["outbox_id", "id"])


def _migrate_3(db: sqlite_utils.Database) -> None:
    """The cluster a job was sent to, chosen by its process or its request (None: the default one)."""
    db["jobs"].add_column("cluster", str)


def _migrate_4(db: sqlite_utils.Database) -> None:
    """Per-user limits count a user's active jobs and deployed processes on every execute and deploy."""
    db.execute("CREATE INDEX jobs_owner_status ON jobs(owner, status)")
    db.execute("CREATE INDEX processes_owner ON processes(owner, kind)")


MIGRATIONS = {1: _migrate_1, 2: _migrate_2, 3: _migrate_3, 4: _migrate_4}


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (json.dumps(v) if k in JSON_COLUMNS and v is not None and not isinstance(v, str) else v)
        for k, v in row.items()
    }


def _insert(db: sqlite_utils.Database, table: str, row: dict[str, Any]) -> None:
    # plain SQL on the hot paths: sqlite-utils' insert and update read the table's schema on every call,
    # which was most of the cost of a job's insert, status change or notification
    db.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def _update(db: sqlite_utils.Database, table: str, key: str | int, changes: dict[str, Any]) -> None:
    db.execute(f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in changes)} WHERE id = ?",
               [*changes.values(), key])


def _rows(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    """A query's rows as dicts (JSON columns still encoded)."""
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _select_one(conn: sqlite3.Connection | sqlite_utils.Database, table: str, key: str) -> dict[str, Any] | None:
    rows = _rows(conn.execute(f"SELECT * FROM {table} WHERE id = ?", [key]))
    return _decode(rows[0]) if rows else None


def _decode(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: (json.loads(v) if k in JSON_COLUMNS and isinstance(v, str) else v) for k, v in row.items()}


@dataclass
class JobQuery:
    owner: str | None = None
    process_ids: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    created_min: float | None = None
    created_max: float | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    limit: int = 10
    after: tuple[float, str] | None = None  # next page: older than this (created, id)
    before: tuple[float, str] | None = None  # previous page: newer than this


@dataclass
class JobPage:
    rows: list[dict[str, Any]]
    has_older: bool
    has_newer: bool


class Store:
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        if str(path) != ":memory:":
            self.db.enable_wal()
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.migrate()
        # A second, read-only connection for the event loop's point reads: in WAL mode a reader never
        # waits for the writer, so GET /jobs/{id} needs neither the lock nor a hop to the worker thread.
        self._reader: sqlite3.Connection | None = None
        if str(path) != ":memory:":
            self._reader = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True,
                                           check_same_thread=False)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self.db.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def migrate(self) -> None:
        with self.transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"database schema {version} is newer than this hpgc ({SCHEMA_VERSION})")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[v](db)
                db.execute(f"PRAGMA user_version={v}")

    # processes -------------------------------------------------------------------------------------
    def put_process(self, row: dict[str, Any]) -> None:
        now = time.time()
        row = {"created": now, "updated": now, **row}
        with self.transaction() as db:
            existing = db["processes"].count_where("id = ?", [row["id"]])
            if existing:
                row.pop("created")
                row["updated"] = now
                _update(db, "processes", row["id"], _encode(row))
            else:
                _insert(db, "processes", _encode(row))

    def get_process(self, process_id: str) -> dict[str, Any] | None:
        with self._lock:
            return _select_one(self.db, "processes", process_id)

    def process_updated(self, process_id: str) -> float | None:
        """When the process last changed (None: there is no such process)."""
        with self._lock:
            row = self.db.execute("SELECT updated FROM processes WHERE id = ?", [process_id]).fetchone()
        return None if row is None else row[0]

    def list_processes(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_decode(r) for r in self.db["processes"].rows_where(order_by="id")]  # type: ignore[misc]

    def count_deployed(self, owner: str | None) -> int:
        """How many processes `owner` deployed (the index on (owner, kind) answers it)."""
        with self._lock:
            return int(self.db.execute("SELECT COUNT(*) FROM processes WHERE owner = ? AND kind = 'deployed'",
                                       [owner]).fetchone()[0])

    def delete_process(self, process_id: str) -> bool:
        with self.transaction() as db:
            n = db["processes"].count_where("id = ?", [process_id])
            db["processes"].delete_where("id = ?", [process_id])
        return bool(n)

    # jobs ------------------------------------------------------------------------------------------
    def insert_job(self, row: dict[str, Any], message: str = "job created", max_active: int = 0) -> bool:
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

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            return _select_one(self.db, "jobs", job_id)

    def get_jobs(self, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Several jobs by id, in one query per 500."""
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for i in range(0, len(job_ids), 500):
                chunk = job_ids[i:i + 500]
                cur = self.db.execute(f"SELECT * FROM jobs WHERE id IN ({','.join('?' * len(chunk))})", chunk)
                out.update((r["id"], _decode(r)) for r in _rows(cur))  # type: ignore[misc]
        return out

    def read_job(self, job_id: str) -> dict[str, Any] | None:
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

    def job_events(self, job_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [_decode(r) for r in self.db["job_events"].rows_where(  # type: ignore[misc]
                "job_id = ?", [job_id], order_by="id")]

    def active_jobs(self, backend: str | None = None, columns: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """Jobs not final yet (optionally of one backend), whole or only `columns`."""
        sql = f"SELECT {', '.join(columns) if columns else '*'} FROM jobs WHERE status IN ('accepted', 'running')"
        args: list[Any] = []
        if backend is not None:
            sql += " AND backend = ?"
            args.append(backend)
        with self._lock:
            return [_decode(r) for r in _rows(self.db.execute(sql, args))]  # type: ignore[misc]

    def list_jobs(self, q: JobQuery, now: float | None = None) -> JobPage:
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
                args.extend([now or time.time(), bound])
        page_where = list(where)
        page_args = list(args)
        order = "DESC"
        if q.after is not None:
            page_where.append("(created < ? OR (created = ? AND id < ?))")
            page_args.extend([q.after[0], q.after[0], q.after[1]])
        elif q.before is not None:
            page_where.append("(created > ? OR (created = ? AND id > ?))")
            page_args.extend([q.before[0], q.before[0], q.before[1]])
            order = "ASC"
        sql = "SELECT * FROM jobs"
        if page_where:
            sql += " WHERE " + " AND ".join(page_where)
        sql += f" ORDER BY created {order}, id {order} LIMIT ?"
        with self._lock:
            rows = _rows(self.db.execute(sql, [*page_args, q.limit + 1]))
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        if order == "ASC":
            rows.reverse()
            has_newer, has_older = more, True
        else:
            has_older, has_newer = more, q.after is not None
        return JobPage([_decode(r) for r in rows], has_older=has_older, has_newer=has_newer)  # type: ignore[misc]

    def bulk_insert_jobs(self, rows: Iterable[dict[str, Any]]) -> None:
        """For benchmarks and imports: many rows in one transaction, without events."""
        with self.transaction() as db:
            db["jobs"].insert_all((_encode(r) for r in rows), batch_size=1000)

    # outbox ----------------------------------------------------------------------------------------
    def due_outbox(
        self, now: float, limit: int, busy_ids: Iterable[int] = (), busy_hosts: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """Pending notifications whose time has come, oldest first.

        A row waits while an older pending row for the same job and URL exists, so one receiver sees a
        job's notifications in order. Rows already being sent, or for hosts with no free slot, are skipped.
        """
        busy_ids, busy_hosts = list(busy_ids), list(busy_hosts)
        sql = (
            "SELECT * FROM outbox o WHERE delivered IS NULL AND given_up IS NULL AND next_attempt <= ?"
            " AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.job_id = o.job_id AND p.url = o.url"
            " AND p.id < o.id AND p.delivered IS NULL AND p.given_up IS NULL)"
        )
        if busy_ids:
            sql += f" AND id NOT IN ({','.join('?' * len(busy_ids))})"
        if busy_hosts:
            sql += f" AND host NOT IN ({','.join('?' * len(busy_hosts))})"
        sql += " ORDER BY next_attempt, id LIMIT ?"
        with self._lock:
            return _rows(self.db.execute(sql, [now, *busy_ids, *busy_hosts, limit]))

    def next_outbox_time(self, busy_ids: Iterable[int] = ()) -> float | None:
        """When the next pending notification (not being sent now) is due; None when there is none."""
        busy_ids = list(busy_ids)
        sql = "SELECT MIN(next_attempt) FROM outbox WHERE delivered IS NULL AND given_up IS NULL"
        if busy_ids:
            sql += f" AND id NOT IN ({','.join('?' * len(busy_ids))})"
        with self._lock:
            value = self.db.execute(sql, busy_ids).fetchone()[0]
        return None if value is None else float(value)

    def record_attempt(self, outbox_id: int, changes: dict[str, Any], attempt: dict[str, Any]) -> None:
        self.record_attempts([(outbox_id, changes, attempt)])

    def record_attempts(self, items: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> None:
        """Delivery attempts: each outbox row's new state with its attempt's log line, in one transaction
        (a thousand deliveries finishing together are a few commits, not a thousand)."""
        with self.transaction() as db:
            for outbox_id, changes, attempt in items:
                _update(db, "outbox", outbox_id, changes)
                _insert(db, "outbox_attempts", {"outbox_id": outbox_id, **attempt})

    def job_outbox(self, job_id: str) -> list[dict[str, Any]]:
        """A job's notifications, oldest first, each with its attempts under `history`."""
        with self._lock:
            rows = list(self.db["outbox"].rows_where("job_id = ?", [job_id], order_by="id"))
            ids = [r["id"] for r in rows]
            history: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
            if ids:
                for a in self.db["outbox_attempts"].rows_where(
                    f"outbox_id IN ({','.join('?' * len(ids))})", ids, order_by="id"
                ):
                    history[a["outbox_id"]].append(a)
        return [{**r, "history": history[r["id"]]} for r in rows]
