"""The OpenAPI 3.0 document: paths written out here, schemas generated from the pydantic models."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic.json_schema import models_json_schema

import hpgc
from hpgc.models.ogc import (
    ConfClasses,
    Execute,
    JobList,
    LandingPage,
    Problem,
    ProcessDescription,
    ProcessList,
    StatusInfo,
)

# extra paths and components other parts of the API add (auth, DRU) — app key → callable(app) → dict
OPENAPI_EXTENSIONS: web.AppKey[list[Any]] = web.AppKey("openapi_extensions")


def to_oas30(node: Any) -> Any:
    """JSON Schema 2020-12 as pydantic writes it → the OpenAPI 3.0 dialect."""
    if isinstance(node, list):
        return [to_oas30(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: to_oas30(v) for k, v in node.items() if k not in ("$defs",)}
    for key in ("anyOf", "oneOf"):
        if key in node:
            members = node[key]
            rest = [m for m in members if m.get("type") != "null"]
            if len(rest) < len(members):
                node["nullable"] = True
                if len(rest) == 1:
                    del node[key]
                    only = rest[0]
                    if "$ref" in only:
                        node["allOf"] = [only]
                    else:
                        node.update(only)
                else:
                    node[key] = rest
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        if bound in node and not isinstance(node[bound], bool):
            node["minimum" if bound == "exclusiveMinimum" else "maximum"] = node[bound]
            node[bound] = True
    if isinstance(node.get("type"), list):
        types = [t for t in node["type"] if t != "null"]
        if len(types) < len(node["type"]):
            node["nullable"] = True
        node["type"] = types[0] if len(types) == 1 else "string"
    return node


def _schemas() -> dict[str, Any]:
    models = [LandingPage, ConfClasses, ProcessList, ProcessDescription, Execute, StatusInfo, JobList, Problem]
    _, top = models_json_schema(
        [(m, "serialization" if m is not Execute else "validation") for m in models],
        ref_template="#/components/schemas/{model}",
    )
    return {name: to_oas30(schema) for name, schema in top.get("$defs", {}).items()}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def too_many(limit: str) -> dict[str, Any]:
    """A 429 over a per-user limit: the problem names the limit, Retry-After says when to try again."""
    return {**_problem(f"over a per-user limit: {limit}"), "headers": {"Retry-After": {
        "description": "seconds to wait before trying again", "schema": {"type": "integer"}}}}


def _param(name: str, where: str, schema: dict[str, Any], description: str, required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description}


PROCESS_ID = _param("processId", "path", {"type": "string"}, "process identifier")
JOB_ID = _param("jobId", "path", {"type": "string"}, "job identifier")
F = _param("f", "query", {"type": "string", "enum": ["json", "html"]}, "response format")


def _callbacks() -> dict[str, Any]:
    """What hpgc posts to the execute request's `subscriber` URLs (docs/callbacks.md)."""
    def one(uri: str, event: str, body: dict[str, Any], description: str) -> dict[str, Any]:
        return {f"{{$request.body#/subscriber/{uri}}}": {"post": {
            "summary": description, "parameters": [
                _param("X-Hpgc-Event", "header", {"type": "string", "enum": [event]}, "the event"),
                _param("X-Hpgc-Delivery", "header", {"type": "string"}, "the same on every retry: de-duplicate"),
                _param("X-Hpgc-Signature", "header", {"type": "string"},
                       "sha256=<hex HMAC-SHA256 of the body> when callbacks.secret is set")],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": {"description": "any 2xx: delivered; 410: stop; anything else: retried"}}}}}

    status = {"$ref": "#/components/schemas/StatusInfo"}
    return {
        "jobSucceeded": one("successUri", "success", {"type": "object"}, "the results document"),
        "jobInProgress": one("inProgressUri", "in-progress", status, "the job's status, on changes"),
        "jobFailed": one("failedUri", "failed", status, "the job's status with `exception` (failed or dismissed)"),
    }


def _paths() -> dict[str, Any]:
    public: list[dict[str, Any]] = []
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "/": {"get": {"summary": "Landing page", "operationId": "getLandingPage", "tags": ["Capabilities"],
                      "parameters": [F], "security": public,
                      "responses": {"200": _json("LandingPage", "links to the API's resources")}}},
        "/conformance": {"get": {
            "summary": "Conformance classes", "operationId": "getConformance", "tags": ["Capabilities"],
            "parameters": [F], "security": public,
            "responses": {"200": _json("ConfClasses", "the conformance classes implemented")}}},
        "/api": {"get": {"summary": "This document", "operationId": "getAPI", "tags": ["Capabilities"],
                         "security": public,
                         "responses": {"200": {"description": "OpenAPI 3.0 document", "content": {
                             "application/vnd.oai.openapi+json;version=3.0": {"schema": {"type": "object"}}}}}}},
        "/api.html": {"get": {"summary": "Swagger UI", "operationId": "getAPIDocs", "tags": ["Capabilities"],
                              "security": public,
                              "responses": {"200": {"description": "API documentation", "content": html}}}},
        "/processes": {"get": {
            "summary": "List processes", "operationId": "getProcesses", "tags": ["Processes"],
            "parameters": [F, _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 10000},
                                     "page size"),
                           _param("offset", "query", {"type": "integer", "minimum": 0}, "start index")],
            "responses": {"200": _json("ProcessList", "process summaries"),
                          "400": _problem("bad parameter")}}},
        "/processes/{processId}": {"get": {
            "summary": "Describe a process", "operationId": "getProcessDescription", "tags": ["Processes"],
            "parameters": [PROCESS_ID, F],
            "responses": {"200": _json("ProcessDescription", "the process description"),
                          "404": _problem("no such process")}}},
        "/processes/{processId}/execution": {"post": {
            "summary": "Execute a process", "operationId": "execute", "tags": ["Processes"],
            "parameters": [PROCESS_ID, _param("Prefer", "header", {"type": "string"},
                                              "respond-async and/or wait=N (RFC 7240)"),
                           _param("cluster", "query", {"type": "string"},
                                  "run on this configured Slurm cluster instead of the process's or the default")],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Execute"}}}},
            "responses": {
                "200": {"description": "results (synchronous execution)",
                        "content": {"application/json": {"schema": {"type": "object"}}, "*/*": {}}},
                "201": _json("StatusInfo", "job created (asynchronous execution)"),
                "204": {"description": "results by reference, in Link headers"},
                "400": _problem("invalid execute request"), "404": _problem("no such process"),
                "413": _problem("body too large"), "415": _problem("not JSON"),
                "429": too_many("active jobs per user (limits.active_jobs_per_user)")},
            "callbacks": _callbacks()}},
        "/jobs": {"get": {
            "summary": "List jobs", "operationId": "getJobs", "tags": ["Jobs"],
            "parameters": [
                F, _param("type", "query", {"type": "array", "items": {"type": "string"}}, "job types"),
                _param("processID", "query", {"type": "array", "items": {"type": "string"}}, "processes"),
                _param("status", "query", {"type": "array", "items": {"type": "string", "enum": [
                    "accepted", "running", "successful", "failed", "dismissed"]}}, "statuses"),
                _param("datetime", "query", {"type": "string"}, "creation instant or interval (a/b, ..)"),
                _param("minDuration", "query", {"type": "number", "minimum": 0}, "seconds"),
                _param("maxDuration", "query", {"type": "number", "minimum": 0}, "seconds"),
                _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10},
                       "page size"),
                _param("next", "query", {"type": "string"}, "cursor from a next link"),
                _param("prev", "query", {"type": "string"}, "cursor from a prev link")],
            "responses": {"200": _json("JobList", "jobs, newest first"), "400": _problem("bad parameter")}}},
        "/jobs/{jobId}": {
            "get": {"summary": "Job status", "operationId": "getStatus", "tags": ["Jobs"],
                    "parameters": [JOB_ID, F],
                    "responses": {"200": _json("StatusInfo", "the job's status"), "404": _problem("no such job")}},
            "delete": {"summary": "Dismiss a job", "operationId": "dismiss", "tags": ["Jobs"],
                       "parameters": [JOB_ID],
                       "responses": {"200": _json("StatusInfo", "the job, dismissed"),
                                     "404": _problem("no such job")}}},
        "/jobs/{jobId}/results": {"get": {
            "summary": "Job results", "operationId": "getResult", "tags": ["Jobs"], "parameters": [JOB_ID],
            "responses": {"200": {"description": "results document", "content": {
                "application/json": {"schema": {"type": "object"}}}},
                "404": _problem("no such job, or result not ready"), "500": _problem("the job failed")}}},
        "/jobs/{jobId}/results/{outputId}": {"get": {
            "summary": "One output, streamed (supports Range)", "operationId": "getOutput", "tags": ["Jobs"],
            "parameters": [JOB_ID, _param("outputId", "path", {"type": "string"}, "output identifier")],
            "responses": {"200": {"description": "the output's bytes", "content": {"*/*": {}}},
                          "206": {"description": "part of the output", "content": {"*/*": {}}},
                          "404": _problem("no such output")}}},
        "/jobs/{jobId}/logs": {"get": {
            "summary": "stdout, stderr and event log of a job", "operationId": "getLogs", "tags": ["Jobs"],
            "parameters": [JOB_ID, _param("tail", "query", {"type": "integer", "minimum": 1}, "characters"),
                           _param("full", "query", {"type": "boolean"}, "whole logs")],
            "responses": {"200": {"description": "logs", "content": {"application/json": {
                "schema": {"type": "object"}}}}, "404": _problem("no such job")}}},
        "/jobs/{jobId}/callbacks": {"get": {
            "summary": "The job's subscriber notifications and their delivery attempts",
            "operationId": "getCallbacks", "tags": ["Jobs"], "parameters": [JOB_ID],
            "responses": {"200": {"description": "notifications, oldest first: event, URL, delivery id, state "
                                                 "(pending, delivered, given-up), attempts, last status, next try",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          "404": _problem("no such job")}}},
        "/jobs/{jobId}/script": {"get": {
            "summary": "The script submitted for the job", "operationId": "getScript", "tags": ["Jobs"],
            "parameters": [JOB_ID],
            "responses": {"200": {"description": "script", "content": {"text/plain": {
                "schema": {"type": "string"}}}}, "404": _problem("no such job or no script")}}},
    }


