"""Subscriber callbacks that are never lost: what to send, decided in the status change's transaction.

A status change that concerns a subscriber produces outbox rows (one per notification), and the job
service stores them in the same transaction as the change (`Store.update_job(outbox=...)`): a change is
never recorded without its notification, and a notification never exists for a change that was not
recorded. The dispatcher (dispatcher.py) then delivers the rows, at least once, also after a
restart. Payloads are built once, here, and stored as the exact bytes to send, so every retry sends (and
signs) the same body.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from hpgc.backends.base import BackendError
from hpgc.errors import InvalidRequest
from hpgc.jobs.callbacks.dispatcher import Dispatcher
from hpgc.jobs.callbacks.settings import CallbackSettings
from hpgc.jobs.documents import INLINE_LIMIT, build_results_document, status_document
from hpgc.jobs.lifecycle import job_ref
from hpgc.jobs.results import OutputFile
from hpgc.jobs.service import JobService
from hpgc.models.ogc import OGC_EXC, Execute, StatusCode
from hpgc.net import GuardedClient, OutboundError

log = logging.getLogger(__name__)

SUCCESS, FAILED, IN_PROGRESS = "success", "failed", "in-progress"
URI_OF = {SUCCESS: "successUri", FAILED: "failedUri", IN_PROGRESS: "inProgressUri"}


def _event(before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """Which notification a change causes (before the throttle)."""
    old, new = StatusCode(before["status"]), StatusCode(after["status"])
    if old.terminal:
        return None  # dismissing a finished job tells no one anything new
    if new == StatusCode.successful:
        return SUCCESS
    if new in (StatusCode.failed, StatusCode.dismissed):
        # a dismissed job will never succeed: a pipeline waiting on it must hear that it ended
        return FAILED
    if new != old or after.get("progress") != before.get("progress") or after.get("message") != before.get(
        "message"
    ):
        return IN_PROGRESS
    return None


class Notifier:
    """The service's `callbacks`: checks subscriber URLs, builds outbox rows, owns the dispatcher."""

    def __init__(self, service: JobService, settings: CallbackSettings, base_url: str | None = None,
                 outbound: GuardedClient | None = None) -> None:
        self.service = service
        self.settings = settings
        self.base_url = base_url.rstrip("/") if base_url else None
        self.outbound = outbound or GuardedClient()
        self.dispatcher = Dispatcher(service, settings, self.outbound)
        self._last_progress: dict[str, float] = {}  # job id → when its last in-progress row was made

    async def start(self) -> None:
        self.service.callbacks = self
        # only a change of a job with subscribers can have written outbox rows
        self.service.listeners.append(lambda row: self.dispatcher.wake() if row.get("subscriber") else None)
        self.dispatcher.start()

    async def stop(self) -> None:
        await self.dispatcher.stop()

    # the service's Callbacks protocol ------------------------------------------------------------
    async def check(self, subscriber: dict[str, str]) -> None:
        for key, url in subscriber.items():
            try:
                await self.outbound.check(url, f"subscriber.{key}")
            except OutboundError as exc:
                raise InvalidRequest(exc.detail) from None

    async def rows(self, before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
        event = _event(before, after)
        url = (after.get("subscriber") or {}).get(URI_OF[event]) if event else None
        job_id = after["id"]
        if StatusCode(after["status"]).terminal:
            self._last_progress.pop(job_id, None)
        if event is None or not url:
            return []
        now = time.time()
        if event == IN_PROGRESS:
            tick = after["status"] == before["status"]  # progress or message only: throttled
            if tick and now - self._last_progress.get(job_id, 0.0) < self.settings.progress_interval_s:
                return []  # inside the interval: the next tick (or the end) will tell
            self._last_progress[job_id] = now
        payload = await self.payload(event, after)
        return [{
            "job_id": job_id, "event": event, "url": url, "host": (urlsplit(url).hostname or "").lower(),
            "payload": json.dumps(payload, separators=(",", ":")), "delivery_id": str(uuid.uuid4()),
            "attempts": 0, "created": now, "next_attempt": now,
        }]

    # payloads ------------------------------------------------------------------------------------
    def base_for(self, row: dict[str, Any]) -> str:
        return self.base_url or (row.get("base_url") or "").rstrip("/")

    async def payload(self, event: str, row: dict[str, Any]) -> dict[str, Any]:
        base = self.base_for(row)
        if event == SUCCESS:
            return await self._results(row, base)
        info = status_document(row, base)
        if event == FAILED:
            error = row.get("error") or {}
            if row["status"] == StatusCode.dismissed.value:
                error = {"type": f"{OGC_EXC}/job-dismissed", "title": "Job dismissed",
                         "detail": row.get("message") or "the job was dismissed"}
            info["exception"] = {
                "type": _exception_type(error.get("type")), "title": error.get("title") or "Job failed",
                "detail": error.get("detail") or row.get("message") or "the job failed",
            }
        return info

    async def _results(self, row: dict[str, Any], base: str) -> dict[str, Any]:
        if row.get("tasks") is not None:  # a sweep: each output an array in task order
            return await self.service.sweep_results_document(row, base)
        outputs = await self.service.output_items(row)
        req = Execute.model_validate(row.get("request") or {})
        backend = self.service.backends.get(row["backend"])

        async def read(oid: str) -> bytes:
            item = outputs[oid]
            if backend is None or not isinstance(item, OutputFile):
                raise BackendError(f"output {oid} cannot be read")
            return b"".join([chunk async for chunk in backend.read_file(job_ref(row), item.path, 0, INLINE_LIMIT + 1)])

        try:
            return await build_results_document(row["id"], outputs, req, base, read)
        except (BackendError, OSError) as exc:
            # a file asked for by value is unreadable now: send every output by reference rather than
            # holding up the status change (the receiver can still fetch them)
            log.warning("callback for job %s: outputs by reference (%s)", row["id"], exc)
            return await build_results_document(row["id"], outputs, Execute(), base, read)


def _exception_type(kind: str | None) -> str:
    if not kind:
        return f"{OGC_EXC}/job-failed"
    return kind if ":" in kind else f"{OGC_EXC}/{kind}"
