"""The web interface's own pages and forms (under /ui/): run a process from its generated form, deploy, replace,
undeploy, dismiss, and the dashboard's filters. They call the job service as the JSON handlers do; every POST
here rides on a session and the auth middleware has checked its CSRF token first (sessions.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from hpgc.api.deploy import _row, fetch_cwl
from hpgc.api.keys import DEPLOY_WORKERS, JOBS, OUTBOUND, SETTINGS, TEMPLATES
from hpgc.api.principal import principal
from hpgc.api.render import base_url
from hpgc.api.ui.context import run_context
from hpgc.api.ui.forms import FormErrors, inputs_of, values_of
from hpgc.api.ui.quicklook import setup_quicklook
from hpgc.auth.principal import require_deploy
from hpgc.errors import HpgcError, InvalidRequest, validated
from hpgc.models.ogc import Execute, StatusCode
from hpgc.packages.deploy import from_request

routes = web.RouteTableDef()
STATIC = Path(__file__).resolve().parent.parent / "static"
MAX_DOCUMENT = 4 * 1024 * 1024
STATUSES = [s.value for s in StatusCode]
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    html = request.app[TEMPLATES].get_template(template).render(
        base=base_url(request), title=request.app[SETTINGS].title, request=request, **context)
    return web.Response(text=html, content_type="text/html", status=status, headers={"Cache-Control": "no-store"})


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


@routes.get("/ui/processes/{process_id}/run")
async def run_page(request: web.Request) -> web.Response:
    jobs = request.app[JOBS]
    who = principal(request)
    process = await jobs.process_for(who, request.match_info["process_id"])
    context = run_context(process)
    if "from" in request.query:  # re-run with changes: the job's inputs as submitted
        row = await jobs.get(who, request.query["from"])
        context["values"] = values_of(context["fields"], (row.get("request") or {}).get("inputs") or {})
        context["rerun_of"] = row["id"]
    return render(request, "ui_run.html", process=process.description.wire(), errors={}, **context)


@routes.post("/ui/processes/{process_id}/run")
async def run(request: web.Request) -> web.Response:
    jobs = request.app[JOBS]
    who = principal(request)
    process = await jobs.process_for(who, request.match_info["process_id"])
    form = await request.post()
    context = run_context(process, {k: str(v) for k, v in form.items() if isinstance(v, str)})
    try:
        inputs = inputs_of(context["fields"], form)
        body: dict[str, Any] = {"inputs": inputs}
        for event in ("successUri", "failedUri", "inProgressUri"):
            if str(form.get(event, "")).strip():
                body.setdefault("subscriber", {})[event] = str(form[event]).strip()
        req = validated(Execute, body, InvalidRequest, "execute request")
        row = await jobs.create(who, process, req, base_url=base_url(request))
    except FormErrors as exc:
        return render(request, "ui_run.html", 400, process=process.description.wire(), errors=exc.errors, **context)
    except HpgcError as exc:
        if exc.status >= 500:
            raise
        # the server's own validation: shown beside the input it names, or above the form
        named = next((f.id for f in context["fields"] if f"'{f.id}'" in exc.detail), "")
        return render(request, "ui_run.html", exc.status, process=process.description.wire(),
                      errors={named: exc.detail}, **context)
    if form.get("mode") == "sync":
        await jobs.wait(row["id"], request.app[SETTINGS].sync_timeout_s)
    return see_other(f"{base_url(request)}/jobs/{row['id']}?f=html")


@routes.get("/ui/deploy")
async def deploy_page(request: web.Request) -> web.Response:
    replace = request.query.get("replace", "")
    source = ""
    if replace:
        process = await request.app[JOBS].process_for(principal(request), replace)
        source = process.source
    return render(request, "ui_deploy.html", replace=replace, source=source, error=None)


def _media_type(text: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except ValueError:
            return "application/cwl+json"  # the parser's message says where the JSON breaks
        if isinstance(doc, dict) and ("executionUnit" in doc or "processDescription" in doc):
            return "application/ogcapppkg+json"
        return "application/cwl+json"
    return "application/cwl+yaml"


@routes.post("/ui/deploy")
async def deploy(request: web.Request) -> web.Response:
    who = principal(request)
    jobs = request.app[JOBS]
    form = await request.post()
    replace = str(form.get("replace", ""))
    upload = form.get("file")
    text = str(form.get("document", ""))
    if isinstance(upload, web.FileField):
        data = upload.file.read(MAX_DOCUMENT + 1)
        text = data.decode(errors="replace") if data else text
    try:
        require_deploy(who)
        if not text.strip():
            raise InvalidRequest("paste a CWL document or an application package, or choose a file")
        if len(text) > MAX_DOCUMENT:
            raise InvalidRequest(f"the document is larger than {MAX_DOCUMENT // 1024 // 1024} MiB")
        if replace:
            await jobs.check_replace(who, replace)
        else:
            jobs.check_deploy(who)

        async def fetch(url: str) -> str:
            return await fetch_cwl(request.app[OUTBOUND], url)

        deployable = await from_request(text.encode(), _media_type(text), None, fetch,
                                        request.app[DEPLOY_WORKERS].run)
        if replace:
            deployable.description = deployable.description.model_copy(update={"id": replace})
            await jobs.replace(who, replace, _row(deployable))
            process_id = replace
        else:
            process_id = (await jobs.deploy(who, _row(deployable))).id
    except HpgcError as exc:
        if exc.status >= 500:
            raise
        return render(request, "ui_deploy.html", exc.status, replace=replace, source=text,
                      error=f"{exc.title}: {exc.detail}")
    return see_other(f"{base_url(request)}/processes/{process_id}?f=html")


@routes.post("/ui/processes/{process_id}/undeploy")
async def undeploy(request: web.Request) -> web.Response:
    who = principal(request)
    require_deploy(who)
    await request.app[JOBS].undeploy(who, request.match_info["process_id"])
    return see_other(f"{base_url(request)}/processes?f=html")


@routes.post("/ui/jobs/{job_id}/dismiss")
async def dismiss(request: web.Request) -> web.Response:
    row = await request.app[JOBS].dismiss(principal(request), request.match_info["job_id"])
    return see_other(f"{base_url(request)}/jobs/{row['id']}?f=html")


@routes.get("/ui/jobs")
async def filter_jobs(request: web.Request) -> web.Response:
    """The dashboard's filter form: its fields into the job list's own query (status, processID, datetime)."""
    query: list[tuple[str, str]] = [("f", "html")]
    status = request.query.get("status", "")
    if status in STATUSES:
        query.append(("status", status))
    if process := request.query.get("processID", "").strip()[:200]:
        query.append(("processID", process))
    start, end = (d if DATE.fullmatch(d := request.query.get(k, "").strip()) else "" for k in ("from", "to"))
    if start or end:
        query.append(("datetime", f"{start + 'T00:00:00Z' if start else '..'}/{end + 'T23:59:59Z' if end else '..'}"))
    return see_other(f"{base_url(request)}/jobs?{urlencode(query)}")


def _when(ts: Any) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if isinstance(ts, int | float) else ""


def setup_pages(app: web.Application) -> None:
    app.add_routes(routes)
    setup_quicklook(app)
    app[TEMPLATES].filters["when"] = _when
    app.router.add_static("/ui/static", STATIC)
