"""A sweep's tasks (hpgc:sweep): GET /jobs/{id}/tasks, and each task's results, result files and logs."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hpgc.api.keys import JOBS
from hpgc.api.params import int_param
from hpgc.api.principal import principal
from hpgc.api.render import JSON, base_url, json_response
from hpgc.api.results import send_output
from hpgc.api.steps import steps_response
from hpgc.errors import NoSuchJob
from hpgc.jobs.documents import iso
from hpgc.models.ogc import Execute, Link

routes = web.RouteTableDef()
INDEX = "{index:[0-9]{1,9}}"  # digits only, and few: a task index is below any sweep's size
PAGE = 1000


def task_document(base: str, job_id: str, task: dict[str, Any]) -> dict[str, Any]:
    url = f"{base}/jobs/{job_id}/tasks/{task['idx']}"
    doc: dict[str, Any] = {
        "index": task["idx"], "status": task["status"], "message": task.get("message"),
        "exitCode": task.get("exit_code"), "backendId": task.get("external_id"),
        "started": iso(task.get("started")), "finished": iso(task.get("finished")),
        "links": [Link(href=f"{url}/results", rel="http://www.opengis.net/def/rel/ogc/1.0/results", type=JSON,
                       title="this task's results").model_dump(exclude_none=True),
                  Link(href=f"{url}/logs", rel="logs", type=JSON, title="this task's stdout and stderr"
                       ).model_dump(exclude_none=True)],
    }
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in doc.items() if v is not None}


@routes.get("/jobs/{job_id}/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    offset = int_param(request, "offset", 0, 0, 10**9)
    limit = int_param(request, "limit", PAGE, 1, PAGE)
    try:
        row, tasks = await request.app[JOBS].tasks(principal(request), job_id, offset, limit)
    except NoSuchJob:  # not a sweep: a CWL workflow's step jobs (Toil), if it has any
        if (steps := await steps_response(request, job_id)) is not None:
            return steps
        raise
    base = base_url(request)
    links = [{"href": f"{base}/jobs/{job_id}", "rel": "up", "type": JSON, "title": "the sweep's status"}]
    if offset + len(tasks) < row["tasks"]["total"]:
        links.append({"href": f"{base}/jobs/{job_id}/tasks?offset={offset + len(tasks)}&limit={limit}",
                      "rel": "next", "type": JSON, "title": "the next tasks"})
    return json_response({"jobID": job_id, "hpgc:tasks": row["tasks"],
                          "tasks": [task_document(base, job_id, t) for t in tasks], "links": links})


@routes.get(f"/jobs/{{job_id}}/tasks/{INDEX}/results")
async def task_results(request: web.Request) -> web.Response:
    job_id, index = request.match_info["job_id"], int(request.match_info["index"])
    jobs = request.app[JOBS]
    row, items = await jobs.task_results(principal(request), job_id, index)
    req = Execute.model_validate(row.get("request") or {})
    url = f"{base_url(request)}/jobs/{job_id}/tasks/{index}/results"
    doc: dict[str, Any] = {}
    for oid, item in items.items():
        if req.outputs and oid not in req.outputs:
            continue
        if hasattr(item, "value"):
            doc[oid] = item.value
        else:
            doc[oid] = {"href": item.public_url or f"{url}/{oid}", "type": item.media_type,
                        "rel": "http://www.opengis.net/def/rel/iana/1.0/enclosure"}
    return json_response(doc)


@routes.get(f"/jobs/{{job_id}}/tasks/{INDEX}/results/{{output_id}}")
async def task_output(request: web.Request) -> web.StreamResponse:
    job_id, index, oid = (request.match_info["job_id"], int(request.match_info["index"]),
                          request.match_info["output_id"])
    result = await request.app[JOBS].task_output(principal(request), job_id, index, oid)
    return await send_output(request, result, oid)


@routes.get(f"/jobs/{{job_id}}/tasks/{INDEX}/logs")
async def task_logs(request: web.Request) -> web.Response:
    tail = int_param(request, "tail", 65536, 1, 10**9)
    logs = await request.app[JOBS].task_logs(principal(request), request.match_info["job_id"],
                                             int(request.match_info["index"]), tail)
    return json_response(logs)


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def openapi_paths(app: web.Application, doc: dict[str, Any]) -> None:
    job = {"name": "jobId", "in": "path", "required": True, "schema": {"type": "string"}}
    index = {"name": "index", "in": "path", "required": True, "description": "the task's index (0-based)",
             "schema": {"type": "integer", "minimum": 0, "maximum": 999999999}}
    obj = {"application/json": {"schema": {"type": "object"}}}
    doc["paths"]["/jobs/{jobId}/tasks"] = {"get": {
        "summary": "A sweep's tasks (hpgc:sweep), each with its state, exit code, backend id and links; or a CWL "
                   "workflow's step jobs under Toil: name, status, slurmJobId, slurmState, node, stdout, stderr",
        "operationId": "getJobTasks", "tags": ["Jobs"],
        "parameters": [job, {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                                        "maximum": 10**9}},
                       {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": PAGE}}],
        "responses": {"200": {"description": "the tasks, in task order", "content": obj},
                      "404": _problem("no such job, or the job is not a sweep and has no step jobs")}}}
    doc["paths"]["/jobs/{jobId}/tasks/{index}/results"] = {"get": {
        "summary": "One task's results (a results document)", "operationId": "getJobTaskResults",
        "tags": ["Jobs"], "parameters": [job, index],
        "responses": {"200": {"description": "the task's results document", "content": obj},
                      "404": _problem("no such job or task, or its results are not ready"),
                      "500": _problem("the task failed")}}}
    doc["paths"]["/jobs/{jobId}/tasks/{index}/results/{outputId}"] = {"get": {
        "summary": "One output of one task: a value as JSON, or the file", "operationId": "getJobTaskResult",
        "tags": ["Jobs"], "parameters": [job, index, {"name": "outputId", "in": "path", "required": True,
                                                      "schema": {"type": "string"}}],
        "responses": {"200": {"description": "the value or the file",
                              "content": {"application/json": {"schema": {}}, "*/*": {"schema": {}}}},
                      "206": {"description": "one byte range of the file", "content": {"*/*": {"schema": {}}}},
                      "404": _problem("no such job, task or output, or not ready"),
                      "416": _problem("the Range asks for no single byte range of the file"),
                      "500": _problem("the task failed")}}}
    doc["paths"]["/jobs/{jobId}/tasks/{index}/logs"] = {"get": {
        "summary": "One task's stdout and stderr", "operationId": "getJobTaskLogs", "tags": ["Jobs"],
        "parameters": [job, index, {"name": "tail", "in": "query",
                                    "schema": {"type": "integer", "minimum": 1, "maximum": 10**9}}],
        "responses": {"200": {"description": "stdout and stderr", "content": obj},
                      "404": _problem("no such job or task")}}}
