"""GET /jobs/{id}/inputs: the execute request a job was started with (its owner only), as OGC API -
Processes' job management drafts have it; `hpgc rerun` starts the process again from it."""

from __future__ import annotations

from aiohttp import web

from hpgc.api.keys import JOBS
from hpgc.api.principal import principal
from hpgc.api.render import json_response

routes = web.RouteTableDef()


@routes.get("/jobs/{job_id}/inputs")
async def job_inputs(request: web.Request) -> web.Response:
    row = await request.app[JOBS].get(principal(request), request.match_info["job_id"])
    sent = row.get("request") or {}
    # the subscriber's URLs stay out: a rerun should not call them again without being asked
    body = {k: sent[k] for k in ("inputs", "outputs", "response") if k in sent}
    if sent.get("sweep"):  # stored under its field name: given back as it was sent, so a rerun sweeps again
        body["hpgc:sweep"] = sent["sweep"]
    return json_response({"inputs": {}, **body})


def openapi_paths(app: web.Application, doc: dict) -> None:
    doc["paths"]["/jobs/{jobId}/inputs"] = {"get": {
        "summary": "The inputs (execute request) a job was started with", "operationId": "getJobInputs",
        "tags": ["Jobs"], "parameters": [{"name": "jobId", "in": "path", "required": True,
                                          "schema": {"type": "string"}}],
        "responses": {"200": {"description": "inputs, outputs and response of the execute request",
                              "content": {"application/json": {"schema": {"type": "object"}}}},
                      "404": {"description": "no such job",
                              "content": {"application/problem+json": {
                                  "schema": {"$ref": "#/components/schemas/Problem"}}}}}}}
