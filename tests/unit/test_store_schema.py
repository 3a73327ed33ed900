"""The database hpgc writes, exactly: every table's columns and types, every index (a missing one is a full scan
on a large database, a wrong column a wrong plan), whatever schema version it was opened from; and the
connection's settings (WAL, synchronous, busy timeout, autocommit, a read-only reader) read back from SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlite_utils

from hpgc.store import Store
from hpgc.store.schema import MIGRATIONS

# sqlite_master as migrations 1 to 9 leave it: (type, name, table) -> the SQL SQLite keeps
SCHEMA = {
    ("table", "processes", "processes"):
        'CREATE TABLE "processes" (\n   "id" TEXT PRIMARY KEY,\n   "kind" TEXT,\n   "owner" TEXT,\n'
        '   "media_type" TEXT,\n   "package" TEXT,\n   "description" TEXT,\n   "backend" TEXT,\n   "status" TEXT,\n'
        '   "created" REAL,\n   "updated" REAL\n)',
    ("table", "jobs", "jobs"):
        'CREATE TABLE "jobs" (\n   "id" TEXT PRIMARY KEY,\n   "process_id" TEXT,\n   "owner" TEXT,\n'
        '   "unix_user" TEXT,\n   "status" TEXT,\n   "message" TEXT,\n   "progress" INTEGER,\n   "backend" TEXT,\n'
        '   "external_id" TEXT,\n   "created" REAL,\n   "started" REAL,\n   "finished" REAL,\n   "updated" REAL,\n'
        '   "request" TEXT,\n   "results" TEXT,\n   "error" TEXT,\n   "subscriber" TEXT,\n   "exit_code" INTEGER,\n'
        '   "base_url" TEXT, "cluster" TEXT, "resources" TEXT, "usage" TEXT, "tasks" TEXT)',
    ("table", "job_events", "job_events"):
        'CREATE TABLE "job_events" (\n   "id" INTEGER PRIMARY KEY,\n   "job_id" TEXT,\n   "ts" REAL,\n'
        '   "status" TEXT,\n   "progress" INTEGER,\n   "message" TEXT,\n   "details" TEXT\n)',
    ("table", "outbox", "outbox"):
        'CREATE TABLE "outbox" (\n   "id" INTEGER PRIMARY KEY,\n   "job_id" TEXT,\n   "event" TEXT,\n'
        '   "url" TEXT,\n   "host" TEXT,\n   "payload" TEXT,\n   "delivery_id" TEXT,\n   "attempts" INTEGER,\n'
        '   "created" REAL,\n   "next_attempt" REAL,\n   "last_status" INTEGER,\n   "last_error" TEXT,\n'
        '   "delivered" REAL,\n   "given_up" REAL\n)',
    ("table", "outbox_attempts", "outbox_attempts"):
        'CREATE TABLE "outbox_attempts" (\n   "id" INTEGER PRIMARY KEY,\n   "outbox_id" INTEGER,\n   "ts" REAL,\n'
        '   "status" INTEGER,\n   "error" TEXT,\n   "duration_ms" REAL\n)',
    ("table", "job_tasks", "job_tasks"):
        'CREATE TABLE "job_tasks" (\n   "job_id" TEXT,\n   "idx" INTEGER,\n   "status" TEXT,\n   "message" TEXT,\n'
        '   "exit_code" INTEGER,\n   "external_id" TEXT,\n   "results" TEXT,\n   "started" REAL,\n   "finished" REAL,\n'
        '   "updated" REAL,\n   PRIMARY KEY ("job_id", "idx")\n)',
    ("index", "idx_jobs_created_id", "jobs"): 'CREATE INDEX "idx_jobs_created_id"\n    ON "jobs" ("created", "id")',
    ("index", "idx_jobs_owner_created_id", "jobs"):
        'CREATE INDEX "idx_jobs_owner_created_id"\n    ON "jobs" ("owner", "created", "id")',
    ("index", "idx_jobs_status_created", "jobs"):
        'CREATE INDEX "idx_jobs_status_created"\n    ON "jobs" ("status", "created")',
    ("index", "idx_jobs_process_id_created", "jobs"):
        'CREATE INDEX "idx_jobs_process_id_created"\n    ON "jobs" ("process_id", "created")',
    ("index", "idx_jobs_backend_status", "jobs"):
        'CREATE INDEX "idx_jobs_backend_status"\n    ON "jobs" ("backend", "status")',
    ("index", "idx_job_events_job_id_id", "job_events"):
        'CREATE INDEX "idx_job_events_job_id_id"\n    ON "job_events" ("job_id", "id")',
    ("index", "outbox_pending", "outbox"):
        "CREATE INDEX outbox_pending ON outbox(next_attempt) WHERE delivered IS NULL AND given_up IS NULL",
    ("index", "idx_outbox_job_id_id", "outbox"):
        'CREATE INDEX "idx_outbox_job_id_id"\n    ON "outbox" ("job_id", "id")',
    ("index", "idx_outbox_attempts_outbox_id_id", "outbox_attempts"):
        'CREATE INDEX "idx_outbox_attempts_outbox_id_id"\n    ON "outbox_attempts" ("outbox_id", "id")',
    ("index", "jobs_owner_status", "jobs"): "CREATE INDEX jobs_owner_status ON jobs(owner, status)",
    ("index", "processes_owner", "processes"): "CREATE INDEX processes_owner ON processes(owner, kind)",
    ("index", "jobs_counts", "jobs"): "CREATE INDEX jobs_counts ON jobs(status, process_id, backend, cluster)",
    ("index", "sqlite_autoindex_processes_1", "processes"): None,  # the text primary keys
    ("index", "sqlite_autoindex_jobs_1", "jobs"): None,
    ("index", "sqlite_autoindex_job_tasks_1", "job_tasks"): None,
    ("table", "uploads", "uploads"):
        'CREATE TABLE "uploads" (\n   "id" TEXT PRIMARY KEY,\n   "owner" TEXT,\n   "backend" TEXT,\n'
        '   "cluster" TEXT,\n   "unix_user" TEXT,\n   "name" TEXT,\n   "media_type" TEXT,\n   "size" INTEGER,\n'
        '   "sha256" TEXT,\n   "status" TEXT,\n   "created" REAL,\n   "expires" REAL\n)',
    ("index", "idx_uploads_owner_created", "uploads"):
        'CREATE INDEX "idx_uploads_owner_created"\n    ON "uploads" ("owner", "created")',
    ("index", "idx_uploads_expires", "uploads"): 'CREATE INDEX "idx_uploads_expires"\n    ON "uploads" ("expires")',
    ("table", "upload_uses", "upload_uses"):
        'CREATE TABLE "upload_uses" (\n   "upload_id" TEXT,\n   "job_id" TEXT,\n'
        '   PRIMARY KEY ("upload_id", "job_id")\n)',
    ("index", "idx_upload_uses_job_id", "upload_uses"):
        'CREATE INDEX "idx_upload_uses_job_id"\n    ON "upload_uses" ("job_id")',
    ("index", "sqlite_autoindex_uploads_1", "uploads"): None,
    ("index", "sqlite_autoindex_upload_uses_1", "upload_uses"): None,
}


def _schema(db: sqlite3.Connection) -> dict[tuple[str, str, str], str | None]:
    return {(t, n, tbl): sql for t, n, tbl, sql in db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")}


def test_a_new_database_has_exactly_the_schema(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    assert _schema(store.db.conn) == SCHEMA
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == 9
    store.close()


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
def test_a_database_of_any_version_ends_with_the_same_schema(tmp_path: Path, version: int) -> None:
    """What the migrations after `version` add is what a new database has: no index forgotten on the way."""
    path = tmp_path / "old.sqlite"
    db = sqlite_utils.Database(sqlite3.connect(str(path), isolation_level=None))
    for v in range(1, version + 1):
        MIGRATIONS[v](db)
    db.execute(f"PRAGMA user_version={version}")
    db.conn.close()
    store = Store(path)
    assert _schema(store.db.conn) == SCHEMA
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == 9
    store.close()


def test_the_migrations_are_numbered_one_to_nine() -> None:
    assert sorted(MIGRATIONS) == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_the_connection_settings(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: safe with WAL, no fsync per commit
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert store.db.conn.isolation_level is None  # autocommit: a write is visible without a commit() ...
    store.db.execute("INSERT INTO processes (id, kind) VALUES ('p', 'deployed')")
    other = sqlite3.connect(tmp_path / "db.sqlite")
    assert other.execute("SELECT id, kind FROM processes").fetchall() == [("p", "deployed")]  # ... to others too
    other.close()
    store.close()


def test_the_connection_is_usable_from_another_thread(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(store.db.execute("PRAGMA user_version").fetchone()[0]))
    thread.start()
    thread.join()
    assert seen == [9]
    store.close()


def test_the_reader_is_read_only_and_in_the_same_file(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    assert store._reader is not None
    store.db.execute("INSERT INTO processes (id, kind) VALUES ('p', 'deployed')")
    assert store._reader.execute("SELECT id FROM processes").fetchall() == [("p",)]
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store._reader.execute("INSERT INTO processes (id, kind) VALUES ('q', 'deployed')")
    store.close()


def test_the_data_directory_is_made(tmp_path: Path) -> None:
    store = Store(tmp_path / "a" / "b" / "db.sqlite")
    assert (tmp_path / "a" / "b" / "db.sqlite").is_file()
    store.close()


def test_an_in_memory_store_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = Store(":memory:")
    assert store._reader is None
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "memory"
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert _schema(store.db.conn) == SCHEMA
    store.close()
    assert list(tmp_path.iterdir()) == []


def test_close_closes_both_connections_and_the_worker(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    asyncio.run(store.call(store.ping))
    worker, reader = store._worker, store._reader
    assert worker is not None and reader is not None
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.db.execute("SELECT 1")
    with pytest.raises(sqlite3.ProgrammingError):
        reader.execute("SELECT 1")
    with pytest.raises(RuntimeError, match="shutdown"):
        worker.submit(int)


def test_store_calls_run_one_at_a_time_in_the_store_thread(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")

    async def names() -> list[str]:
        return list(await asyncio.gather(*(store.call(lambda: threading.current_thread().name) for _ in range(4))))

    assert store._worker is None  # made on first use
    seen = asyncio.run(names())
    assert seen == [seen[0]] * 4 and seen[0].startswith("hpgc-db")
    assert store._worker is not None and store._worker._max_workers == 1
    store.close()


def test_close_waits_for_the_store_call_under_way(tmp_path: Path) -> None:
    """A call still running when the server stops finishes before its connection closes (shutdown waits)."""
    store = Store(tmp_path / "db.sqlite")
    asyncio.run(store.call(store.ping))
    assert store._worker is not None
    asked: list[dict[str, object]] = []
    shutdown = store._worker.shutdown

    def spy(*args: object, **kwargs: object) -> None:
        asked.append({"args": args, **kwargs})
        shutdown(*args, **kwargs)  # type: ignore[arg-type]

    store._worker.shutdown = spy  # type: ignore[method-assign]
    store.close()
    assert asked == [{"args": (), "wait": True}]


def test_the_reader_may_be_used_from_another_thread(tmp_path: Path) -> None:
    """The event loop's thread need not be the one that opened the store."""
    store = Store(tmp_path / "db.sqlite")
    store.insert_job({"id": "j", "process_id": "echo", "owner": "alice", "status": "running", "backend": "local",
                      "created": 1.0, "updated": 1.0})
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append((store.read_job("j") or {}).get("status")))
    thread.start()
    thread.join()
    assert seen == ["running"]
    store.close()
