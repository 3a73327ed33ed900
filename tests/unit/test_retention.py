"""Retention (hpgc/jobs/retention.py): exactly the expired jobs lose their files and become tombstones; running
and recent jobs stay; a restart between deleting the files and marking the rows loses nothing and deletes
nothing twice; a removal that fails is tried again; `hpgc purge --dry-run` lists and deletes nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from hpgc.backends.base import BackendError
from hpgc.cli import main
from hpgc.datadir import DB_FILE
from hpgc.jobs.service import JobService
from hpgc.models.run import JobRef
from hpgc.packages.registry import ProcessRegistry
from hpgc.store import Store
from tests.api.fake_backend import FakeBackend

DAY = 86400.0
NOW = time.time()


class Cluster(FakeBackend):
    """Job directories that exist until removed; counts what each removal actually deleted."""

    def __init__(self, dirs: set[str]) -> None:
        super().__init__()
        self.dirs = dirs
        self.deleted: list[str] = []
        self.broken: set[str] = set()

    async def remove(self, job: JobRef) -> None:
        if job.job_id in self.broken:
            raise BackendError("cluster unreachable")
        if job.job_id in self.dirs:  # rm -rf of a directory already gone deletes nothing
            self.dirs.discard(job.job_id)
            self.deleted.append(job.job_id)


def job(job_id: str, status: str, ended_days_ago: float | None, created_days_ago: float = 30) -> dict[str, Any]:
    return {"id": job_id, "process_id": "echo", "owner": "alice", "status": status, "backend": "local",
            "external_id": f"ext-{job_id}", "created": NOW - created_days_ago * DAY, "updated": NOW,
            "finished": None if ended_days_ago is None else NOW - ended_days_ago * DAY}


JOBS = [job("old-ok", "successful", 10), job("old-failed", "failed", 8), job("recent", "successful", 1),
        job("running", "running", None), job("accepted", "accepted", None), job("old-dismissed", "dismissed", 20)]


def service(path: Path, backend: FakeBackend) -> JobService:
    store = Store(path)
    return JobService(store, ProcessRegistry(store), {"local": backend}, "local")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    store = Store(tmp_path / "r.db")
    for row in JOBS:
        store.insert_job(row)  # type: ignore[arg-type]
    store.close()
    return tmp_path / "r.db"


async def test_exactly_the_expired_jobs_go(db: Path) -> None:
    cluster = Cluster({r["id"] for r in JOBS})
    svc = service(db, cluster)
    assert [r["id"] for r in await svc.expired(7, 100)] == ["old-ok", "old-failed"]
    assert await svc.sweep(7, batch=1) == 2  # two batches of one
    assert sorted(cluster.deleted) == ["old-failed", "old-ok"]
    statuses = {r["id"]: r["status"] for r in svc.store.db["jobs"].rows}
    assert statuses == {"old-ok": "dismissed", "old-failed": "dismissed", "recent": "successful",
                        "running": "running", "accepted": "accepted", "old-dismissed": "dismissed"}
    events = svc.store.job_events("old-ok")
    assert events[-1]["status"] == "dismissed" and "retention.job_days" in events[-1]["message"]
    assert svc.store.job_events("old-dismissed")[-1]["status"] == "dismissed"  # its own, untouched
    assert len(svc.store.job_events("old-dismissed")) == 1
    assert await svc.sweep(7, batch=10) == 0  # nothing left to do
    svc.close()
    svc.store.close()


async def test_a_restart_between_files_and_rows_loses_nothing_and_deletes_nothing_twice(db: Path) -> None:
    dirs = {r["id"] for r in JOBS}
    cluster = Cluster(dirs)
    first = service(db, cluster)

    def crash(*_: object) -> list[str]:
        raise RuntimeError("the server died here")

    first.store.tombstone_jobs = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await first.sweep(7, batch=10)
    assert sorted(cluster.deleted) == ["old-failed", "old-ok"]  # files gone, rows not marked
    first.close()
    first.store.close()

    again = Cluster(dirs)  # the same cluster after the restart
    second = service(db, again)
    assert await second.sweep(7, batch=10) == 2
    assert again.deleted == []  # the second removal found nothing to delete
    assert sorted(cluster.deleted) == ["old-failed", "old-ok"]  # each deleted exactly once overall
    assert {r["id"] for r in second.store.db["jobs"].rows_where("status = 'dismissed'")} == {
        "old-ok", "old-failed", "old-dismissed"}
    assert dirs == {"recent", "running", "accepted", "old-dismissed"}
    second.close()
    second.store.close()


async def test_a_failed_removal_keeps_the_job_for_the_next_sweep(db: Path) -> None:
    cluster = Cluster({r["id"] for r in JOBS})
    cluster.broken = {"old-ok"}
    svc = service(db, cluster)
    assert await svc.sweep(7, batch=1) == 1  # the sweep ends, having done what it could
    assert svc.store.get_job("old-ok")["status"] == "successful"  # type: ignore[index]
    cluster.broken = set()
    assert await svc.sweep(7, batch=1) == 1
    assert svc.store.get_job("old-ok")["status"] == "dismissed"  # type: ignore[index]
    svc.close()
    svc.store.close()


def test_purge_dry_run_lists_and_deletes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert main(["purge", "--dry-run", "--days", "7", "--data-dir", str(data)]) == 0  # creates the database
    store = Store(data / DB_FILE)
    for row in JOBS:
        store.insert_job(row)  # type: ignore[arg-type]
    store.close()
    capsys.readouterr()
    assert main(["purge", "--dry-run", "--days", "7", "--data-dir", str(data)]) == 0
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()] == ["old-ok", "old-failed"]
    assert "2 jobs ended more than 7 days ago would be deleted" in err
    store = Store(data / DB_FILE)
    assert store.get_job("old-ok")["status"] == "successful"  # type: ignore[index]
    store.close()
    assert main(["purge", "--data-dir", str(data)]) == 2  # job_days = 0 and no --days: nothing expires


def test_purge_deletes_the_expired_jobs_files_on_the_local_backend(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert main(["purge", "--dry-run", "--days", "7", "--data-dir", str(data)]) == 0  # creates the database
    store = Store(data / DB_FILE)
    for row in JOBS:
        store.insert_job({**row, "backend": "local", "external_id": f"local:{row['id']}"})  # type: ignore[typeddict-item]
        (data / "jobs" / row["id"]).mkdir(parents=True)
    store.close()
    capsys.readouterr()
    assert main(["purge", "--days", "7", "--data-dir", str(data)]) == 0
    assert "deleted the files of 2 jobs; 0 could not be deleted" in capsys.readouterr().err
    assert sorted(p.name for p in (data / "jobs").iterdir()) == sorted(
        r["id"] for r in JOBS if r["id"] not in ("old-ok", "old-failed"))
    store = Store(data / DB_FILE)
    assert store.get_job("old-ok")["status"] == "dismissed"  # type: ignore[index]
    store.close()
