"""The callback dispatcher against a real store, a fake receiver and a clock the test sets: which answer
leads to which outbox state, when the next attempt is, when it gives up, slots, and its idle state."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hpgc.jobs.callbacks import dispatcher as dispatcher_module
from hpgc.jobs.callbacks.dispatcher import Dispatcher, backoff
from hpgc.jobs.callbacks.settings import CallbackSettings
from hpgc.net import OutboundError
from hpgc.store import Store

NOW = 1_000_000.0


class Clock:
    """Stands for the `time` module in hpgc.jobs.callbacks.dispatcher: the test says what time it is."""

    def __init__(self) -> None:
        self.now = NOW

    def time(self) -> float:
        return self.now


class Jitter:
    """Stands for `random`: the jitter at its top (delay = the full backoff) or its bottom (half of it)."""

    def __init__(self, top: bool = True) -> None:
        self.top = top

    def uniform(self, low: float, high: float) -> float:
        return high if self.top else low


class Receiver:
    """The guarded client's `post`: answers in turn (a status, or an exception to raise), then 200."""

    def __init__(self, *answers: int | Exception, clock: Clock | None = None, takes: float = 0.0) -> None:
        self.answers = list(answers)
        self.posts: list[tuple[str, bytes, dict[str, str], float]] = []
        self.clock, self.takes = clock, takes
        self.gate: asyncio.Event | None = None
        self.arrived = asyncio.Event()

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        self.posts.append((url, body, headers, timeout))
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.clock is not None:
            self.clock.now += self.takes
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return answer


