from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hpgc.models.joblist import JobQuery
from hpgc.store import Store
from hpgc.store import jobs as job_table
from hpgc.store.jobs import LIST_COLUMNS, READ_LIMIT, _page_sql
from hpgc.store.schema import SCHEMA_VERSION


def _job(i: int, **kw: object) -> dict:
    return {"id": f"job-{i:05d}", "process_id": "echo", "owner": "alice", "status": "successful",
            "backend": "local", "created": 1000.0 + i, "started": 1000.0 + i, "finished": 1010.0 + i,
            "updated": 1010.0 + i, **kw}


def _ids(page: Any) -> list[str]:
    return [r["id"] for r in page.rows]


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store(tmp_path / "db.sqlite")
    yield s
    s.close()


def test_schema_version_and_wal(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 9
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_reopening_migrates_nothing_and_keeps_data(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    store.insert_job(_job(1, status="running", request={"inputs": {"n": 1}}))
    store.put_process({"id": "tool", "kind": "deployed", "owner": "alice", "status": "ready",
                       "description": {"id": "tool"}})
    store.close()
    again = Store(tmp_path / "db.sqlite")
    assert again.db.execute("PRAGMA user_version").fetchone()[0] == 9
    job = again.get_job("job-00001")
    assert job is not None and job["status"] == "running" and job["request"] == {"inputs": {"n": 1}}
    assert [e["message"] for e in again.job_events("job-00001")] == ["job created"]
    assert again.get_process("tool")["description"] == {"id": "tool"}  # type: ignore[index]
    again.close()


def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    conn.execute("PRAGMA user_version=10")
    conn.close()
    with pytest.raises(RuntimeError, match=r"database schema 10 is newer than this hpgc \(9\)"):
        Store(tmp_path / "db.sqlite")


def test_an_in_memory_store_works_without_a_reader() -> None:
    store = Store(":memory:")
    store.insert_job(_job(1))
    assert store.read_job("job-00001")["id"] == "job-00001"  # type: ignore[index]
    assert store.read_job("nope") is None
    store.close()


def test_terminal_states_are_final(store: Store) -> None:
    store.insert_job(_job(1, status="running"))
    assert store.update_job("job-00001", {"status": "dismissed"}) is not None
    assert store.update_job("job-00001", {"status": "successful"}) is None  # a late poll loses
    assert store.get_job("job-00001")["status"] == "dismissed"  # type: ignore[index]
    assert [e["status"] for e in store.job_events("job-00001")] == ["running", "dismissed"]
    for final in ("successful", "failed"):
        store.insert_job(_job(2 if final == "successful" else 3, status=final))
    assert store.update_job("job-00002", {"status": "running"}) is None
    assert store.update_job("job-00003", {"status": "running"}) is None
    forced = store.update_job("job-00003", {"status": "dismissed"}, only_if_not_terminal=False)
    assert forced is not None and forced["status"] == "dismissed"
    assert store.update_job("nope", {"status": "running"}) is None


def test_update_job_events_details_and_outbox(store: Store) -> None:
    store.insert_job(_job(1, status="accepted", progress=0), "job accepted")
    row = store.update_job("job-00001", {"progress": 30})  # neither status nor event text: no event
    assert row is not None and row["progress"] == 30 and row["updated"] > 1011.0
    assert [e["message"] for e in store.job_events("job-00001")] == ["job accepted"]
    store.update_job("job-00001", {"external_id": "c:1"}, event="submitted as c:1", details={"node": "n1"})
    store.update_job("job-00001", {"status": "running", "progress": 50, "message": "half"},
                     outbox=[{"job_id": "job-00001", "event": "running", "url": "http://x", "host": "x",
                              "payload": "{}", "attempts": 0, "created": 1.0, "next_attempt": 1.0}])
    events = store.job_events("job-00001")
    assert [(e["status"], e["progress"], e["message"], e["details"]) for e in events] == [
        ("accepted", 0, "job accepted", None),
        ("accepted", None, "submitted as c:1", {"node": "n1"}),  # the status as it is
        ("running", 50, "half", None),
    ]
    assert [r["event"] for r in store.job_outbox("job-00001")] == ["running"]
    refused = store.update_job("nope", {"status": "running"}, outbox=[{"job_id": "nope", "event": "x"}])
    assert refused is None and store.job_outbox("nope") == []


def test_insert_job_refuses_past_the_active_limit(store: Store) -> None:
    assert store.insert_job(_job(1, status="accepted"), max_active=2)
    assert store.insert_job(_job(2, status="running"), max_active=2)
    assert store.insert_job(_job(3, status="successful", owner="bob"), max_active=2)
    assert store.count_active_jobs("alice") == 2 and store.count_active_jobs("bob") == 0
    assert not store.insert_job(_job(4, status="accepted"), max_active=2)
    assert store.get_job("job-00004") is None and store.job_events("job-00004") == []
    assert store.insert_job(_job(5, status="accepted", owner="bob"), max_active=2)  # another user
    assert store.insert_job(_job(6, status="accepted"), max_active=0)  # 0: no limit
    assert store.insert_job(_job(7, status="accepted"), max_active=3) is False  # alice has 3 active now
    store.update_job("job-00001", {"status": "failed"})
    assert store.count_active_jobs("alice") == 2
    assert store.insert_job(_job(8, status="accepted"), max_active=3)


def test_keyset_pages_are_stable_under_inserts(store: Store) -> None:
    store.bulk_insert_jobs(_job(i) for i in range(25))
    first = store.list_jobs(JobQuery(limit=10))
    assert _ids(first) == [f"job-{i:05d}" for i in range(24, 14, -1)]
    assert first.has_older and not first.has_newer
    store.bulk_insert_jobs([_job(100)])  # a new job must not shift the next page
    second = store.list_jobs(JobQuery(limit=10, after=(first.rows[-1]["created"], first.rows[-1]["id"])))
    assert _ids(second) == [f"job-{i:05d}" for i in range(14, 4, -1)]
    assert second.has_older and second.has_newer
    last = store.list_jobs(JobQuery(limit=10, after=(second.rows[-1]["created"], second.rows[-1]["id"])))
    assert _ids(last) == [f"job-{i:05d}" for i in range(4, -1, -1)]
    assert not last.has_older and last.has_newer
    back = store.list_jobs(JobQuery(limit=10, before=(second.rows[0]["created"], second.rows[0]["id"])))
    assert _ids(back) == _ids(first)
    assert back.has_older and back.has_newer  # job-00100 arrived: there is a newer page now
    top = store.list_jobs(JobQuery(limit=10, before=(back.rows[0]["created"], back.rows[0]["id"])))
    assert _ids(top) == ["job-00100"] and not top.has_newer and top.has_older


def test_keyset_paging_with_equal_timestamps(store: Store) -> None:
    """Jobs created in the same instant: the id breaks the tie, so no job is skipped or repeated."""
    store.bulk_insert_jobs(_job(i, created=5000.0) for i in range(7))
    store.bulk_insert_jobs([_job(7, created=4000.0), _job(8, created=6000.0)])
    seen: list[str] = []
    page = store.list_jobs(JobQuery(limit=3))
    pages = [_ids(page)]
    while page.has_older:
        page = store.list_jobs(JobQuery(limit=3, after=(page.rows[-1]["created"], page.rows[-1]["id"])))
        pages.append(_ids(page))
    seen = [i for p in pages for i in p]
    assert pages == [["job-00008", "job-00006", "job-00005"], ["job-00004", "job-00003", "job-00002"],
                     ["job-00001", "job-00000", "job-00007"]]
    assert len(seen) == 9
    newer = store.list_jobs(JobQuery(limit=2, before=(5000.0, "job-00003")))
    assert _ids(newer) == ["job-00005", "job-00004"] and newer.has_newer
    newest = store.list_jobs(JobQuery(limit=2, before=(5000.0, "job-00005")))
    assert _ids(newest) == ["job-00008", "job-00006"] and not newest.has_newer


def _list_sql(store: Store, q: JobQuery) -> tuple[str, list[Any]]:
    """The SQL and arguments list_jobs (and read_jobs_page) send to SQLite for `q`."""
    sql, args, _ = _page_sql(q, now=2000.0)
    return sql, args


@pytest.mark.parametrize(("query", "index"), [
    (JobQuery(), "idx_jobs_created_id"),
    (JobQuery(before=(1.0, "x")), "idx_jobs_created_id"),
    (JobQuery(owner="alice"), "idx_jobs_owner_created_id"),
    (JobQuery(owner="alice", after=(1.0, "x")), "idx_jobs_owner_created_id"),
    (JobQuery(owner="alice", statuses=["running"]), "idx_jobs_owner_created_id"),
])
def test_list_jobs_pages_in_index_order(store: Store, query: JobQuery, index: str) -> None:
    sql, args = _list_sql(store, query)
    plan = [row[3] for row in store.db.conn.execute(f"EXPLAIN QUERY PLAN {sql}", args).fetchall()]
    assert any(f"USING INDEX {index}" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan  # no sort: a page costs the same on any job


@pytest.mark.parametrize(("query", "index"), [
    (JobQuery(statuses=["running"]), "idx_jobs_status_created"),
    (JobQuery(process_ids=["echo"]), "idx_jobs_process_id_created"),
])
def test_status_and_process_filters_search_their_index(store: Store, query: JobQuery, index: str) -> None:
    sql, args = _list_sql(store, query)
    plan = [row[3] for row in store.db.conn.execute(f"EXPLAIN QUERY PLAN {sql}", args).fetchall()]
    assert any(step.startswith("SEARCH jobs USING INDEX " + index) for step in plan), plan
    assert not any(step.startswith("SCAN jobs") for step in plan), plan


def test_filters(store: Store) -> None:
    store.insert_job(_job(1))
    store.insert_job(_job(2, status="failed", process_id="sleep"))
    store.insert_job(_job(3, status="running", owner="bob"))
    store.insert_job(_job(4, status="accepted", process_id="sleep"))

    def ids(**kw: Any) -> list[str]:
        return _ids(store.list_jobs(JobQuery(**kw)))

    assert ids() == ["job-00004", "job-00003", "job-00002", "job-00001"]
    assert ids(owner="bob") == ["job-00003"]
    assert ids(owner="carol") == []
    assert ids(process_ids=["sleep"]) == ["job-00004", "job-00002"]
    assert ids(statuses=["failed", "running"]) == ["job-00003", "job-00002"]
    assert ids(process_ids=["sleep"], statuses=["failed"]) == ["job-00002"]
    assert ids(created_min=1002.0) == ["job-00004", "job-00003", "job-00002"]  # inclusive
    assert ids(created_max=1002.0) == ["job-00002", "job-00001"]  # inclusive
    assert ids(created_min=1002.0, created_max=1003.0) == ["job-00003", "job-00002"]
    assert ids(limit=1) == ["job-00004"]
    assert store.list_jobs(JobQuery(limit=4)).has_older is False
    assert store.list_jobs(JobQuery(limit=3)).has_older is True


def test_duration_filters(store: Store) -> None:
    store.insert_job(_job(1))  # 10 s
    store.insert_job(_job(2, finished=1002.0 + 100, status="failed"))  # 100 s
    store.insert_job(_job(3, status="running", started=1050.0, finished=None))  # running since 1050
    store.insert_job(_job(4, status="accepted", created=1060.0, started=None, finished=None))  # waiting since 1060
    assert _ids(store.list_jobs(JobQuery(min_duration=50), now=1080.0)) == ["job-00002"]
    assert _ids(store.list_jobs(JobQuery(max_duration=50), now=1080.0)) == ["job-00004", "job-00003", "job-00001"]
    assert _ids(store.list_jobs(JobQuery(min_duration=30), now=1080.0)) == ["job-00003", "job-00002"]  # 30 s: >=
    assert _ids(store.list_jobs(JobQuery(max_duration=20, min_duration=10), now=1080.0)) == ["job-00004",
                                                                                              "job-00001"]
    assert _ids(store.list_jobs(JobQuery(min_duration=100), now=1080.0)) == ["job-00002"]
    assert _ids(store.list_jobs(JobQuery(max_duration=9), now=1080.0)) == []


def test_reader_sees_committed_writes_at_once(store: Store) -> None:
    assert store.read_job("job-00001") is None
    store.insert_job(_job(1, status="running"))
    assert store.read_job("job-00001")["status"] == "running"  # type: ignore[index]
    store.update_job("job-00001", {"status": "successful"})
    assert store.read_job("job-00001")["status"] == "successful"  # type: ignore[index]


def test_batch_reads_and_writes(store: Store) -> None:
    for i in range(3):
        store.insert_job(_job(i, status="accepted", request={"inputs": {"n": i}}))
    store.insert_job(_job(3))  # final: not active
    store.insert_job(_job(4, status="running", backend="slurm"))
    light = store.active_jobs("local", ("id", "status"))
    assert sorted(r["id"] for r in light) == ["job-00000", "job-00001", "job-00002"]
    assert all(set(r) == {"id", "status"} for r in light)
    assert sorted(r["id"] for r in store.active_jobs()) == ["job-00000", "job-00001", "job-00002", "job-00004"]
    assert store.active_jobs("slurm")[0]["request"] is None and store.active_jobs("slurm")[0]["id"] == "job-00004"
    assert store.active_jobs("local")[0]["request"] == {"inputs": {"n": 0}}  # whole rows, decoded
    rows = store.update_jobs([("job-00000", {"external_id": "c:1"}, "submitted as c:1"),
                              ("job-00003", {"external_id": "c:2"}, "too late"),  # final: refused
                              ("nope", {"external_id": "c:3"}, None)])
    assert rows == [True, False, False] and store.get_job("job-00000")["external_id"] == "c:1"  # type: ignore[index]
    assert store.job_events("job-00000")[-1]["message"] == "submitted as c:1"
    assert [e["message"] for e in store.job_events("job-00003")] == ["job created"]
    got = store.get_jobs(["job-00001", "job-00002", "nope"])
    assert sorted(got) == ["job-00001", "job-00002"] and got["job-00001"]["request"] == {"inputs": {"n": 1}}
    assert store.get_jobs([]) == {}


def test_get_jobs_reads_more_than_one_chunk(store: Store) -> None:
    store.bulk_insert_jobs(_job(i) for i in range(1203))
    sent: list[list[Any]] = []
    execute = store.db.execute

    def record(sql: str, args: Any = None) -> Any:
        sent.append(list(args or []))
        return execute(sql, args) if args is not None else execute(sql)

    store.db.execute = record  # type: ignore[method-assign]
    try:
        got = store.get_jobs([f"job-{i:05d}" for i in range(1203)])
    finally:
        del store.db.execute
    assert len(got) == 1203 and got["job-01202"]["created"] == 2202.0 and got["job-00000"]["id"] == "job-00000"
    # one query per 500 ids, each id asked once
    assert [len(args) for args in sent] == [500, 500, 203]
    assert (sent[0][0], sent[1][0], sent[2][0], sent[2][-1]) == ("job-00000", "job-00500", "job-01000", "job-01202")


def test_processes(store: Store) -> None:
    assert store.process_updated("echo") is None and store.get_process("echo") is None
    store.put_process({"id": "echo", "kind": "cwl", "status": "ready", "owner": None})
    created = store.get_process("echo")["created"]  # type: ignore[index]
    first = store.process_updated("echo")
    store.put_process({"id": "echo", "status": "deploying"})
    again = store.get_process("echo")
    assert first is not None and again is not None and again["updated"] > first
    assert again["created"] == created and again["kind"] == "cwl" and again["status"] == "deploying"
    store.put_process({"id": "a", "kind": "deployed", "owner": "alice"})
    store.put_process({"id": "b", "kind": "deployed", "owner": "alice"})
    store.put_process({"id": "c", "kind": "deployed", "owner": "bob"})
    assert [p["id"] for p in store.list_processes()] == ["a", "b", "c", "echo"]
    assert store.count_deployed("alice") == 2 and store.count_deployed("bob") == 1
    assert store.count_deployed(None) == 0  # built-ins are not counted
    assert store.delete_process("a") is True and store.delete_process("a") is False
    assert store.count_deployed("alice") == 1


def _note(job: str, url: str, due: float, **kw: Any) -> dict[str, Any]:
    return {"job_id": job, "event": "x", "url": url, "host": url.split("/")[2], "payload": "{}", "attempts": 0,
            "created": 1.0, "next_attempt": due, **kw}


def test_outbox_order_busy_rows_and_hosts(store: Store) -> None:
    store.insert_job(_job(1, status="running"))
    store.insert_job(_job(2, status="running"))
    notes = [_note("job-00001", "http://a/1", 10.0), _note("job-00001", "http://a/1", 5.0),  # waits for id 1
             _note("job-00002", "http://b/2", 7.0), _note("job-00001", "http://c/3", 30.0),
             _note("job-00002", "http://a/9", 8.0, delivered=2.0), _note("job-00002", "http://a/8", 1.0,
                                                                         given_up=2.0)]
    store.update_job("job-00001", {"message": "m"}, outbox=notes)

    def due(now: float, limit: int = 10, **kw: Any) -> list[int]:
        return [r["id"] for r in store.due_outbox(now, limit, **kw)]

    assert due(9.0) == [3]  # id 2 is due but waits behind id 1 (same job and URL); 1 is not due yet
    assert due(10.0) == [3, 1]  # by due time, then id
    assert due(100.0) == [3, 1, 4]
    assert due(100.0, limit=2) == [3, 1]
    assert due(100.0, busy_ids=[3]) == [1, 4]
    assert due(100.0, busy_ids=[3, 1]) == [4]
    assert due(100.0, busy_hosts=["a"]) == [3, 4]
    assert due(100.0, busy_hosts=["a", "c"]) == [3]
    assert store.next_outbox_time() == 5.0
    assert store.next_outbox_time(busy_ids=[2]) == 7.0
    assert store.next_outbox_time(busy_ids=[1, 2, 3, 4]) is None
    store.record_attempt(1, {"delivered": 11.0, "attempts": 1, "last_status": 200},
                         {"ts": 11.0, "status": 200, "error": None, "duration_ms": 3.0})
    assert due(100.0) == [2, 3, 4]  # id 2's elder was delivered: its turn, by due time
    store.record_attempts([(2, {"given_up": 12.0, "attempts": 3, "last_error": "refused"},
                            {"ts": 12.0, "status": None, "error": "refused", "duration_ms": 1.0}),
                           (3, {"attempts": 1, "next_attempt": 50.0},
                            {"ts": 12.0, "status": 500, "error": None, "duration_ms": 2.0})])
    assert due(40.0) == [4] and due(60.0) == [4, 3]  # 4 is due at 30, 3 again at 50
    assert store.next_outbox_time() == 30.0
    history = store.job_outbox("job-00001")
    assert [(r["id"], r["attempts"], [a["status"] for a in r["history"]]) for r in history] == [
        (1, 1, [200]), (2, 3, [None]), (4, 0, [])]
    assert history[1]["history"][0]["error"] == "refused" and history[1]["given_up"] == 12.0
    assert store.job_outbox("nope") == []


def test_an_older_database_is_migrated_with_its_jobs(tmp_path: Path) -> None:
    """A version 4 database (jobs with the never-written run_spec column) opens as version 5, jobs kept."""
    import sqlite3

    import sqlite_utils

    from hpgc.store.schema import MIGRATIONS

    path = tmp_path / "old.sqlite"
    db = sqlite_utils.Database(sqlite3.connect(str(path), isolation_level=None))
    for version in (1, 2, 3, 4):
        MIGRATIONS[version](db)
    db.execute("PRAGMA user_version=4")
    db.execute("INSERT INTO jobs (id, owner, status, created, run_spec) VALUES ('old', 'alice', 'running', 1, NULL)")
    db.conn.close()
    store = Store(path)
    assert "run_spec" not in store.db["jobs"].columns_dict
    assert store.get_job("old")["status"] == "running"  # type: ignore[index]
    store.close()


def test_operations_counts_and_the_outbox(tmp_path: Path) -> None:
    """/metrics' job counts (one GROUP BY) and /health/ready's outbox check read the store as they should."""
    store = Store(tmp_path / "ops.db")
    rows = [("a", "successful", "echo", None), ("b", "successful", "echo", None), ("c", "running", "sleep", "x")]
    for job_id, status, process, cluster in rows:
        store.insert_job({"id": job_id, "process_id": process, "owner": "u", "status": status, "backend": "slurm",
                          "cluster": cluster, "created": 1.0, "updated": 1.0})
    assert sorted(store.job_counts()) == [("running", "sleep", "slurm", "x", 1), ("successful", "echo", "slurm", "", 2)]
    assert store.outbox_stats(1000.0) == {"pending": 0, "oldest_pending": None, "overdue": 0}
    base = {"job_id": "a", "event": "e", "url": "u", "host": "h", "payload": "{}", "delivery_id": "d", "attempts": 0}
    store.db["outbox"].insert_all([
        {**base, "created": 10.0, "next_attempt": 50.0},  # overdue before 100
        {**base, "created": 20.0, "next_attempt": 150.0},  # pending, not overdue
        {**base, "created": 5.0, "next_attempt": 6.0, "delivered": 7.0},  # delivered: not counted
        {**base, "created": 4.0, "next_attempt": 6.0, "given_up": 7.0},  # given up: not counted
    ])
    assert store.outbox_stats(100.0) == {"pending": 2, "oldest_pending": 10.0, "overdue": 1}
    assert store.ping() is True
    store.close()


def test_job_counts_read_a_covering_index(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    plan = store.db.execute("EXPLAIN QUERY PLAN SELECT status, process_id, backend, COALESCE(cluster, ''), COUNT(*)"
                            " FROM jobs GROUP BY status, process_id, backend, cluster").fetchall()
    assert "USING COVERING INDEX jobs_counts" in plan[0][3]
    store.close()


def test_a_version_7_database_gains_sweeps_with_its_jobs(tmp_path: Path) -> None:
    """Migration 8 (sweeps): jobs.tasks and the job_tasks table appear; old jobs are kept, not sweeps."""
    import sqlite3

    import sqlite_utils

    from hpgc.store.schema import MIGRATIONS

    path = tmp_path / "v7.sqlite"
    db = sqlite_utils.Database(sqlite3.connect(str(path), isolation_level=None))
    for version in range(1, 8):
        MIGRATIONS[version](db)
    db.execute("PRAGMA user_version=7")
    db.execute("INSERT INTO jobs (id, owner, status, created) VALUES ('old', 'alice', 'running', 1)")
    db.conn.close()
    store = Store(path)
    assert store.get_job("old")["tasks"] is None  # type: ignore[index]
    row = {"id": "sw", "process_id": "p", "owner": "bob", "status": "accepted", "backend": "local", "created": 2.0,
           "updated": 2.0, "tasks": {"total": 3, "accepted": 3}}
    assert store.insert_sweep(row, 3, "sweep accepted") is True
    assert [(t["idx"], t["status"]) for t in store.job_tasks("sw")] == [(0, "accepted"), (1, "accepted"),
                                                                       (2, "accepted")]
    assert store.record_sweep_submitted("sw", "local:sw", ["t0", "t1", "t2"], "submitted") is True
    assert store.active_tasks(["sw"]) == {"sw": [(0, "t0"), (1, "t1"), (2, "t2")]}
    assert store.update_tasks("sw", {1: {"status": "successful", "results": {"o": 1}}}, {"total": 3}) is True
    assert store.job_task("sw", 1)["results"] == {"o": 1}  # type: ignore[index]
    assert store.active_tasks(["sw"]) == {"sw": [(0, "t0"), (2, "t2")]}
    assert store.end_tasks("sw", "dismissed", "bye") == {"dismissed": 2, "successful": 1}
    store.update_job("sw", {"status": "dismissed"}, only_if_not_terminal=False)
    assert store.update_tasks("sw", {0: {"status": "running"}}, {"total": 3}) is False  # final: changes nothing
    assert store.job_task("sw", 0)["status"] == "dismissed"  # type: ignore[index]
    assert store.job_task("sw", 9) is None
    store.close()


@pytest.mark.parametrize("query", [
    JobQuery(), JobQuery(limit=3), JobQuery(owner="alice", statuses=["failed", "running"]),
    JobQuery(owner="bob"), JobQuery(process_ids=["cat"]), JobQuery(created_min=1010.0, created_max=1030.0),
    JobQuery(min_duration=15.0), JobQuery(max_duration=5.0), JobQuery(limit=4, after=(1030.0, "job-00030")),
    JobQuery(limit=4, before=(1030.0, "job-00030")), JobQuery(limit=READ_LIMIT),
])
def test_the_event_loops_page_is_list_jobs_page(store: Store, query: JobQuery) -> None:
    store.bulk_insert_jobs(_job(i, status=("successful", "failed", "running")[i % 3], owner=("alice", "bob")[i % 2],
                                process_id=("echo", "cat")[i % 5 == 0],
                                finished=None if i % 3 == 2 else 1000.0 + i + i % 20,  # running: lasts until now
                                request={"inputs": {"n": i}}) for i in range(60))
    page = store.read_jobs_page(query)
    assert page is not None and page == store.list_jobs(query)
    assert page.rows and all(set(r) == set(LIST_COLUMNS) for r in page.rows)  # not the request, results, error


def test_the_event_loop_reads_neither_long_pages_nor_long_scans(store: Store,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store.bulk_insert_jobs(_job(i) for i in range(3000))  # none ran that long: the filter walks all of them
    assert store.read_jobs_page(JobQuery(limit=READ_LIMIT + 1)) is None
    scan = JobQuery(owner="alice", min_duration=10**6)
    assert store.list_jobs(scan).rows == []
    assert store.read_jobs_page(scan) is None  # interrupted: more than READ_STEPS of SQLite's work
    monkeypatch.setattr(job_table, "READ_STEPS", 10**9)
    assert store.read_jobs_page(scan) == store.list_jobs(scan)  # the same query within a larger budget
    monkeypatch.undo()
    assert store.read_jobs_page(scan) is None
    sql, args = _list_sql(store, scan)
    assert store._reader is not None and store._reader.execute(sql, args).fetchall() == []  # no budget left set
    assert store.read_job("job-00001") is not None


def test_an_in_memory_store_has_no_reader_for_pages() -> None:
    store = Store(":memory:")
    store.bulk_insert_jobs([_job(1)])
    assert store.read_jobs_page(JobQuery()) is None and _ids(store.list_jobs(JobQuery())) == ["job-00001"]
    store.close()


def test_the_event_loops_budget_is_read_steps(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A query that needs S virtual-machine steps is answered with a budget of S plus one progress interval,
    and interrupted with S less two."""
    store.bulk_insert_jobs(_job(i) for i in range(400))
    scan = JobQuery(owner="alice", min_duration=10**6)
    sql, args = _list_sql(store, scan)
    assert store._reader is not None
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    store._reader.set_progress_handler(count, 1)
    store._reader.execute(sql, args).fetchall()
    store._reader.set_progress_handler(None, 0)
    assert steps > 4 * job_table.PROGRESS_EVERY
    monkeypatch.setattr(job_table, "READ_STEPS", steps + job_table.PROGRESS_EVERY)
    assert store.read_jobs_page(scan) == store.list_jobs(scan)
    monkeypatch.setattr(job_table, "READ_STEPS", steps - 2 * job_table.PROGRESS_EVERY)
    assert store.read_jobs_page(scan) is None
