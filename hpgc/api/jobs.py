"""Job list, status, results, logs and dismiss (Part 1: job-list, dismiss)."""

from __future__ import annotations

import base64
from datetime import datetime
from functools import lru_cache
from urllib.parse import urlencode

from aiohttp import web

from hpgc.api.keys import JOBS
from hpgc.api.params import int_param, number_param
from hpgc.api.principal import principal
from hpgc.api.render import JSON, base_url, json_response, respond, self_links, status_info, wants_html
from hpgc.api.results import results_document, stream_output
from hpgc.api.ui.context import job_page
from hpgc.errors import InvalidParameterValue
from hpgc.jobs.documents import link, status_document
from hpgc.models.joblist import JobQuery
from hpgc.models.ogc import Execute, StatusCode

routes = web.RouteTableDef()
FILTERS = ("type", "processID", "status", "datetime", "minDuration", "maxDuration", "limit")


def _instant(text: str, name: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidParameterValue(f"parameter '{name}': '{text}' is not an RFC 3339 date-time") from None


def _interval(text: str) -> tuple[float | None, float | None]:
    if "/" not in text:
        t = _instant(text, "datetime")
        return t, t
    start, end = text.split("/", 1)
    lo = None if start in ("", "..") else _instant(start, "datetime")
    hi = None if end in ("", "..") else _instant(end, "datetime")
    return lo, hi


def _cursor(token: str) -> tuple[float, str]:
    try:
        created, job_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        return float(created), job_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidParameterValue("parameter 'next'/'prev' is not a cursor this server gave out") from None


def _token(row: dict) -> str:
    """The page cursor, ready for a query string: URL-safe base64, whose padding '=' is the one character to
    escape."""
    return base64.urlsafe_b64encode(f"{row['created']!r}|{row['id']}".encode()).decode().replace("=", "%3D")


@lru_cache(maxsize=256)  # a client pages through one list: the same filters for every page
def _filters_query(kept: tuple[tuple[str, str], ...]) -> str:
    """The list's filters as the start of a next/prev link's query string (ending in '&' when not empty)."""
    return urlencode(kept) + "&" if kept else ""


def _split(values: list[str]) -> list[str]:
    return [v for raw in values for v in raw.split(",") if v]


@routes.get("/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    q = JobQuery(limit=int_param(request, "limit", 10, 1, 10000))
    types = _split(request.query.getall("type", []))
    q.process_ids = _split(request.query.getall("processID", []))
    q.statuses = _split(request.query.getall("status", []))
    bad = [s for s in q.statuses if s not in StatusCode.__members__]
    if bad:
        raise InvalidParameterValue(f"parameter 'status': unknown status '{bad[0]}'")
    if "datetime" in request.query:
        q.created_min, q.created_max = _interval(request.query["datetime"])
    q.min_duration = number_param(request, "minDuration", float, None, 0.0, unit=" of seconds")
    q.max_duration = number_param(request, "maxDuration", float, None, 0.0, unit=" of seconds")
    if "next" in request.query:
        q.after = _cursor(request.query["next"])
    elif "prev" in request.query:
        q.before = _cursor(request.query["prev"])
    if types and "process" not in types:
        rows, older, newer = [], False, False
    else:
        page = await request.app[JOBS].list(principal(request), q)
        rows, older, newer = page.rows, page.has_older, page.has_newer
    kept = _filters_query(tuple((k, v) for k, v in request.query.items() if k in FILTERS))
    base = base_url(request)
    links = self_links(request, "/jobs", "jobs")
    if older and rows:
        links.append(link(f"{base}/jobs?{kept}next={_token(rows[-1])}", "next", JSON, "older jobs"))
    if newer and rows:
        links.append(link(f"{base}/jobs?{kept}prev={_token(rows[0])}", "prev", JSON, "newer jobs"))
    # status_document is StatusInfo's wire form already (tests/unit/test_results_document.py): no model round trip
    doc = {"jobs": [status_document(r, base) for r in rows], "links": links}
    return respond(request, doc, "jobs.html")


@routes.get("/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    row = await request.app[JOBS].get(principal(request), request.match_info["job_id"])
    page = await job_page(request, row) if wants_html(request) else {}  # inputs, logs, previews (hpgc/api/ui)
    return respond(request, status_info(request, row), "job.html", **page)


@routes.delete("/jobs/{job_id}")
async def dismiss_job(request: web.Request) -> web.Response:
    row = await request.app[JOBS].dismiss(principal(request), request.match_info["job_id"])
    return json_response(status_info(request, row))


@routes.get("/jobs/{job_id}/results")
async def job_results(request: web.Request) -> web.Response:
    jobs = request.app[JOBS]
    job_id = request.match_info["job_id"]
    row = await jobs.get(principal(request), job_id)
    if row.get("tasks") is not None:  # a sweep: each output an array in task order
        await jobs.results(principal(request), job_id)  # a failed or unfinished sweep answers as a job does
        return json_response(await jobs.sweep_results_document(row, base_url(request)))
    req = Execute.model_validate(row["request"] or {})
    return json_response(await results_document(request, job_id, req))


routes.get("/jobs/{job_id}/results/{output_id}")(stream_output)


@routes.get("/jobs/{job_id}/logs")
async def job_logs(request: web.Request) -> web.Response:
    full = request.query.get("full", "false").lower() in ("1", "true", "yes")
    tail = None if full else int_param(request, "tail", 65536, 1, 10**9)
    logs = await request.app[JOBS].logs(principal(request), request.match_info["job_id"], tail)
    return json_response(logs)


@routes.get("/jobs/{job_id}/script")
async def job_script(request: web.Request) -> web.Response:
    text = await request.app[JOBS].script(principal(request), request.match_info["job_id"])
    if text is None:
        raise web.HTTPNotFound(text="this job has no script (yet)")
    return web.Response(text=text, content_type="text/plain")
