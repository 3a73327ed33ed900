"""The database's tables, created and changed by numbered migrations (PRAGMA user_version says which ran)."""

from __future__ import annotations

import sqlite_utils

SCHEMA_VERSION = 9


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


def _migrate_5(db: sqlite_utils.Database) -> None:
    """run_spec was never written: jobs are rebuilt from their stored request."""
    db.execute("ALTER TABLE jobs DROP COLUMN run_spec")


def _migrate_6(db: sqlite_utils.Database) -> None:
    """What a job asked its backend for (its resources) and, once it ended, what it used (sacct's)."""
    db["jobs"].add_column("resources", str)
    db["jobs"].add_column("usage", str)


def _migrate_7(db: sqlite_utils.Database) -> None:
    """/metrics counts jobs by status, process, backend and cluster at every scrape: a covering index makes
    that GROUP BY an index-only scan (20 ms instead of 250 ms over 100,000 jobs)."""
    db.execute("CREATE INDEX jobs_counts ON jobs(status, process_id, backend, cluster)")


def _migrate_8(db: sqlite_utils.Database) -> None:
    """Sweeps (hpgc:sweep): a job of many tasks. `jobs.tasks` holds its task counts by state (None: not a
    sweep), shown in its status document; `job_tasks` one row per task."""
    db["jobs"].add_column("tasks", str)
    db["job_tasks"].create(
        {"job_id": str, "idx": int, "status": str, "message": str, "exit_code": int, "external_id": str,
         "results": str, "started": float, "finished": float, "updated": float},
        pk=("job_id", "idx"),
    )


def _migrate_9(db: sqlite_utils.Database) -> None:
    """Uploaded files (POST /files), and which jobs use them (an upload in use by an active job never expires)."""
    db["uploads"].create(
        {"id": str, "owner": str, "backend": str, "cluster": str, "unix_user": str, "name": str,
         "media_type": str, "size": int, "sha256": str, "status": str, "created": float, "expires": float},
        pk="id",
    )
    db["uploads"].create_index(["owner", "created"])
    db["uploads"].create_index(["expires"])
    db["upload_uses"].create({"upload_id": str, "job_id": str}, pk=("upload_id", "job_id"))
    db["upload_uses"].create_index(["job_id"])


MIGRATIONS = {1: _migrate_1, 2: _migrate_2, 3: _migrate_3, 4: _migrate_4, 5: _migrate_5, 6: _migrate_6,
              7: _migrate_7, 8: _migrate_8, 9: _migrate_9}
