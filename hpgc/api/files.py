"""Uploaded files: POST /files streams a file to where jobs run (the local data dir, or the cluster's work root
over SFTP) and answers its `href`, usable as any file input of an execute; GET lists the caller's files and one
file's metadata, DELETE removes it. Everything else is in hpgc/jobs/uploads.py (docs/data.md)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from hpgc.api.keys import JOBS
from hpgc.api.principal import principal
from hpgc.api.render import base_url, json_response
from hpgc.errors import InvalidParameterValue

routes = web.RouteTableDef()
CHUNK = 256 * 1024
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}$")
_CLUSTER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _name(raw: str | None) -> str | None:
    """A label for the file (the client's file name): shown back, never a path anywhere."""
    if raw is None:
        return None
    if len(raw) > 255 or not raw.isprintable():
        raise InvalidParameterValue("parameter 'name': at most 255 printable characters")
    return raw


def file_document(request: web.Request, row: dict[str, Any]) -> dict[str, Any]:
    href = f"{base_url(request)}/files/{row['id']}"
    return {"id": row["id"], "href": href, "name": row.get("name"), "mediaType": row.get("media_type"),
            "size": row["size"], "sha256": row.get("sha256"), "cluster": row.get("cluster"),
            "created": _iso(row["created"]), "expires": _iso(row["expires"]),
            "links": [{"href": href, "rel": "self", "type": "application/json"}]}


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK):
        yield chunk


@routes.post("/files")
async def upload(request: web.Request) -> web.Response:
    media_type = request.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
    if not _MEDIA_TYPE.match(media_type):
        raise InvalidParameterValue("Content-Type must be a media type such as image/tiff")
    cluster = request.query.get("cluster")
    if cluster is not None and not _CLUSTER.match(cluster):
        raise InvalidParameterValue("parameter 'cluster' is not a cluster name")
    row = await request.app[JOBS].upload(principal(request), _body(request), request.content_length,
                                         _name(request.query.get("name")), media_type, cluster)
    doc = file_document(request, row)
    return json_response(doc, status=201, headers={"Location": doc["href"]})


@routes.get("/files")
async def list_files(request: web.Request) -> web.Response:
    rows = await request.app[JOBS].uploads(principal(request))
    return json_response({"files": [file_document(request, r) for r in rows],
                          "links": [{"href": f"{base_url(request)}/files", "rel": "self",
                                     "type": "application/json"}]})


@routes.get("/files/{file_id}")
async def file_info(request: web.Request) -> web.Response:
    row = await request.app[JOBS].upload_info(principal(request), request.match_info["file_id"])
    return json_response(file_document(request, row))


@routes.delete("/files/{file_id}")
async def delete_file(request: web.Request) -> web.Response:
    await request.app[JOBS].delete_upload(principal(request), request.match_info["file_id"])
    return web.Response(status=204)


def openapi_paths(app: web.Application, doc: dict[str, Any]) -> None:
    def problem(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/Problem"}}}}

    file_doc = {"type": "object", "required": ["id", "href", "size"], "properties": {
        "id": {"type": "string"}, "href": {"type": "string", "description": "give it as an input's href"},
        "name": {"type": "string", "nullable": True}, "mediaType": {"type": "string", "nullable": True},
        "size": {"type": "integer"}, "sha256": {"type": "string", "nullable": True},
        "cluster": {"type": "string", "nullable": True}, "created": {"type": "string", "format": "date-time"},
        "expires": {"type": "string", "format": "date-time"}, "links": {"type": "array", "items": {"type": "object"}}}}
    one = {"application/json": {"schema": file_doc}}
    file_id = {"name": "fileId", "in": "path", "required": True, "schema": {"type": "string"}}
    doc["paths"]["/files"] = {
        "post": {"summary": "Upload a file (streamed) to use as a job's input by its href", "operationId": "upload",
                 "tags": ["Files"],
                 "parameters": [{"name": "name", "in": "query", "schema": {"type": "string", "maxLength": 255},
                                 "description": "a label (e.g. the file name); never used as a path"},
                                {"name": "cluster", "in": "query", "schema": {"type": "string"},
                                 "description": "the cluster whose jobs will read it (default: the default one)"}],
                 "requestBody": {"required": True, "content": {"*/*": {"schema": {"type": "string",
                                                                                 "format": "binary"}}}},
                 "responses": {"201": {"description": "stored; Location is its href", "content": one},
                               "400": problem("a parameter or header is not valid, or the body was cut short"),
                               "403": problem("the token may not execute, or uploads are off"),
                               "413": problem("larger than uploads.max_bytes, or over uploads.quota_bytes"),
                               "503": problem("the cluster could not take the file")}},
        "get": {"summary": "Your uploaded files", "operationId": "listFiles", "tags": ["Files"], "parameters": [],
                "responses": {"200": {"description": "files", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"files": {"type": "array", "items": file_doc}}}}}}}}}
    doc["paths"]["/files/{fileId}"] = {
        "get": {"summary": "An uploaded file's metadata", "operationId": "getFile", "tags": ["Files"],
                "parameters": [file_id], "responses": {"200": {"description": "the file", "content": one},
                                                       "404": problem("no such file of yours")}},
        "delete": {"summary": "Delete an uploaded file", "operationId": "deleteFile", "tags": ["Files"],
                   "parameters": [file_id],
                   "responses": {"204": {"description": "deleted"}, "404": problem("no such file of yours"),
                                 "409": problem("a job that has not ended uses it")}}}
    doc.setdefault("tags", []).append({"name": "Files"})
