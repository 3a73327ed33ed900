"""Health for load balancers and orchestrators: /health/live (the process answers) and /health/ready (the
database, each cluster, the callback outbox). Public, so their bodies say only a status per check name: no
host, address or error (the server's log says why a check failed)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hpgc.api.keys import JOBS, SETTINGS
from hpgc.api.render import json_response

routes = web.RouteTableDef()
PUBLIC = ("/health/live", "/health/ready")


@routes.get("/health/live", allow_head=False)
async def live(request: web.Request) -> web.Response:
    return json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


@routes.get("/health/ready", allow_head=False)
async def ready(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS].health
    checks = await request.app[JOBS].readiness(settings.timeout_s, settings.outbox_stuck_s)
    ok = all(checks.values())
    body = {"status": "ok" if ok else "unavailable",
            "checks": {name: "ok" if passed else "failed" for name, passed in sorted(checks.items())}}
    return json_response(body, status=200 if ok else 503, headers={"Cache-Control": "no-store"})


def openapi_paths(app: web.Application, doc: dict[str, Any]) -> None:
    checks = {"type": "object", "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "checks": {"type": "object", "additionalProperties": {"type": "string", "enum": ["ok", "failed"]}}}}
    answer = {"application/json": {"schema": checks}}
    doc["paths"]["/health/live"] = {"get": {
        "summary": "Liveness: the process answers", "operationId": "getLiveness", "tags": ["Operations"],
        "security": [], "parameters": [],
        "responses": {"200": {"description": "alive", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]}}}}}}}}}
    doc["paths"]["/health/ready"] = {"get": {
        "summary": "Readiness: the database, each cluster's SSH and the callback outbox, each within "
                   "health.timeout_s", "operationId": "getReadiness", "tags": ["Operations"], "security": [],
        "parameters": [],
        "responses": {"200": {"description": "every check passed", "content": answer},
                      "503": {"description": "a check failed (named, without details)", "content": answer}}}}
    doc.setdefault("tags", []).append({"name": "Operations"})
