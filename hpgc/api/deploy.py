"""Part 2: deploy, replace and undeploy application packages."""

from __future__ import annotations

import json

from aiohttp import web

from hpgc.api.keys import DEPLOY_WORKERS, JOBS, OUTBOUND
from hpgc.api.openapi import too_many
from hpgc.api.principal import principal
from hpgc.api.processes import process_links
from hpgc.api.render import base_url, json_response
from hpgc.auth.principal import require_deploy
from hpgc.errors import HpgcError, InvalidPackage
from hpgc.net import GuardedClient, OutboundError
from hpgc.packages.deploy import MAX_CWL_FETCH, Deployable, from_request
from hpgc.packages.registry import process_row

routes = web.RouteTableDef()
CONF_PART2 = "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf"
CONFORMANCE_PART2 = [f"{CONF_PART2}/{c}" for c in ("deploy-replace-undeploy", "ogcapppkg", "cwl")]


async def fetch_cwl(client: GuardedClient, url: str) -> str:
    """executionUnit.href, fetched once at deploy time through the guarded client; the 400 never quotes it."""
    try:
        data = await client.fetch(url, MAX_CWL_FETCH, "executionUnit.href")
    except OutboundError as exc:
        raise InvalidPackage(exc.detail) from None
    return data.decode(errors="replace")


async def _read(request: web.Request) -> Deployable:
    body = await request.read()
    client = request.app[OUTBOUND]
    fetched: list[str] = []

    async def fetch(url: str) -> str:
        text = await fetch_cwl(client, url)
        fetched.append(url)
        return text

    try:
        return await from_request(body, request.content_type, request.query.get("w"), fetch,
                                  request.app[DEPLOY_WORKERS].run)
    except HpgcError as exc:
        if not fetched or exc.status != 400:
            raise
        # cwltool's messages quote the document: one the server fetched is not shown to the user
        raise InvalidPackage(f"executionUnit.href: {fetched[0]} did not give a valid CWL process (its content "
                             "is not quoted; deploy the document inline to see what is wrong)") from None


def _row(d: Deployable) -> dict:
    return process_row(d.description, d.package, d.media_type, d.source, d.source_type, "deployed", None)


@routes.post("/processes")
async def deploy(request: web.Request) -> web.Response:
    who = principal(request)
    require_deploy(who)
    request.app[JOBS].check_deploy(who)  # before reading the body: a refused deployer costs nothing
    deployable = await _read(request)
    process = await request.app[JOBS].deploy(who, _row(deployable))
    summary = process.description.summary().model_copy(update={"links": process_links(request, process)})
    body = summary.wire()
    if process.status != "ready":
        body["hpgc:status"] = process.status
    return json_response(body, status=201, headers={"Location": f"{base_url(request)}/processes/{process.id}"})


@routes.put("/processes/{process_id}")
async def replace(request: web.Request) -> web.Response:
    who = principal(request)
    require_deploy(who)
    process_id = request.match_info["process_id"]
    jobs = request.app[JOBS]
    await jobs.check_replace(who, process_id)  # 404/403 before reading the body
    deployable = await _read(request)
    if deployable.description.id != process_id:
        deployable.description = deployable.description.model_copy(update={"id": process_id})
    await jobs.replace(who, process_id, _row(deployable))
    return web.Response(status=204)


@routes.delete("/processes/{process_id}")
async def undeploy(request: web.Request) -> web.Response:
    who = principal(request)
    require_deploy(who)
    await request.app[JOBS].undeploy(who, request.match_info["process_id"])
    return web.Response(status=204)


@routes.get("/processes/{process_id}/package")
async def package(request: web.Request) -> web.Response:
    process = await request.app[JOBS].process_for(principal(request), request.match_info["process_id"])
    if process.source_type.endswith("json"):
        try:
            return json_response(json.loads(process.source), content_type=process.source_type)
        except ValueError:
            pass
    return web.Response(text=process.source, content_type=process.source_type)


def openapi_paths(app: web.Application, doc: dict) -> None:
    """Add the Part 2 operations to the OpenAPI document."""
    problem = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    pid = {"name": "processId", "in": "path", "required": True, "schema": {"type": "string"}}
    package_body = {"required": True, "content": {
        "application/ogcapppkg+json": {"schema": {"type": "object", "required": ["executionUnit"]}},
        **{t: {"schema": {"type": "string"}} for t in ("application/cwl", "application/cwl+yaml")},
        "application/cwl+json": {"schema": {"type": "object"}}}}
    w = {"name": "w", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "names the process, or picks a workflow out of a CWL $graph"}
    errors = {"400": {"description": "invalid package", **problem}, "403": {"description": "not allowed", **problem},
              "415": {"description": "unsupported media type", **problem}}
    paths = doc["paths"]
    paths["/processes"]["post"] = {
        "summary": "Deploy a process", "operationId": "deploy", "tags": ["DRU"], "parameters": [w],
        "requestBody": package_body,
        "responses": {"201": {"description": "deployed; Location names the process", "content": {
            "application/json": {"schema": {"type": "object"}}}},
            "409": {"description": "duplicated process", **problem},
            "429": too_many("deployed processes per user (limits.processes_per_user)"), **errors}}
    paths["/processes/{processId}"]["put"] = {
        "summary": "Replace a process", "operationId": "replace", "tags": ["DRU"], "parameters": [pid, w],
        "requestBody": package_body,
        "responses": {"204": {"description": "replaced"}, "404": {"description": "no such process", **problem},
                      **errors}}
    paths["/processes/{processId}"]["delete"] = {
        "summary": "Undeploy a process", "operationId": "undeploy", "tags": ["DRU"], "parameters": [pid],
        "responses": {"204": {"description": "undeployed"}, "404": {"description": "no such process", **problem},
                      "403": errors["403"]}}
    paths["/processes/{processId}/package"] = {"get": {
        "summary": "The application package as deployed", "operationId": "getPackage", "tags": ["DRU"],
        "parameters": [pid],
        "responses": {"200": {"description": "the package", "content": {"*/*": {}}},
                      "404": {"description": "no such process", **problem}}}}
    doc["tags"].append({"name": "DRU"})
