"""The outbox in the store, the SSRF guard, backoff, signatures and which change makes which notification."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from hpgc.jobs.dispatcher import backoff, sign
from hpgc.jobs.notifier import FAILED, IN_PROGRESS, SUCCESS, CallbackSettings, _event
from hpgc.jobs.service import RUNNING_PROGRESS, coarse_progress
from hpgc.models.ogc import StatusCode
from hpgc.net.client import GuardedClient
from hpgc.net.guard import UrlGuard, UrlRefused, check_syntax
from hpgc.net.settings import OutboundSettings
from hpgc.store import MIGRATIONS, SCHEMA_VERSION, Store


def _job(job_id: str = "j1", status: str = "running", **kw: Any) -> dict[str, Any]:
    return {"id": job_id, "process_id": "echo", "owner": "alice", "status": status, "backend": "local",
            "created": 1.0, "updated": 1.0, "progress": 0, "message": "m", **kw}


def _note(job_id: str = "j1", url: str = "http://a.test/x", created: float = 10.0, **kw: Any) -> dict[str, Any]:
    host = url.split("/")[2]
    return {"job_id": job_id, "event": "success", "url": url, "host": host, "payload": "{}",
            "delivery_id": f"d-{job_id}-{created}", "attempts": 0, "created": created, "next_attempt": created, **kw}


# store -----------------------------------------------------------------------------------------------------
def test_outbox_rows_are_written_with_the_status_change(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    store.insert_job(_job())
    assert store.update_job("j1", {"status": "successful"}, outbox=[_note()]) is not None
    assert [r["event"] for r in store.job_outbox("j1")] == ["success"]
    # a refused change (the job is final) leaves no notification behind
    assert store.update_job("j1", {"status": "failed"}, outbox=[_note(created=11.0)]) is None
    assert len(store.job_outbox("j1")) == 1


def test_a_notification_that_cannot_be_stored_rolls_the_change_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    store.insert_job(_job())
    with pytest.raises(sqlite3.Error):
        store.update_job("j1", {"status": "successful"}, outbox=[{**_note(), "no_such_column": 1}])
    assert store.get_job("j1")["status"] == "running", "the status change and its notification are one transaction"
    assert [e["status"] for e in store.job_events("j1")] == ["running"]


def test_due_rows_keep_order_per_job_and_url_and_skip_busy(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    store.db["outbox"].insert_all([
        _note("j1", created=1.0), _note("j1", created=2.0),  # same job and URL: the second waits
        _note("j2", "http://b.test/x", created=3.0), _note("j3", created=50.0),  # j3 not due yet
    ])
    due = store.due_outbox(now=10.0, limit=10)
    assert [(r["job_id"], r["created"]) for r in due] == [("j1", 1.0), ("j2", 3.0)]
    assert [r["job_id"] for r in store.due_outbox(10.0, 10, busy_hosts=["a.test"])] == ["j2"]
    assert [r["job_id"] for r in store.due_outbox(10.0, 10, busy_ids=[due[0]["id"]])] == ["j2"]
    assert len(store.due_outbox(10.0, 1)) == 1
    assert store.next_outbox_time() == 1.0
    store.record_attempt(due[0]["id"], {"attempts": 1, "last_status": 200, "delivered": 11.0},
                         {"ts": 10.0, "status": 200, "error": None, "duration_ms": 3.0})
    assert [(r["job_id"], r["created"]) for r in store.due_outbox(10.0, 10)] == [("j1", 2.0), ("j2", 3.0)]
    (first, second) = store.job_outbox("j1")
    assert first["delivered"] == 11.0 and [a["status"] for a in first["history"]] == [200]
    assert second["history"] == []


def test_schema_1_database_migrates_to_2(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    db = sqlite_utils.Database(conn)
    MIGRATIONS[1](db)
    db.execute("PRAGMA user_version=1")
    db["jobs"].insert(_job("old"))
    conn.close()
    store = Store(path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
    assert store.get_job("old")["base_url"] is None
    assert store.update_job("old", {"status": "failed"}, outbox=[_note("old")]) is not None
    assert len(store.job_outbox("old")) == 1


# SSRF guard -----------------------------------------------------------------------------------------------
REFUSED = ["http://10.0.0.1/x", "http://169.254.169.254/latest/meta-data/", "http://localhost/x",
           "http://127.0.0.1:8080/x", "http://[::1]/x", "http://[::ffff:127.0.0.1]/x", "http://0.0.0.0/",
           "http://172.16.5.4/", "http://192.168.0.10/", "http://[fe80::1]/", "http://[fd00::1]/",
           "http://100.64.0.1/", "http://224.0.0.1/", "http://2130706433/", "http://127.1/"]


@pytest.mark.parametrize("url", REFUSED)
async def test_private_loopback_and_link_local_are_refused(url: str) -> None:
    with pytest.raises(UrlRefused, match="private"):
        await UrlGuard().check(url)


async def test_public_addresses_pass_and_configuration_opens_exceptions() -> None:
    await UrlGuard().check("https://93.184.216.34/hook")  # a literal: no DNS, no connection
    await UrlGuard().check("http://[2606:4700::1111]/hook")
    await UrlGuard(allowed_networks=["127.0.0.0/8", "::1/128"]).check("http://localhost:9/x")
    await UrlGuard(allowed_networks=["10.1.0.0/16"]).check("http://10.1.2.3/x")
    with pytest.raises(UrlRefused):
        await UrlGuard(allowed_networks=["10.1.0.0/16"]).check("http://10.2.0.1/x")
    await UrlGuard(allow_private=True).check("http://169.254.169.254/")


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://example.org/", "http or https"), ("file:///etc/passwd", "http or https"), ("//example.org/", "http"),
    ("http:///path", "no host"), ("http://u:p@example.org/", "user name"), ("http://example.org:99999/", "valid"),
    ("http://example.org/" + "a" * 3000, "longer"),
])
def test_syntax(url: str, why: str) -> None:
    with pytest.raises(UrlRefused, match=why):
        check_syntax(url)


def test_literal_check_leaves_names_to_the_resolver() -> None:
    guard = UrlGuard()
    guard.check_literal("http://name.invalid/x")  # not resolved here: the resolver guard sees it
    with pytest.raises(UrlRefused):
        guard.check_literal("http://10.0.0.1/x")


def test_settings_reject_a_bad_network() -> None:
    with pytest.raises(ValueError, match="not-a-net"):
        OutboundSettings(allowed_networks=["not-a-net"])


# delivery policy ------------------------------------------------------------------------------------------
def test_backoff_doubles_is_capped_and_jittered() -> None:
    for attempts, full in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 60.0), (50, 60.0)]:
        delays = [backoff(attempts, 1.0, 60.0) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays), (attempts, min(delays), max(delays))
        assert max(delays) - min(delays) > full / 10, "jitter spreads retries"


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"jobID":"x"}'
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert sign("k", body) == f"sha256={expected}"
    assert sign("k", body + b" ") != sign("k", body)


# which change makes which notification ------------------------------------------------------------------
@pytest.mark.parametrize(("before", "after", "event"), [
    ({"status": "accepted"}, {"status": "running"}, IN_PROGRESS),
    ({"status": "running", "progress": 5}, {"status": "running", "progress": 40}, IN_PROGRESS),
    ({"status": "running", "message": "a"}, {"status": "running", "message": "b"}, IN_PROGRESS),
    ({"status": "running"}, {"status": "running"}, None),
    ({"status": "running"}, {"status": "successful"}, SUCCESS),
    ({"status": "accepted"}, {"status": "failed"}, FAILED),
    ({"status": "running"}, {"status": "dismissed"}, FAILED),
    ({"status": "successful"}, {"status": "dismissed"}, None),  # nothing new for anyone
])
def test_events(before: dict, after: dict, event: str | None) -> None:
    assert _event(before, after) == event


def test_coarse_progress() -> None:
    assert coarse_progress(StatusCode.running, 42, 0) == 42
    assert coarse_progress(StatusCode.running, 420, 0) == 100
    assert coarse_progress(StatusCode.running, None, 0) == RUNNING_PROGRESS
    assert coarse_progress(StatusCode.running, None, 30) is None, "keeps the last reported"
    assert coarse_progress(StatusCode.successful, None, 30) == 100
    assert coarse_progress(StatusCode.failed, None, 30) is None


class _Service:
    """What the dispatcher uses of the job service: the store, and a way to run store calls."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def db(self, fn: Any, *args: Any) -> Any:
        return fn(*args)


