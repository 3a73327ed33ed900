"""The outbox in the store, the SSRF guard, backoff, signatures and which change makes which notification."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from hpgc.jobs.callbacks.dispatcher import backoff, sign
from hpgc.jobs.callbacks.notifier import FAILED, IN_PROGRESS, SUCCESS, _event
from hpgc.jobs.callbacks.settings import CallbackSettings
from hpgc.jobs.lifecycle import RUNNING_PROGRESS, coarse_progress
from hpgc.models.ogc import StatusCode
from hpgc.net.client import GuardedClient
from hpgc.net.guard import UrlGuard, UrlRefused, check_syntax
from hpgc.net.settings import OutboundSettings
from hpgc.store import Store
from hpgc.store.schema import MIGRATIONS, SCHEMA_VERSION


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

    from hpgc.jobs.callbacks.dispatcher import Dispatcher

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


# the notifier: rows, throttling and payloads ---------------------------------------------------------------
NOW = 2_000_000.0
EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"


class _Clock:
    """Stands for the `time` module in hpgc.jobs.callbacks.notifier."""

    def __init__(self) -> None:
        self.now = NOW

    def time(self) -> float:
        return self.now


class _Files:
    """A backend whose files are bytes in a dict; records each read (ref, path, offset, length)."""

    def __init__(self, files: dict[str, bytes] | None = None, error: Exception | None = None) -> None:
        self.files, self.error = files or {}, error
        self.reads: list[tuple[Any, str, int, int | None]] = []

    async def read_file(self, ref: Any, path: str, offset: int = 0, length: int | None = None) -> Any:
        self.reads.append((ref, path, offset, length))
        if self.error is not None:
            raise self.error
        data = self.files[path]
        for i in range(0, len(data), 2):  # in chunks: the notifier joins them
            yield data[i:i + 2]


class _NotifierService:
    """What the notifier uses of the job service."""

    def __init__(self, store: Store, outputs: dict[str, Any] | None = None, backend: Any = None) -> None:
        self.store = store
        self.listeners: list[Any] = []
        self.callbacks: Any = None
        self.backends = {"local": backend} if backend is not None else {}
        self.outputs = outputs or {}

    async def db(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    async def output_items(self, row: dict[str, Any]) -> dict[str, Any]:
        return self.outputs


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    from hpgc.jobs.callbacks import notifier as notifier_module

    c = _Clock()
    monkeypatch.setattr(notifier_module, "time", c)
    return c


def _notifier(tmp_path: Path, base_url: str | None = "http://hpgc.test/", interval: float = 10.0,
              **service: Any) -> Any:
    from hpgc.jobs.callbacks.notifier import Notifier

    svc = _NotifierService(Store(tmp_path / "db.sqlite"), **service)
    return Notifier(svc, CallbackSettings(progress_interval_s=interval), base_url)  # type: ignore[arg-type]


def _running(**kw: Any) -> dict[str, Any]:
    return {**_job(status="running", progress=20, message="working", started=NOW - 5, updated=NOW - 1,
                   created=NOW - 10), "subscriber": {"inProgressUri": "http://Hooks.Example.ORG:8443/p",
                                                     "successUri": "http://hooks.example.org/ok",
                                                     "failedUri": "http://hooks.example.org/ko"}, **kw}


async def test_a_row_carries_what_the_dispatcher_sends(tmp_path: Path, clock: _Clock) -> None:
    import json
    import uuid

    notifier = _notifier(tmp_path)
    before = _running(status="accepted", progress=0)
    (row,) = await notifier.rows(before, _running())
    payload = json.loads(row.pop("payload"))
    delivery = uuid.UUID(row.pop("delivery_id"))
    assert row == {"job_id": "j1", "event": "in-progress", "url": "http://Hooks.Example.ORG:8443/p",
                   "host": "hooks.example.org", "attempts": 0, "created": NOW, "next_attempt": NOW}
    assert delivery.version == 4
    assert (payload["jobID"], payload["status"], payload["progress"], payload["message"]) == (
        "j1", "running", 20, "working")
    assert payload["links"][0] == {"href": "http://hpgc.test/jobs/j1", "rel": "self", "type": "application/json",
                                   "title": "this job's status"}
    assert "exception" not in payload
    (again,) = await notifier.rows(before, _running())
    assert again["delivery_id"] != str(delivery), "each notification has its own delivery id"
    compact = json.dumps(json.loads(again["payload"]), separators=(",", ":"))
    assert again["payload"] == compact and '"status":"running"' in compact, "stored compact, as sent"


async def test_no_row_without_a_change_or_a_url_for_its_event(tmp_path: Path, clock: _Clock) -> None:
    notifier = _notifier(tmp_path)
    assert await notifier.rows(_running(), _running()) == [], "nothing changed"
    only_success = {"successUri": "http://hooks.example.org/ok"}
    assert await notifier.rows(_running(subscriber=only_success), _running(status="failed", subscriber=only_success)
                               ) == [], "failed, but only success is subscribed"
    assert await notifier.rows(_running(subscriber=None), _running(status="successful", subscriber=None)) == []
    assert await notifier.rows(_running(subscriber={"failedUri": ""}),
                               _running(status="failed", subscriber={"failedUri": ""})) == []


async def test_progress_ticks_are_throttled_per_job_and_status_changes_never(tmp_path: Path, clock: _Clock) -> None:
    notifier = _notifier(tmp_path, interval=10.0)

    async def tick(job_id: str, progress: int) -> list[str]:
        rows = await notifier.rows(_running(id=job_id, progress=progress - 1), _running(id=job_id, progress=progress))
        return [r["event"] for r in rows]

    assert await tick("j1", 30) == ["in-progress"], "the first tick goes"
    clock.now = NOW + 9.9
    assert await tick("j1", 40) == [], "inside the interval"
    assert await tick("j2", 40) == ["in-progress"], "another job has its own interval"
    clock.now = NOW + 10.0
    assert await tick("j1", 50) == ["in-progress"], "the interval has passed"
    clock.now = NOW + 11.0
    assert await tick("j1", 60) == []
    message = await notifier.rows(_running(message="a"), _running(message="b"))
    assert message == [], "a message change is a tick too"
    changed = await notifier.rows(_running(status="accepted"), _running())
    assert [r["event"] for r in changed] == ["in-progress"], "a status change is always sent"
    clock.now = NOW + 12.0
    assert await tick("j1", 70) == [], "and starts a new interval"


async def test_the_end_of_a_job_forgets_its_interval(tmp_path: Path, clock: _Clock) -> None:
    notifier = _notifier(tmp_path)
    await notifier.rows(_running(progress=10), _running(progress=11))
    assert set(notifier._last_progress) == {"j1"}
    ended = await notifier.rows(_running(subscriber={"inProgressUri": "http://h.test/p"}),
                                _running(status="successful", subscriber={"inProgressUri": "http://h.test/p"}))
    assert ended == [] and notifier._last_progress == {}, "forgotten even when the end is sent nowhere"


async def test_failure_payloads_name_the_error(tmp_path: Path, clock: _Clock) -> None:
    from hpgc.jobs.callbacks.notifier import FAILED

    notifier = _notifier(tmp_path)

    async def exception(**row: Any) -> dict[str, Any]:
        doc = await notifier.payload(FAILED, _running(**{"status": "failed", **row}))
        assert doc["status"] == row.get("status", "failed") and doc["jobID"] == "j1"
        return dict(doc["exception"])

    assert await exception(error={"type": "exit-code", "title": "Exit code 3", "detail": "exited with code 3"}) == {
        "type": f"{EXC}/exit-code", "title": "Exit code 3", "detail": "exited with code 3"}
    assert (await exception(error={"type": "urn:hpgc:quota"}, message="over quota"))["type"] == "urn:hpgc:quota"
    assert await exception(error=None, message="boom") == {
        "type": f"{EXC}/job-failed", "title": "Job failed", "detail": "boom"}
    assert await exception(error={}, message=None) == {
        "type": f"{EXC}/job-failed", "title": "Job failed", "detail": "the job failed"}
    assert await exception(status="dismissed", error={"type": "x"}, message="dismissed by the user") == {
        "type": f"{EXC}/job-dismissed", "title": "Job dismissed", "detail": "dismissed by the user"}
    assert await exception(status="dismissed", message=None) == {
        "type": f"{EXC}/job-dismissed", "title": "Job dismissed", "detail": "the job was dismissed"}


async def test_links_use_the_configured_base_or_the_jobs_own(tmp_path: Path, clock: _Clock) -> None:
    from hpgc.jobs.callbacks.notifier import IN_PROGRESS

    row = _running(base_url="http://seen.test/X/")
    configured = await _notifier(tmp_path, base_url="http://hpgc.test/X/").payload(IN_PROGRESS, row)
    assert configured["links"][0]["href"] == "http://hpgc.test/X/jobs/j1"
    from_request = await _notifier(tmp_path, base_url=None).payload(IN_PROGRESS, row)
    assert from_request["links"][0]["href"] == "http://seen.test/X/jobs/j1"
    neither = await _notifier(tmp_path, base_url=None).payload(IN_PROGRESS, _running())
    assert neither["links"][0]["href"] == "/jobs/j1"


async def test_success_sends_the_results_document_reading_files_asked_by_value(
        tmp_path: Path, clock: _Clock) -> None:
    from hpgc.jobs.callbacks.notifier import SUCCESS
    from hpgc.jobs.results import OutputFile, OutputValue

    files = _Files({"/jobs/j1/out.txt": b"abcde"})
    outputs = {"s": OutputValue("hi"), "f": OutputFile("/jobs/j1/out.txt", "text/plain", size=5)}
    notifier = _notifier(tmp_path, outputs=outputs, backend=files)
    row = _running(status="successful", external_id="local:j1",
                   request={"outputs": {"f": {"transmissionMode": "value"}, "s": {}}})
    assert await notifier.payload(SUCCESS, row) == {"f": {"value": "abcde", "mediaType": "text/plain"}, "s": "hi"}
    ((ref, path, offset, length),) = files.reads
    assert (ref.job_id, ref.external_id, path, offset, length) == ("j1", "local:j1", "/jobs/j1/out.txt", 0,
                                                                  8 * 1024 * 1024 + 1)
    by_reference = await notifier.payload(SUCCESS, {**row, "request": None})
    assert by_reference == {"s": "hi", "f": {"href": "http://hpgc.test/jobs/j1/results/f", "type": "text/plain",
                                             "rel": "http://www.opengis.net/def/rel/iana/1.0/enclosure"}}


@pytest.mark.parametrize("backend", [None, _Files(error=OSError("gone")), "backend-error"])
async def test_an_unreadable_file_sends_every_output_by_reference(
        tmp_path: Path, clock: _Clock, caplog: pytest.LogCaptureFixture, backend: Any) -> None:
    from hpgc.backends.base import BackendError
    from hpgc.jobs.callbacks.notifier import SUCCESS
    from hpgc.jobs.results import OutputFile, OutputValue

    kind = backend if backend in (None, "backend-error") else "oserror"
    if backend == "backend-error":
        backend = _Files(error=BackendError("no such file"))
    outputs = {"s": OutputValue("hi"), "f": OutputFile("/jobs/j1/out.txt", "text/plain", size=5)}
    notifier = _notifier(tmp_path, outputs=outputs, backend=backend)
    row = _running(status="successful", request={"outputs": {"f": {"transmissionMode": "value"}}})
    assert await notifier.payload(SUCCESS, row) == {
        "s": "hi", "f": {"href": "http://hpgc.test/jobs/j1/results/f", "type": "text/plain",
                         "rel": "http://www.opengis.net/def/rel/iana/1.0/enclosure"}}
    why = {None: "output f cannot be read", "backend-error": "no such file"}.get(kind, "gone")
    assert [r.getMessage() for r in caplog.records if r.name == "hpgc.jobs.callbacks.notifier"] == [
        f"callback for job j1: outputs by reference ({why})"]


async def test_a_value_output_is_never_read_as_a_file(tmp_path: Path, clock: _Clock) -> None:
    from hpgc.jobs.callbacks.notifier import SUCCESS
    from hpgc.jobs.results import OutputValue

    files = _Files({})
    notifier = _notifier(tmp_path, outputs={"s": OutputValue("hi")}, backend=files)
    row = _running(status="successful", request={"outputs": {"s": {"transmissionMode": "value"}}})
    assert await notifier.payload(SUCCESS, row) == {"s": "hi"} and files.reads == []


async def test_subscriber_urls_are_checked_and_named(tmp_path: Path) -> None:
    from hpgc.errors import InvalidRequest

    notifier = _notifier(tmp_path)
    await notifier.check({"successUri": "http://93.184.216.34/hook"})  # a public literal: no DNS
    with pytest.raises(InvalidRequest, match=r"subscriber\.failedUri.*private") as info:
        await notifier.check({"successUri": "http://93.184.216.34/hook", "failedUri": "http://10.0.0.1/x"})
    assert info.value.__cause__ is None and info.value.__suppress_context__


async def test_start_registers_the_notifier_and_wakes_only_for_jobs_with_subscribers(tmp_path: Path) -> None:
    notifier = _notifier(tmp_path)
    service = notifier.service
    assert notifier.base_url == "http://hpgc.test" and notifier.dispatcher.client is notifier.outbound
    await notifier.start()
    try:
        assert service.callbacks is notifier and len(service.listeners) == 1
        assert notifier.dispatcher._task is not None and not notifier.dispatcher._task.done()
        await asyncio.wait_for(notifier.dispatcher.wait_idle(), 10)
        (listener,) = service.listeners
        listener({"id": "j1"})
        assert notifier.dispatcher.idle.is_set(), "no subscriber: no reason to look at the outbox"
        listener({"id": "j1", "subscriber": {"successUri": "http://h.test/x"}})
        assert not notifier.dispatcher.idle.is_set() and notifier.dispatcher._wake.is_set()
    finally:
        await notifier.stop()
    assert notifier.dispatcher._task.done()
