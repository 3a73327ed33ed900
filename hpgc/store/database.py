"""All persistent state, in one SQLite file through sqlite-utils (WAL mode).

The store is synchronous and small; its calls run in one worker thread (`call`), so the event loop never
waits on the disk and no two writers contend. The one hot read, a job by its id, has its own read-only
connection used only by the event loop (`read_job`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from hpgc.store.jobs import JobTable
from hpgc.store.outbox import OutboxTable
from hpgc.store.processes import ProcessTable
from hpgc.store.retention import RetentionTable
from hpgc.store.schema import MIGRATIONS, SCHEMA_VERSION
from hpgc.store.stats import StatsTable
from hpgc.store.tasks import TaskTable
from hpgc.store.uploads import UploadTable

T = TypeVar("T")


class Store(ProcessTable, JobTable, OutboxTable, StatsTable, RetentionTable, TaskTable, UploadTable):
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self._worker: ThreadPoolExecutor | None = None
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
        if self._worker is not None:
            self._worker.shutdown(wait=True)
        if self._reader is not None:
            self._reader.close()
        self.db.conn.close()

    def migrate(self) -> None:
        with self.transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"database schema {version} is newer than this hpgc ({SCHEMA_VERSION})")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[v](db)
                db.execute(f"PRAGMA user_version={v}")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store method (or any function doing store work) in the store's one worker thread."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="hpgc-db")
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)
