"""Process list, description and execution (Part 1)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from hpgc.api.keys import JOBS, SETTINGS
from hpgc.api.params import int_param
from hpgc.api.principal import principal
from hpgc.api.problems import read_json
from hpgc.api.render import HTML, JSON, base_url, respond, self_links, status_info, wants_html
from hpgc.api.results import results_response
from hpgc.api.ui.context import process_page
from hpgc.errors import InvalidRequest, validated
from hpgc.jobs.submission import runs_async
from hpgc.models.ogc import REL_OGC, Execute, Link, ProcessList, StatusCode
from hpgc.packages.registry import Process

routes = web.RouteTableDef()


def process_links(request: web.Request, p: Process) -> list[Link]:
    base = base_url(request)
    url = f"{base}/processes/{p.id}"
    return [
        Link(href=url, rel="self", type=JSON, title="process description"),
        Link(href=f"{url}?f=html", rel="alternate", type=HTML, title="process description as HTML"),
        Link(href=f"{url}/execution", rel=f"{REL_OGC}/execute", type=JSON, title="execute endpoint"),
        Link(href=f"{base}/jobs?processID={p.id}", rel=f"{REL_OGC}/job-list", type=JSON, title="jobs"),
    ]


@routes.get("/processes")
async def list_processes(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 100, 1, 10000)
    offset = int_param(request, "offset", 0, 0, 10**9)
    everything = await request.app[JOBS].processes_for(principal(request))
    page = everything[offset: offset + limit]
    summaries = [p.description.summary().model_copy(update={"links": process_links(request, p)}) for p in page]
    base = base_url(request)
    links = self_links(request, "/processes", "processes")
    if offset + limit < len(everything):
        links.append(Link(href=f"{base}/processes?limit={limit}&offset={offset + limit}", rel="next", type=JSON))
    if offset > 0:
        links.append(Link(href=f"{base}/processes?limit={limit}&offset={max(0, offset - limit)}", rel="prev",
                          type=JSON))
    return respond(request, ProcessList(processes=summaries, links=links).wire(), "processes.html")


@routes.get("/processes/{process_id}")
async def describe_process(request: web.Request) -> web.Response:
    process = await request.app[JOBS].process_for(principal(request), request.match_info["process_id"])
    doc = process.description.model_copy(update={"links": process_links(request, process)}).wire()
    if process.status != "ready":
        doc["hpgc:status"] = process.status  # deploying (image pull under way) or why it failed
    page = process_page(request, process) if wants_html(request) else {}  # the run form (hpgc/api/ui)
    return respond(request, doc, "process.html", **page)


PREFER_WAIT = re.compile(r"^wait\s*=\s*(\d+)$")


def parse_prefer(headers: list[str]) -> tuple[bool, int | None]:
    """`Prefer` values → (respond-async wanted, wait seconds). Both ',' and ';' separate preferences:
    clients send 'respond-async;return=representation' meaning two of them."""
    want_async, wait = False, None
    for header in headers:
        for item in re.split(r"[;,]", header):
            token = item.strip().lower()
            if token == "respond-async":
                want_async = True
            elif m := PREFER_WAIT.match(token):
                wait = int(m.group(1))
    return want_async, wait


@routes.post("/processes/{process_id}/execution")
async def execute(request: web.Request) -> web.StreamResponse:
    jobs = request.app[JOBS]
    process = await jobs.process_for(principal(request), request.match_info["process_id"])
    req = validated(Execute, await read_json(request), InvalidRequest, "execute request")
    want_async, wait = parse_prefer(request.headers.getall("Prefer", []))
    # a sweep (hpgc:sweep) is always followed as a job: its results are many
    run_async = runs_async(process.description.jobControlOptions, want_async) or req.sweep is not None
    row = await jobs.create(principal(request), process, req, base_url=base_url(request),
                            cluster=request.query.get("cluster"))
    applied: list[str] = []
    settings = request.app[SETTINGS]
    if run_async:
        applied.append("respond-async")
        if wait:
            applied.append(f"wait={wait}")
            row = await jobs.wait(row["id"], min(wait, settings.sync_timeout_s))
        return async_answer(request, row, applied)
    timeout = settings.sync_timeout_s
    if wait is not None:
        timeout = min(wait, timeout)
        applied.append(f"wait={wait}")
    row = await jobs.wait(row["id"], timeout)
    if not StatusCode(row["status"]).terminal:
        # too long to wait for: answer as if asynchronous, so the client can follow the job
        return async_answer(request, row, applied)
    headers = {"Location": f"{base_url(request)}/jobs/{row['id']}"}
    if applied:
        headers["Preference-Applied"] = ", ".join(applied)
    return await results_response(request, row["id"], req, headers)


def async_answer(request: web.Request, row: dict[str, Any], applied: list[str]) -> web.Response:
    headers = {"Location": f"{base_url(request)}/jobs/{row['id']}"}
    if applied:
        headers["Preference-Applied"] = ", ".join(applied)
    return respond(request, status_info(request, row), "job.html", status=201, headers=headers)
