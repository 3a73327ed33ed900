"""Signed result links on the HTTP side: the signer's key, the hrefs of results documents, and the check the
auth middleware makes before it asks for a bearer token (docs/ui.md)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from hpgc.api.keys import JOBS, SETTINGS
from hpgc.api.problems import problem
from hpgc.auth.links import LinkRefused, LinkSigner, load_secret
from hpgc.auth.principal import Principal
from hpgc.errors import HpgcError
from hpgc.models.ogc import StatusCode

log = logging.getLogger(__name__)
SIGNER: web.AppKey[LinkSigner] = web.AppKey("link_signer", LinkSigner)
OUTPUT_ROUTE = "/jobs/{job_id}/results/{output_id}"
PARAMS = ("exp", "sig")


def setup_links(app: web.Application) -> None:
    settings = app[SETTINGS]

    async def load(app: web.Application) -> None:
        configured = settings.web.link_secret
        secret = configured.get_secret_value().encode() if configured is not None else \
            await asyncio.to_thread(load_secret, settings.data_dir)
        app[SIGNER] = LinkSigner(secret, settings.web.link_expiry_s)

    if settings.auth.enabled:  # without auth every link works already: nothing to sign
        app.on_startup.append(load)


def sign_href(request: web.Request, href: str, job_id: str, output_id: str) -> str:
    signer = request.app.get(SIGNER)
    if signer is None:
        return href
    return f"{href}{'&' if '?' in href else '?'}{urlencode(signer.sign(job_id, output_id))}"


def sign_results(request: web.Request, job_id: str, doc: dict[str, Any], base: str) -> dict[str, Any]:
    """The results document with its links to this server's outputs signed (a backend's own public URLs stay)."""
    for oid, item in doc.items():
        if isinstance(item, dict) and item.get("href") == f"{base}/jobs/{job_id}/results/{oid}":
            item["href"] = sign_href(request, item["href"], job_id, oid)
    return doc


def is_signed_request(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    return (resource is not None and resource.canonical == OUTPUT_ROUTE and "sig" in request.query
            and request.method in ("GET", "HEAD"))


async def link_principal(request: web.Request) -> Principal | web.Response:
    """Who a signed link acts as: a reader of this one output and nothing else (the route is the output's),
    or the 403 that refuses it."""
    job_id, oid = request.match_info["job_id"], request.match_info["output_id"]
    exp, sig = (request.query.getone(name, "") for name in PARAMS)
    if len(request.query.getall("sig", [])) != 1 or len(request.query.getall("exp", [])) != 1:
        return _refused("send one exp and one sig parameter")
    try:
        request.app[SIGNER].verify(job_id, oid, exp, sig)
    except LinkRefused as exc:
        return _refused(str(exc))
    reader = Principal(subject="signed-link", is_admin=True, can_execute=False, can_deploy=False)
    try:
        row = await request.app[JOBS].get(reader, job_id)
    except HpgcError:
        return _refused("the job of this link is gone")
    if row["status"] == StatusCode.dismissed.value:
        return _refused("the job was dismissed: its links no longer work")
    return reader.model_copy(update={"subject": f"link:{row.get('owner') or '?'}"})


def _refused(detail: str) -> web.Response:
    return problem(403, "Forbidden", f"this result link does not open the output: {detail}")


def openapi_links(app: web.Application, doc: dict[str, Any]) -> None:
    """The output operation also opens with a signature instead of a token."""
    op = doc["paths"].get("/jobs/{jobId}/results/{outputId}", {}).get("get")
    if op is None:
        return
    for name, text in (("exp", "signed link: its expiry (seconds since 1970)"),
                       ("sig", "signed link: HMAC of job, output and exp; opens this output without a token")):
        op["parameters"].append({"name": name, "in": "query", "required": False, "schema": {"type": "string"},
                                 "description": text})
    op["responses"]["403"] = {"description": "a signed link that is expired, altered or revoked (job dismissed), "
                                             "or a token that lacks a permission",
                              "content": {"application/problem+json": {
                                  "schema": {"$ref": "#/components/schemas/Problem"}}}}
    op["responses"].setdefault("416", {"description": "Range not satisfiable", "content": {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
