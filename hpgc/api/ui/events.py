"""Live job status for the pages: server-sent events from the job service's status changes (its listeners), not
polling. One stream per page: the job page follows its job, the dashboard every job of its user."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from hpgc.api.keys import JOBS
from hpgc.api.principal import principal
from hpgc.api.problems import problem
from hpgc.models.ogc import StatusCode

KEEPALIVE_S = 15.0
MAX_STREAMS = 500
QUEUE = 100
FIELDS = ("id", "status", "progress", "message", "updated", "process_id")


@dataclass(eq=False)
class Subscriber:
    owner: str | None  # None: an administrator, who sees every job
    job: str | None
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=lambda: asyncio.Queue(QUEUE))


class JobEvents:
    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()

    def publish(self, row: dict[str, Any]) -> None:
        """A job service listener: called on the event loop for every status, progress or message change."""
        event = {k: row.get(k) for k in FIELDS}
        for sub in list(self.subscribers):
            if (sub.owner is None or sub.owner == row.get("owner")) and sub.job in (None, row.get("id")):
                with contextlib.suppress(asyncio.QueueFull):  # a reader that stopped reading misses changes
                    sub.queue.put_nowait(event)

    def close(self) -> None:
        for sub in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)


EVENTS: web.AppKey[JobEvents] = web.AppKey("job_events", JobEvents)


def _frame(event: dict[str, Any]) -> bytes:
    return f"event: job\ndata: {json.dumps(event)}\n\n".encode()


async def job_events(request: web.Request) -> web.StreamResponse:
    """GET /ui/events[?job=ID]: `event: job` frames with id, status, progress, message; the stream of one job ends
    with its final status."""
    hub = request.app[EVENTS]
    who = principal(request)
    job_id = request.query.get("job") or None
    first = None
    if job_id is not None:
        first = await request.app[JOBS].get(who, job_id)  # 404 for another user's job
    if len(hub.subscribers) >= MAX_STREAMS:
        return problem(503, "Too many live streams", "try again later", headers={"Retry-After": "30"})
    sub = Subscriber(None if who.is_admin else who.subject, job_id)
    hub.subscribers.add(sub)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                       "X-Accel-Buffering": "no"})
    try:
        await resp.prepare(request)
        await resp.write(b"retry: 3000\n\n")
        if first is not None:
            await resp.write(_frame({k: first.get(k) for k in FIELDS}))
            if StatusCode(first["status"]).terminal:
                return resp
        while True:
            try:
                event = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            if event is None:  # the server is stopping
                break
            await resp.write(_frame(event))
            if job_id is not None and StatusCode(str(event["status"])).terminal:
                break
    except ConnectionResetError:  # the page was closed
        pass
    finally:
        hub.subscribers.discard(sub)
    return resp


def setup_events(app: web.Application) -> None:
    hub = app[EVENTS] = JobEvents()
    app.router.add_get("/ui/events", job_events)

    async def listen(app: web.Application) -> None:
        app[JOBS].listeners.insert(0, hub.publish)  # first: tests reach the notifier's as the last one

    async def stop(app: web.Application) -> None:
        hub.close()

    app.on_startup.append(listen)
    app.on_shutdown.append(stop)