class Service:
    """What the dispatcher uses of the job service: the store, and a way to run store calls."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def db(self, fn: Any, *args: Any) -> Any:
        return fn(*args)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(dispatcher_module, "time", c)
    monkeypatch.setattr(dispatcher_module, "random", Jitter(top=True))
    return c


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite")


def _settings(**kw: Any) -> CallbackSettings:
    return CallbackSettings(**{"backoff_initial_s": 2.0, "backoff_max_s": 600.0, "max_age_s": 3600.0,
                               "attempt_timeout_s": 7.5, **kw})


def _add(store: Store, job_id: str = "j1", url: str = "http://a.test/hook", created: float = NOW,
         next_attempt: float | None = None, attempts: int = 0, payload: str = '{"jobID":"j1"}') -> dict[str, Any]:
    """An outbox row, as due_outbox returns it."""
    host = url.split("/")[2].split(":")[0]
    table = store.db["outbox"]
    table.insert({"job_id": job_id, "event": "success", "url": url, "host": host, "payload": payload,
                  "delivery_id": f"d-{job_id}", "attempts": attempts, "created": created,
                  "next_attempt": created if next_attempt is None else next_attempt})
    return dict(table.get(table.last_pk))


def _state(store: Store, job_id: str = "j1") -> dict[str, Any]:
    (row,) = store.job_outbox(job_id)
    return row


# backoff ---------------------------------------------------------------------------------------------------
def test_backoff_with_the_jitter_at_its_top_and_bottom(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatcher_module, "random", Jitter(top=True))
    assert [backoff(n, 2.0, 600.0) for n in (0, 1, 2, 3, 4)] == [2.0, 2.0, 4.0, 8.0, 16.0]
    assert backoff(9, 2.0, 600.0) == 512.0 and backoff(10, 2.0, 600.0) == 600.0, "capped at the maximum"
    monkeypatch.setattr(dispatcher_module, "random", Jitter(top=False))
    assert [backoff(n, 2.0, 600.0) for n in (1, 2, 3, 10)] == [1.0, 2.0, 4.0, 300.0], "never below half"


# one attempt: outcome → outbox state -----------------------------------------------------------------------
@pytest.mark.parametrize("status", [200, 204, 299])
async def test_a_2xx_is_delivered_and_the_attempt_recorded(store: Store, clock: Clock, status: int) -> None:
    row = _add(store, created=NOW - 30)
    receiver = Receiver(status, clock=clock, takes=0.01234)
    await Dispatcher(Service(store), _settings(), receiver)._deliver(row)  # type: ignore[arg-type]
    state = _state(store)
    assert (state["attempts"], state["last_status"], state["last_error"]) == (1, status, None)
    assert state["delivered"] == NOW + 0.01234 and state["given_up"] is None
    assert state["next_attempt"] == NOW - 30, "a delivered row is not rescheduled"
    assert [(a["ts"], a["status"], a["error"], a["duration_ms"]) for a in state["history"]] == [
        (NOW, status, None, 12.3)], "the duration in milliseconds, to a tenth"


async def test_410_gone_gives_up_at_once(store: Store, clock: Clock) -> None:
    row = _add(store)
    await Dispatcher(Service(store), _settings(), Receiver(410))._deliver(row)  # type: ignore[arg-type]
    state = _state(store)
    assert (state["attempts"], state["last_status"], state["given_up"], state["delivered"]) == (1, 410, NOW, None)
    assert state["last_error"] == "the receiver answered 410 Gone: no more attempts"
    assert state["next_attempt"] == NOW


@pytest.mark.parametrize(("status", "error"), [
    (199, "HTTP 199"), (300, "HTTP 300"), (304, "HTTP 304"), (404, "HTTP 404"), (409, "HTTP 409"),
    (500, "HTTP 500"), (503, "HTTP 503"),
    (301, "HTTP 301 (redirects are not followed)"), (302, "HTTP 302 (redirects are not followed)"),
    (303, "HTTP 303 (redirects are not followed)"), (307, "HTTP 307 (redirects are not followed)"),
    (308, "HTTP 308 (redirects are not followed)"),
])
async def test_any_other_answer_is_retried_after_the_backoff(store: Store, clock: Clock, status: int,
                                                             error: str) -> None:
    row = _add(store)
    await Dispatcher(Service(store), _settings(), Receiver(status))._deliver(row)  # type: ignore[arg-type]
    state = _state(store)
    assert (state["attempts"], state["last_status"], state["last_error"]) == (1, status, error)
    assert state["next_attempt"] == NOW + 2.0, "first retry after backoff_initial_s"
    assert state["delivered"] is None and state["given_up"] is None
    assert [(a["status"], a["error"]) for a in state["history"]] == [(status, error)]


async def test_each_retry_waits_twice_as_long(store: Store, clock: Clock) -> None:
    row = _add(store, attempts=3)  # the fourth attempt
    await Dispatcher(Service(store), _settings(), Receiver(500))._deliver(row)  # type: ignore[arg-type]
    state = _state(store)
    assert state["attempts"] == 4 and state["next_attempt"] == NOW + 16.0


async def test_an_address_refused_by_policy_gives_up_and_a_network_error_is_retried(
        store: Store, clock: Clock) -> None:
    refused = _add(store, "j1")
    failed = _add(store, "j2")
    receiver = Receiver(OutboundError("refused by policy: a.test resolves to a private address", refused=True),
                        OutboundError("could not connect to a.test"))
    dispatcher = Dispatcher(Service(store), _settings(), receiver)  # type: ignore[arg-type]
    await dispatcher._deliver(refused)
    await dispatcher._deliver(failed)
    one, two = _state(store, "j1"), _state(store, "j2")
    assert (one["given_up"], one["last_status"], one["next_attempt"]) == (NOW, None, NOW)
    assert one["last_error"] == "refused by policy: a.test resolves to a private address"
    assert (two["given_up"], two["last_status"], two["next_attempt"]) == (None, None, NOW + 2.0)
    assert two["last_error"] == "could not connect to a.test" and two["attempts"] == 1


async def test_a_notification_older_than_max_age_is_given_up_unsent(store: Store, clock: Clock) -> None:
    row = _add(store, created=NOW - 60.5)
    receiver = Receiver()
    await Dispatcher(Service(store), _settings(max_age_s=60), receiver)._deliver(row)  # type: ignore[arg-type]
    state = _state(store)
    assert receiver.posts == []
    assert (state["attempts"], state["given_up"], state["last_status"]) == (1, NOW, None)
    assert state["last_error"] == "expired: not delivered within 60 s"


async def test_a_notification_exactly_max_age_old_is_still_sent(store: Store, clock: Clock) -> None:
    row = _add(store, created=NOW - 60)
    receiver = Receiver()
    await Dispatcher(Service(store), _settings(max_age_s=60), receiver)._deliver(row)  # type: ignore[arg-type]
    assert len(receiver.posts) == 1 and _state(store)["delivered"] == NOW


async def test_a_retry_that_would_come_after_max_age_gives_up_instead(store: Store, clock: Clock) -> None:
    late = _add(store, "j1", created=NOW - 50.5)  # the retry, 10 s from now, would be 60.5 s after the change
    just = _add(store, "j2", created=NOW - 50)  # the retry would be exactly 60 s after it: still made
    dispatcher = Dispatcher(Service(store), _settings(max_age_s=60, backoff_initial_s=10),
                            Receiver(500, 500))  # type: ignore[arg-type]
    await dispatcher._deliver(late)
    await dispatcher._deliver(just)
    gave_up, retried = _state(store, "j1"), _state(store, "j2")
    assert (gave_up["given_up"], gave_up["attempts"], gave_up["last_status"]) == (NOW, 1, 500)
    assert gave_up["last_error"] == "HTTP 500; given up after 1 attempts (60 s maximum age)"
    assert gave_up["next_attempt"] == NOW - 50.5
    assert (retried["given_up"], retried["next_attempt"], retried["last_error"]) == (None, NOW + 10, "HTTP 500")


async def test_the_request_carries_the_stored_body_event_ids_and_signature(store: Store, clock: Clock) -> None:
    row = _add(store, payload='{"jobID":"j1","status":"successful"}')
    receiver = Receiver()
    await Dispatcher(Service(store), _settings(secret="k"), receiver)._deliver(row)  # type: ignore[arg-type]
    ((url, body, headers, timeout),) = receiver.posts
    assert (url, body, timeout) == ("http://a.test/hook", b'{"jobID":"j1","status":"successful"}', 7.5)
    digest = hmac.new(b"k", b'{"jobID":"j1","status":"successful"}', hashlib.sha256).hexdigest()
    assert headers == {"Content-Type": "application/json", "X-Hpgc-Event": "success", "X-Hpgc-Delivery": "d-j1",
                       "X-Hpgc-Job": "j1", "X-Hpgc-Signature": f"sha256={digest}"}


async def test_without_a_secret_nothing_is_signed(store: Store, clock: Clock) -> None:
    receiver = Receiver()
    await Dispatcher(Service(store), _settings(), receiver)._deliver(_add(store))  # type: ignore[arg-type]
    ((_, _, headers, _),) = receiver.posts
    assert "X-Hpgc-Signature" not in headers and headers["X-Hpgc-Delivery"] == "d-j1"


async def test_a_retry_is_logged_as_info_and_giving_up_as_a_warning(
        store: Store, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = Dispatcher(Service(store), _settings(), Receiver(500, 410, 200))  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="hpgc.jobs.callbacks.dispatcher")
    for job_id in ("j1", "j2", "j3"):
        await dispatcher._deliver(_add(store, job_id))
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "hpgc.jobs.callbacks.dispatcher"] == [
        (logging.INFO, "callback d-j1 (success, job j1) to http://a.test/hook: HTTP 500"),
        (logging.WARNING, "callback d-j2 (success, job j2) to http://a.test/hook: "
                          "the receiver answered 410 Gone: no more attempts; given up"),
    ], "a delivery is not logged"


# recording attempts ----------------------------------------------------------------------------------------
async def test_attempts_finished_together_are_written_in_one_transaction(store: Store, clock: Clock) -> None:
    rows = [_add(store, f"j{i}") for i in range(3)]
    writes: list[int] = []
    record = store.record_attempts

    def counted(items: list[Any]) -> None:
        writes.append(len(items))
        record(items)

    store.record_attempts = counted  # type: ignore[method-assign]
    dispatcher = Dispatcher(Service(store), _settings(), Receiver(200, 500, 410))  # type: ignore[arg-type]
    await asyncio.gather(*(dispatcher._deliver(row) for row in rows))
    assert writes == [3]
    assert [(_state(store, f"j{i}")["last_status"], _state(store, f"j{i}")["attempts"]) for i in range(3)] == [
        (200, 1), (500, 1), (410, 1)]
    assert dispatcher._records.writer is None and dispatcher._records._pending == []


async def test_an_attempt_that_cannot_be_recorded_stays_pending(
        store: Store, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    row = _add(store)
    record = store.record_attempts
    failures = [sqlite3.OperationalError("disk I/O error")]

    def flaky(items: list[Any]) -> None:
        if failures:
            raise failures.pop()
        record(items)

    store.record_attempts = flaky  # type: ignore[method-assign]
    dispatcher = Dispatcher(Service(store), _settings(), Receiver())  # type: ignore[arg-type]
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        await dispatcher._deliver(row)
    assert [r.getMessage() for r in caplog.records if r.name == "hpgc.jobs.callbacks.dispatcher"] == [
        "callback attempts could not be recorded; they will be sent again"]
    state = _state(store)
    assert (state["attempts"], state["delivered"], state["history"]) == (0, None, [])
    assert [r["id"] for r in store.due_outbox(NOW, 10)] == [row["id"]], "sent again: at least once"
    await dispatcher._deliver(row)  # the writer recovers
    assert _state(store)["delivered"] == NOW


# slots and what to look at next ----------------------------------------------------------------------------
async def test_the_global_limit_and_a_host_filling_up_within_a_batch(store: Store, clock: Clock) -> None:
    for i, host in enumerate(["a.test", "a.test", "b.test", "c.test"]):
        _add(store, f"j{i}", f"http://{host}/hook", created=NOW - 10 + i)
    receiver = Receiver()
    receiver.gate = asyncio.Event()
    dispatcher = Dispatcher(Service(store), _settings(concurrency=2, per_host_concurrency=1),
                            receiver)  # type: ignore[arg-type]
    # the first batch is j0 and j1, both for a.test: j1 must wait, and j2 (b.test) takes the free slot
    assert await dispatcher._launch_due() is False
    assert await dispatcher._launch_due() is True, "every slot is taken"
    await asyncio.sleep(0)  # the delivery tasks start
    assert sorted(url for url, *_ in receiver.posts) == ["http://a.test/hook", "http://b.test/hook"]
    assert dict(dispatcher._hosts) == {"a.test": 1, "b.test": 1}
    receiver.gate.set()
    await asyncio.gather(*dispatcher._inflight.values())
    assert dispatcher._inflight == {} and dict(dispatcher._hosts) == {}, "finished deliveries free their slots"
    assert await dispatcher._launch_due() is False
    assert set(dispatcher._hosts) == {"a.test", "c.test"}
    await asyncio.gather(*dispatcher._inflight.values())
    assert await dispatcher._launch_due() is False and dispatcher._inflight == {}, "nothing left"
    assert sorted(url for url, *_ in receiver.posts) == [
        "http://a.test/hook", "http://a.test/hook", "http://b.test/hook", "http://c.test/hook"]


async def test_a_host_keeps_its_limit_as_its_deliveries_finish_one_by_one(store: Store, clock: Clock) -> None:
    for i in range(4):
        _add(store, f"a{i}", created=NOW - 10 + i)
    gates = {f"a{i}": asyncio.Event() for i in range(4)}
    sent: list[str] = []
    dispatcher = Dispatcher(Service(store), _settings(concurrency=10, per_host_concurrency=2),
                            Receiver())  # type: ignore[arg-type]

    async def deliver(row: dict[str, Any]) -> None:
        sent.append(row["job_id"])
        await gates[row["job_id"]].wait()
        store.db["outbox"].update(row["id"], {"delivered": NOW})

    dispatcher._deliver = deliver  # type: ignore[method-assign]
    await dispatcher._launch_due()
    await asyncio.sleep(0)
    assert sent == ["a0", "a1"]
    gates["a0"].set()
    await dispatcher._inflight[1]
    assert dict(dispatcher._hosts) == {"a.test": 1}, "one of a.test's two deliveries is still in flight"
    await dispatcher._launch_due()
    await asyncio.sleep(0)
    assert sent == ["a0", "a1", "a2"], "one slot freed: one more for that host, not two"
    for gate in gates.values():
        gate.set()
    await asyncio.gather(*dispatcher._inflight.values())


async def test_tasks_are_named_for_whoever_reads_a_task_dump(store: Store, clock: Clock) -> None:
    _add(store)
    receiver = Receiver()
    receiver.gate = asyncio.Event()
    dispatcher = Dispatcher(Service(store), _settings(), receiver)  # type: ignore[arg-type]
    dispatcher.start()
    try:
        dispatcher.wake()
        await asyncio.wait_for(receiver.arrived.wait(), 10)
        assert dispatcher._task is not None and dispatcher._task.get_name() == "callback-dispatcher"
        assert [t.get_name() for t in dispatcher._inflight.values()] == ["callback-1"]
        receiver.gate.set()
        await asyncio.sleep(0)
        assert dispatcher._records.writer is not None and dispatcher._records.writer.get_name() == "callback-records"
    finally:
        await dispatcher.stop()


async def test_rows_already_in_flight_are_not_started_twice(store: Store, clock: Clock) -> None:
    _add(store, "j1")
    receiver = Receiver()
    receiver.gate = asyncio.Event()
    dispatcher = Dispatcher(Service(store), _settings(), receiver)  # type: ignore[arg-type]
    assert await dispatcher._launch_due() is False
    assert await dispatcher._launch_due() is False
    await asyncio.sleep(0)
    assert len(receiver.posts) == 1 and len(dispatcher._inflight) == 1
    receiver.gate.set()
    await asyncio.gather(*dispatcher._inflight.values())


async def test_how_long_to_wait_before_looking_again(store: Store, clock: Clock) -> None:
    dispatcher = Dispatcher(Service(store), _settings(), Receiver())  # type: ignore[arg-type]
    assert await dispatcher._next_wait(True) == 0.5, "slots full: look again soon"
    assert await dispatcher._next_wait(False) == 5.0, "nothing pending: the periodic look"
    later = _add(store, "j1", next_attempt=NOW + 2.0)
    assert await dispatcher._next_wait(False) == 2.0, "sleep until the next retry is due"
    store.db["outbox"].update(later["id"], {"next_attempt": NOW + 0.75})
    assert await dispatcher._next_wait(False) == 0.75
    store.db["outbox"].update(later["id"], {"next_attempt": NOW + 100})
    assert await dispatcher._next_wait(False) == 5.0, "but never longer than the periodic look"
    store.db["outbox"].update(later["id"], {"next_attempt": NOW})
    assert await dispatcher._next_wait(False) == 0.5, "due but not started: behind a row in flight"
    dispatcher._inflight[later["id"]] = asyncio.ensure_future(asyncio.sleep(0))
    assert await dispatcher._next_wait(False) == 5.0, "a row in flight is not waited for"
    await dispatcher._inflight.pop(later["id"])


# idle ------------------------------------------------------------------------------------------------------
async def test_idle_only_with_nothing_pending_nothing_in_flight_and_no_wake(store: Store, clock: Clock) -> None:
    dispatcher = Dispatcher(Service(store), _settings(), Receiver())  # type: ignore[arg-type]
    assert not dispatcher.idle.is_set(), "not idle before it has looked"
    await dispatcher._next_wait(False)
    assert dispatcher.idle.is_set()
    dispatcher.wake()
    assert not dispatcher.idle.is_set(), "a wake may mean new rows"
    await dispatcher._next_wait(False)
    assert not dispatcher.idle.is_set(), "woken while looking: look again first"
    dispatcher._wake.clear()
    row = _add(store, next_attempt=NOW + 60)
    await dispatcher._next_wait(False)
    assert not dispatcher.idle.is_set(), "a retry is still to come"
    store.db["outbox"].update(row["id"], {"delivered": NOW})
    dispatcher._inflight[row["id"]] = task = asyncio.ensure_future(asyncio.sleep(0))
    await dispatcher._next_wait(False)
    assert not dispatcher.idle.is_set(), "a delivery is in flight"
    await task
    dispatcher._inflight.clear()
    await dispatcher._next_wait(True)
    assert not dispatcher.idle.is_set(), "every slot taken"
    await dispatcher._next_wait(False)
    assert dispatcher.idle.is_set()


async def test_the_running_dispatcher_retries_and_becomes_idle_when_done(store: Store) -> None:
    """The real clock, a backoff of a millisecond: the retries come by themselves, idle says when all is done."""
    import time

    dispatcher = Dispatcher(Service(store), _settings(backoff_initial_s=0.001, backoff_max_s=0.002),
                            Receiver(500, 503))  # type: ignore[arg-type]
    dispatcher.start()
    try:
        _add(store, created=time.time())
        dispatcher.wake()
        await asyncio.wait_for(dispatcher.wait_idle(), 10)
        state = _state(store)
        assert state["delivered"] is not None and [a["status"] for a in state["history"]] == [500, 503, 200]
    finally:
        await dispatcher.stop()


async def test_a_freed_slot_starts_the_next_row_at_once(
        store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatcher_module, "BLOCKED_WAIT_S", 3600.0)  # only the freed slot's wake can help
    for i in range(3):
        _add(store, f"j{i}", created=NOW - 10 + i)
    receiver = Receiver()
    dispatcher = Dispatcher(Service(store), _settings(concurrency=1), receiver)  # type: ignore[arg-type]
    dispatcher.start()
    try:
        dispatcher.wake()
        await asyncio.wait_for(dispatcher.wait_idle(), 10)
        assert [_state(store, f"j{i}")["delivered"] for i in range(3)] == [NOW, NOW, NOW]
    finally:
        await dispatcher.stop()


async def test_a_failed_look_at_the_outbox_is_tried_again(
        store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(dispatcher_module, "IDLE_WAIT_S", 0.01)  # after a failure: look again by itself
    due = store.due_outbox
    failures = [sqlite3.OperationalError("database is locked")]

    def flaky(*args: Any) -> Any:
        if failures:
            raise failures.pop()
        return due(*args)

    store.due_outbox = flaky  # type: ignore[method-assign]
    _add(store)
    dispatcher = Dispatcher(Service(store), _settings(), Receiver())  # type: ignore[arg-type]
    dispatcher.start()
    try:
        dispatcher.wake()
        await asyncio.wait_for(dispatcher.wait_idle(), 10)
        assert _state(store)["delivered"] == NOW
        assert [r.getMessage() for r in caplog.records if r.name == "hpgc.jobs.callbacks.dispatcher"] == [
            "callback dispatcher: looking at the outbox failed; trying again"]
    finally:
        await dispatcher.stop()


async def test_stop_leaves_a_row_being_sent_pending(store: Store, clock: Clock) -> None:
    _add(store)
    receiver = Receiver()
    receiver.gate = asyncio.Event()  # the receiver never answers
    dispatcher = Dispatcher(Service(store), _settings(), receiver)  # type: ignore[arg-type]
    dispatcher.start()
    dispatcher.wake()
    await asyncio.wait_for(receiver.arrived.wait(), 10)
    tasks = [dispatcher._task, *dispatcher._inflight.values()]
    await dispatcher.stop()
    assert all(t is not None and t.cancelled() for t in tasks)
    state = _state(store)
    assert (state["attempts"], state["delivered"], state["given_up"]) == (0, None, None), "sent again next start"


async def test_stop_right_after_a_wake_stops(store: Store) -> None:
    """A change at shutdown wakes the dispatcher as it is stopped: the stop must still end it (on Python 3.11,
    asyncio.wait_for lost that cancel and stop() waited forever)."""
    dispatcher = Dispatcher(Service(store), _settings(), Receiver())  # type: ignore[arg-type]
    dispatcher.start()
    await asyncio.wait_for(dispatcher.wait_idle(), 10)
    dispatcher.wake()
    await asyncio.wait_for(dispatcher.stop(), 10)
    assert dispatcher._task is not None and dispatcher._task.cancelled()


async def test_stop_before_start_is_harmless(store: Store) -> None:
    """The app stops what it started; a start that failed early still stops cleanly."""
    dispatcher = Dispatcher(Service(store), _settings(), Receiver())  # type: ignore[arg-type]
    await dispatcher.stop()
    assert dispatcher._task is None
