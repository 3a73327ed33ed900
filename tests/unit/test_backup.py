"""`hpgc backup` takes a consistent copy while jobs are being written, and every earlier schema migrates to
this one with its data."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import sqlite_utils

from hpgc.cli import main
from hpgc.datadir import DB_FILE
from hpgc.store import Store
from hpgc.store.backup import BackupError, backup_database
from hpgc.store.schema import MIGRATIONS, SCHEMA_VERSION


def _job(i: int) -> dict:
    return {"id": f"job-{i:06d}", "process_id": "echo", "owner": "alice", "status": "accepted", "progress": 0,
            "backend": "local", "created": float(i), "updated": float(i), "request": {"inputs": {"n": i}}}


def test_a_backup_under_load_is_consistent_and_has_every_earlier_job(tmp_path: Path) -> None:
    store = Store(tmp_path / "live.sqlite")
    for i in range(200):
        store.insert_job(_job(i))  # type: ignore[arg-type]
    stop, going = threading.Event(), threading.Event()
    written = [200]

    def write() -> None:  # jobs keep arriving while the copy is taken
        while not stop.is_set():
            store.insert_job(_job(written[0]))  # type: ignore[arg-type]
            written[0] += 1
            if written[0] == 300:
                going.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert going.wait(60)  # the writer is under way
        jobs = backup_database(tmp_path / "live.sqlite", tmp_path / "copy.sqlite")
    finally:
        stop.set()
        writer.join()
    store.close()
    assert 300 <= jobs <= written[0]
    assert (tmp_path / "copy.sqlite").stat().st_mode & 0o777 == 0o600
    copy = Store(tmp_path / "copy.sqlite")  # a restore is opening the copy as the database
    assert copy.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = {r["id"] for r in copy.db["jobs"].rows}
    assert ids == {f"job-{i:06d}" for i in range(jobs)}  # a prefix: a snapshot of one moment
    assert copy.get_job("job-000007")["request"] == {"inputs": {"n": 7}}  # type: ignore[index]
    assert len(copy.job_events("job-000123")) == 1
    copy.close()


def test_backup_never_overwrites_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    Store(data / DB_FILE).close()
    target = tmp_path / "b.sqlite"
    assert main(["backup", str(target), "--data-dir", str(data)]) == 0
    assert "(0 jobs, integrity ok)" in capsys.readouterr().err
    before = target.read_bytes()
    assert main(["backup", str(target), "--data-dir", str(data)]) == 1
    assert f"hpgc: backup failed: {target} exists already" in capsys.readouterr().err
    assert target.read_bytes() == before
    with pytest.raises(BackupError, match="there is no database"):
        backup_database(tmp_path / "none.sqlite", tmp_path / "c.sqlite")
    assert not list(tmp_path.glob(".*.partial"))


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_every_earlier_schema_migrates_with_its_jobs(tmp_path: Path, version: int) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite_utils.Database(sqlite3.connect(str(path), isolation_level=None))
    for v in range(1, version + 1):
        MIGRATIONS[v](db)
    db.execute(f"PRAGMA user_version={version}")
    db.execute("INSERT INTO jobs (id, process_id, owner, status, created, updated, request) "
               "VALUES ('old', 'echo', 'alice', 'successful', 1, 2, '{\"inputs\": {}}')")
    db.execute("INSERT INTO processes (id, kind, owner, status, created, updated) "
               "VALUES ('tool', 'deployed', 'alice', 'ready', 1, 2)")
    db.conn.close()
    store = Store(path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.get_job("old")["status"] == "successful"  # type: ignore[index]
    assert store.get_job("old")["request"] == {"inputs": {}}  # type: ignore[index]
    assert store.count_deployed("alice") == 1
    store.close()
