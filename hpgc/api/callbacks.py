"""GET /jobs/{jobId}/callbacks: every notification of a job, with its delivery attempts (owner only)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hpgc.api.keys import JOBS
from hpgc.api.principal import principal
from hpgc.api.render import JSON, base_url, json_response
from hpgc.jobs.documents import iso
from hpgc.models.ogc import Link

routes = web.RouteTableDef()


def _time(ts: float | None) -> str | None:
    value = iso(ts)
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def callback_document(row: dict[str, Any]) -> dict[str, Any]:
    if row.get("delivered") is not None:
        state = "delivered"
    elif row.get("given_up") is not None:
        state = "given-up"
    else:
        state = "pending"
    return {
        "event": row["event"], "url": row["url"], "deliveryId": row["delivery_id"], "state": state,
        "created": _time(row["created"]), "attempts": row["attempts"], "lastStatus": row.get("last_status"),
        "lastError": row.get("last_error"),
        "nextAttempt": _time(row.get("next_attempt")) if state == "pending" else None,
        "delivered": _time(row.get("delivered")), "givenUp": _time(row.get("given_up")),
        "history": [
            {"at": _time(a["ts"]), "status": a.get("status"), "error": a.get("error"),
             "durationMs": a.get("duration_ms")}
            for a in row.get("history", [])
        ],
    }


@routes.get("/jobs/{job_id}/callbacks")
async def job_callbacks(request: web.Request) -> web.Response:
    jobs = request.app[JOBS]
    job_id = request.match_info["job_id"]
    rows = await jobs.callbacks_of(principal(request), job_id)
    job_url = f"{base_url(request)}/jobs/{job_id}"
    links = [Link(href=f"{job_url}/callbacks", rel="self", type=JSON, title="this job's callbacks"),
             Link(href=job_url, rel="up", type=JSON, title="the job")]
    return json_response({
        "jobID": job_id, "callbacks": [callback_document(r) for r in rows],
        "links": [link.wire() for link in links],
    })