def openapi_document(app: web.Application, server_url: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "hpgc — OGC API - Processes", "version": hpgc.__version__,
                 "description": "Run container and CWL application packages on a Slurm supercomputer.",
                 "license": {"name": "Apache-2.0"}},
        "servers": [{"url": server_url}],
        "paths": _paths(),
        "components": {"schemas": _schemas(), "securitySchemes": {}},
        "tags": [{"name": "Capabilities"}, {"name": "Processes"}, {"name": "Jobs"}],
    }
    for extend in app.get(OPENAPI_EXTENSIONS, []):
        extend(app, doc)
    _negotiated_and_checked(doc)
    return doc


def _negotiated_and_checked(doc: dict[str, Any]) -> None:
    """What every operation answers besides its own documents: HTML where `f` (or Accept) asks for it, and a
    400 problem for a query parameter it cannot take (an unknown `f`, a number out of range...)."""
    for item in doc["paths"].values():
        for method, op in item.items():
            if method not in ("get", "post", "put", "delete", "patch"):
                continue
            query = [p for p in op.get("parameters", []) if p.get("in") == "query"]
            if any(p["name"] == "f" for p in query):
                op["responses"]["200"].setdefault("content", {}).setdefault("text/html", {"schema": {"type": "string"}})
            if query:
                op["responses"].setdefault("400", _problem("a query parameter is not valid"))
