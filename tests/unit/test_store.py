from __future__ import annotations

from pathlib import Path

from hpgc.store import SCHEMA_VERSION, JobQuery, Store


def _job(i: int, **kw: object) -> dict:
    return {"id": f"job-{i:05d}", "process_id": "echo", "owner": "alice", "status": "successful",
            "backend": "local", "created": 1000.0 + i, "started": 1000.0 + i, "finished": 1010.0 + i,
            "updated": 1010.0 + i, **kw}


def test_schema_version_and_wal(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    Store(tmp_path / "db.sqlite").close()  # reopening migrates nothing and keeps data


def test_terminal_states_are_final(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    store.insert_job(_job(1, status="running"))
    assert store.update_job("job-00001", {"status": "dismissed"}) is not None
    assert store.update_job("job-00001", {"status": "successful"}) is None  # a late poll loses
    assert store.get_job("job-00001")["status"] == "dismissed"
    assert [e["status"] for e in store.job_events("job-00001")] == ["running", "dismissed"]


def test_keyset_pages_are_stable_under_inserts(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    store.bulk_insert_jobs(_job(i) for i in range(25))
    first = store.list_jobs(JobQuery(limit=10))
    assert first.has_older and not first.has_newer
    store.bulk_insert_jobs([_job(100)])  # a new job must not shift the next page
    second = store.list_jobs(JobQuery(limit=10, after=(first.rows[-1]["created"], first.rows[-1]["id"])))
    assert second.rows[0]["id"] == "job-00014"
    back = store.list_jobs(JobQuery(limit=10, before=(second.rows[0]["created"], second.rows[0]["id"])))
    assert [r["id"] for r in back.rows] == [r["id"] for r in first.rows]


def test_filters_use_indexes(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    plan = store.db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM jobs WHERE owner = ? ORDER BY created DESC, id DESC LIMIT 10", ["a"]
    ).fetchall()
    assert any("INDEX" in str(row) for row in plan)
    assert not any("TEMP B-TREE" in str(row) for row in plan)


def test_duration_filters(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    store.insert_job(_job(1))  # 10 s
    store.insert_job(_job(2, finished=1002.0 + 100, status="failed"))  # 100 s
    assert [r["id"] for r in store.list_jobs(JobQuery(min_duration=50)).rows] == ["job-00002"]
    assert [r["id"] for r in store.list_jobs(JobQuery(max_duration=50)).rows] == ["job-00001"]


def test_reader_sees_committed_writes_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    assert store.read_job("job-00001") is None
    store.insert_job(_job(1, status="running"))
    assert store.read_job("job-00001")["status"] == "running"
    store.update_job("job-00001", {"status": "successful"})
    assert store.read_job("job-00001")["status"] == "successful"
    store.close()


def test_batch_reads_and_writes(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    for i in range(3):
        store.insert_job(_job(i, status="accepted", request={"inputs": {"n": i}}))
    store.insert_job(_job(3))  # final: not active
    light = store.active_jobs("local", ("id", "status"))
    assert sorted(r["id"] for r in light) == ["job-00000", "job-00001", "job-00002"]
    assert all(set(r) == {"id", "status"} for r in light)
    rows = store.update_jobs([("job-00000", {"external_id": "c:1"}, "submitted as c:1"),
                              ("job-00003", {"external_id": "c:2"}, "too late"),  # final: refused
                              ("nope", {"external_id": "c:3"}, None)])
    assert rows == [True, False, False] and store.get_job("job-00000")["external_id"] == "c:1"
    assert store.job_events("job-00000")[-1]["message"] == "submitted as c:1"
    assert [e["message"] for e in store.job_events("job-00003")] == ["job created"]
    got = store.get_jobs(["job-00001", "job-00002", "nope"])
    assert sorted(got) == ["job-00001", "job-00002"] and got["job-00001"]["request"] == {"inputs": {"n": 1}}
    assert store.process_updated("echo") is None
    store.put_process({"id": "echo", "kind": "cwl", "status": "ready"})
    first = store.process_updated("echo")
    store.put_process({"id": "echo", "status": "deploying"})
    assert first is not None and store.process_updated("echo") > first
