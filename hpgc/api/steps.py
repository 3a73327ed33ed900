"""GET /jobs/{id}/tasks for a CWL workflow whose steps run as Slurm jobs of their own (Toil): each step's name,
OGC status, Slurm job id and state, node and log paths. The listing has the shape of a sweep's task list
(`tasks`, each with `index` and `status`), so one client reads both."""

from __future__ import annotations

from aiohttp import web

from hpgc.api.keys import JOBS
from hpgc.api.principal import principal

routes = web.RouteTableDef()
_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


@routes.get("/jobs/{job_id}/tasks")
async def job_tasks(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    steps = await request.app[JOBS].steps(principal(request), job_id)
    if steps is None:
        raise web.HTTPNotFound(text="this job's steps do not run as batch jobs of their own (yet)")
    return web.json_response({"jobID": job_id, "tasks": steps, "links": [
        {"href": f"{request.url.path.rsplit('/', 1)[0]}", "rel": "up", "type": "application/json",
         "title": "the job's status"}]})


def openapi_paths(app: web.Application, doc: dict) -> None:
    doc["paths"]["/jobs/{jobId}/tasks"] = {"get": {
        "summary": "The Slurm jobs of a workflow's steps (CWL under Toil)", "operationId": "getJobTasks",
        "tags": ["Jobs"], "parameters": [{"name": "jobId", "in": "path", "required": True,
                                          "schema": {"type": "string"}}],
        "responses": {"200": {"description": "tasks: index, name (the step), status, slurmJobId, slurmState, "
                                             "node, stdout and stderr (paths in the job directory)",
                              "content": {"application/json": {"schema": {"type": "object"}}}},
                      "404": {"description": "no such job, or its steps do not run as Slurm jobs of their own",
                              "content": _PROBLEM}}}}
