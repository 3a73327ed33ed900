"""Delivers outbox rows: at least once, with backoff and jitter, never blocking on one slow receiver.

Each pending row is sent by its own task, within a global limit and a per-host limit, so a receiver that
takes the whole attempt timeout to answer holds only its host's slots, and status updates (which only
insert rows) never wait for a delivery. Every attempt is recorded before the next is scheduled; a row
that was being sent when the server died is simply sent again after the restart (receivers de-duplicate
on the delivery id, which is the same across retries).

Outcomes: 2xx → delivered; 410 Gone → given up (the receiver asked us to stop); anything else, a network
error or a timeout → retried after `backoff_initial_s · 2^(attempts-1)` (at most `backoff_max_s`), with
jitter, until `max_age_s` after the change. Redirects are never followed: a 3xx is a failed attempt (a
redirect is the classic way around an SSRF guard). Requests go through the guarded client (hpgc/net): an
address refused by policy is given up at once, and no error quotes what the receiver answered.

`idle` is set when the dispatcher has looked at the outbox since it was last woken and found nothing to
send, now or later, and nothing in flight: after it, nothing more is sent until a change makes new rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from hpgc.jobs.batching import GroupCommit
from hpgc.jobs.callbacks.settings import CallbackSettings
from hpgc.net import GuardedClient, OutboundError

if TYPE_CHECKING:
    from hpgc.jobs.service import JobService

log = logging.getLogger(__name__)
IDLE_WAIT_S = 5.0  # look at the outbox at least this often, even when nothing woke us
BLOCKED_WAIT_S = 0.5  # due rows exist but none can start (host busy, an older row first): look again soon
COALESCE_S = 0.005


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int, initial: float, maximum: float) -> float:
    """Delay before attempt `attempts + 1`: exponential, capped, with jitter in [d/2, d] so that the
    retries of many notifications that failed together (a receiver restart) do not arrive together."""
    delay = min(maximum, initial * 2 ** max(0, attempts - 1))
    return delay / 2 + random.uniform(0, delay / 2)


class Dispatcher:
    def __init__(self, service: JobService, settings: CallbackSettings, client: GuardedClient) -> None:
        self.service = service
        self.store = service.store
        self.settings = settings
        self.client = client
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._hosts: Counter[str] = Counter()
        # finished attempts waiting to be written, each with the future its delivery task waits on
        # finished attempts are written in batches: whatever finished while the previous batch was written
        self._records = GroupCommit[tuple[int, dict[str, Any], dict[str, Any]], None](self._write_records,
                                                                                      "callback-records")
        # set when the outbox has nothing pending and nothing is in flight; cleared by every wake
        self.idle = asyncio.Event()

    def wake(self) -> None:
        self.idle.clear()
        self._wake.set()

    async def wait_idle(self) -> None:
        """Until the dispatcher has found nothing more to send (tests: "nothing more arrived")."""
        await self.idle.wait()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="callback-dispatcher")

    async def stop(self) -> None:
        # rows being sent stay pending in the outbox and are sent again at the next start
        tasks = [t for t in (self._task, *self._inflight.values(), self._records.writer) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                blocked = await self._launch_due()
                wait = await self._next_wait(blocked)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("callback dispatcher: looking at the outbox failed; trying again")
                wait = IDLE_WAIT_S
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for loses a cancel (stop) that arrives as the
            # event is set, and the loop would run on with stop() waiting for it forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            # many jobs finishing together wake us once each: gather them into one look at the outbox
            await asyncio.sleep(COALESCE_S)

    async def _launch_due(self) -> bool:
        """Start tasks for due rows while there are free slots; True when every slot is taken."""
        s = self.settings
        while True:
            free = s.concurrency - len(self._inflight)
            if free <= 0:
                return True
            full = [h for h, n in self._hosts.items() if n >= s.per_host_concurrency]
            rows = await self.service.db(self.store.due_outbox, time.time(), free, list(self._inflight), full)
            skipped = False
            for row in rows:
                if self._hosts[row["host"]] >= s.per_host_concurrency:
                    skipped = True  # its host filled up within this batch: asked again below, without it
                    continue
                self._begin(row)
            if not skipped:
                return False

    def _begin(self, row: dict[str, Any]) -> None:
        self._hosts[row["host"]] += 1
        task = asyncio.create_task(self._deliver(row), name=f"callback-{row['id']}")
        self._inflight[row["id"]] = task

        def done(_: asyncio.Task[None]) -> None:
            self._inflight.pop(row["id"], None)
            self._hosts[row["host"]] -= 1
            if self._hosts[row["host"]] <= 0:
                del self._hosts[row["host"]]
            self._wake.set()  # a slot is free: the next due row can go

        task.add_done_callback(done)

    async def _next_wait(self, blocked: bool) -> float:
        if blocked:
            return BLOCKED_WAIT_S
        nxt = await self.service.db(self.store.next_outbox_time, list(self._inflight))
        if nxt is None:
            # nothing pending, and no wake since this look began (a wake means a change may have made rows)
            if not self._inflight and not self._wake.is_set():
                self.idle.set()
            return IDLE_WAIT_S
        delay = nxt - time.time()
        # due but not started: waiting behind an older row of the same job and URL, which is in flight
        return BLOCKED_WAIT_S if delay <= 0 else min(delay, IDLE_WAIT_S)

    # one attempt ---------------------------------------------------------------------------------
    async def _deliver(self, row: dict[str, Any]) -> None:
        s = self.settings
        started = time.time()
        if started - row["created"] > s.max_age_s:
            await self._record(row, started, None, f"expired: not delivered within {s.max_age_s:g} s", give_up=True)
            return
        try:
            status = await self._post(row)
        except OutboundError as exc:
            # refused by the address policy: no later attempt can do better
            await self._record(row, started, None, exc.detail, give_up=exc.refused)
            return
        if 200 <= status < 300:
            await self._record(row, started, status, None, delivered=True)
        elif status == 410:
            await self._record(row, started, status, "the receiver answered 410 Gone: no more attempts",
                               give_up=True)
        else:
            where = " (redirects are not followed)" if status in (301, 302, 303, 307, 308) else ""
            await self._record(row, started, status, f"HTTP {status}{where}")

    async def _post(self, row: dict[str, Any]) -> int:
        body = row["payload"].encode()
        headers = {
            "Content-Type": "application/json", "X-Hpgc-Event": row["event"], "X-Hpgc-Delivery": row["delivery_id"],
            "X-Hpgc-Job": row["job_id"],
        }
        if self.settings.secret is not None:
            headers["X-Hpgc-Signature"] = sign(self.settings.secret.get_secret_value(), body)
        return await self.client.post(row["url"], body, headers, self.settings.attempt_timeout_s)

    async def _record(self, row: dict[str, Any], started: float, status: int | None, error: str | None,
                      delivered: bool = False, give_up: bool = False) -> None:
        s = self.settings
        now = time.time()
        attempts = row["attempts"] + 1
        changes: dict[str, Any] = {"attempts": attempts, "last_status": status, "last_error": error}
        if delivered:
            changes["delivered"] = now
        elif give_up:
            changes["given_up"] = now
        else:
            nxt = now + backoff(attempts, s.backoff_initial_s, s.backoff_max_s)
            if nxt - row["created"] > s.max_age_s:
                changes["given_up"] = now
                changes["last_error"] = f"{error}; given up after {attempts} attempts ({s.max_age_s:g} s maximum age)"
            else:
                changes["next_attempt"] = nxt
        attempt = {"ts": started, "status": status, "error": error, "duration_ms": round((now - started) * 1000, 1)}
        if not delivered:
            # a retry is routine; giving up means a receiver will never hear of this change
            log.log(logging.WARNING if "given_up" in changes else logging.INFO,
                    "callback %s (%s, job %s) to %s: %s%s", row["delivery_id"], row["event"], row["job_id"],
                    row["url"], changes.get("last_error") or status, "; given up" if "given_up" in changes else "")
        # the attempt must be on disk before the slot is freed; if the server dies first, the row is sent
        # again: at least once, never zero times
        await self._records.add((row["id"], changes, attempt))

    async def _write_records(self, items: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> list[None]:
        try:
            await self.service.db(self.store.record_attempts, items)
        except Exception:
            log.exception("callback attempts could not be recorded; they will be sent again")
            raise
        return [None] * len(items)