async def test_dispatcher_slots_global_and_per_host(tmp_path: Path) -> None:
    import asyncio
    import time

    from hpgc.jobs.dispatcher import Dispatcher

    store = Store(tmp_path / "db.sqlite")
    now = time.time()
    store.db["outbox"].insert_all([_note(f"a{i}", "http://a.test/x", created=now - 10 + i) for i in range(5)]
                                  + [_note(f"b{i}", "http://b.test/x", created=now - 5 + i) for i in range(5)])
    gate = asyncio.Event()
    sent: list[str] = []
    dispatcher = Dispatcher(_Service(store), CallbackSettings(concurrency=5, per_host_concurrency=2),  # type: ignore[arg-type]
                            GuardedClient())

    async def deliver(row: dict[str, Any]) -> None:
        sent.append(row["job_id"])
        await gate.wait()
        store.record_attempt(row["id"], {"attempts": 1, "delivered": time.time()}, {"ts": time.time()})

    dispatcher._deliver = deliver  # type: ignore[method-assign]
    assert await dispatcher._launch_due() is False
    await asyncio.sleep(0)
    assert sorted(sent) == ["a0", "a1", "b0", "b1"], "two per host, though five rows of each are due"
    gate.set()
    await asyncio.gather(*dispatcher._inflight.values())
    await dispatcher._launch_due()
    await asyncio.gather(*dispatcher._inflight.values())
    assert sorted(sent) == sorted([f"a{i}" for i in range(4)] + [f"b{i}" for i in range(4)])
