"""What the HTML forms of the API's own pages show beyond their JSON document: the job page's inputs, logs,
script and result previews; the process page's run form and owner's buttons. Only for HTML answers."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from aiohttp import web

from hpgc.api.keys import JOBS
from hpgc.api.links import sign_href
from hpgc.api.principal import principal
from hpgc.api.render import base_url
from hpgc.api.ui import quicklook
from hpgc.api.ui.forms import defaults_of, fields_of
from hpgc.backends.base import BackendError
from hpgc.errors import HpgcError
from hpgc.jobs.results import OutputValue, ResultFile
from hpgc.models.ogc import StatusCode
from hpgc.packages.registry import Process

LOG_TAIL = 20000
PREVIEW_BYTES = 256 * 1024
IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp")


async def _text(result: ResultFile) -> str | None:
    try:
        if await result.size() > PREVIEW_BYTES:
            return None
        return b"".join([c async for c in result.read(0, PREVIEW_BYTES)]).decode(errors="replace")
    except (BackendError, OSError):
        return None


async def _previews(request: web.Request, row: dict[str, Any]) -> list[dict[str, Any]]:
    jobs = request.app[JOBS]
    who = principal(request)
    try:
        _, outputs = await jobs.results(who, row["id"])
    except HpgcError:
        return []
    base = base_url(request)
    out = []
    for oid, item in outputs.items():
        href = sign_href(request, f"{base}/jobs/{row['id']}/results/{oid}", row["id"], oid)
        if isinstance(item, OutputValue):
            out.append({"id": oid, "kind": "value", "href": href, "text": json.dumps(item.value, indent=2),
                        "media_type": "application/json"})
            continue
        entry: dict[str, Any] = {"id": oid, "href": item.public_url or href, "media_type": item.media_type,
                                 "size": item.size, "kind": "file"}
        if item.media_type in IMAGES:
            entry["kind"] = "image"
        elif item.media_type.split(";")[0] in quicklook.TIFF and quicklook.AVAILABLE:
            entry.update(kind="image", src=f"{base}/ui/jobs/{row['id']}/quicklook/{oid}")
        elif item.media_type.endswith("json") or item.media_type.startswith("text/"):
            try:
                result = await jobs.output(who, row["id"], oid)
            except HpgcError:
                result = None
            text = await _text(result) if isinstance(result, ResultFile) else None
            if text is not None:
                if item.media_type.endswith("json"):
                    with contextlib.suppress(ValueError):
                        text = json.dumps(json.loads(text), indent=2)
                entry.update(kind="text", text=text)
        out.append(entry)
    return out


def run_context(process: Process, values: dict[str, str] | None = None) -> dict[str, Any]:
    """What the run form needs: its fields and the values to show (defaults unless given)."""
    fields = fields_of(process.description.wire().get("inputs") or {})
    return {"fields": fields, "values": values if values is not None else defaults_of(fields),
            "process_id": process.id, "sync_ok": "sync-execute" in process.description.jobControlOptions,
            "async_ok": "async-execute" in process.description.jobControlOptions}


async def job_page(request: web.Request, row: dict[str, Any]) -> dict[str, Any]:
    jobs = request.app[JOBS]
    who = principal(request)
    context: dict[str, Any] = {"inputs": json.dumps((row.get("request") or {}).get("inputs") or {}, indent=2),
                               "terminal": StatusCode(row["status"]).terminal}
    try:
        context["logs"] = await jobs.logs(who, row["id"], LOG_TAIL)
    except HpgcError:
        context["logs"] = {"stdout": "", "stderr": "", "events": []}
    try:
        context["script"] = await jobs.script(who, row["id"])
    except (HpgcError, BackendError, OSError):
        context["script"] = None
    context["previews"] = await _previews(request, row) if row["status"] == StatusCode.successful.value else []
    return context


def process_page(request: web.Request, process: Process) -> dict[str, Any]:
    who = principal(request)
    return {**run_context(process), "errors": {},
            "can_manage": not process.builtin and (who.is_admin or process.owner == who.subject)}
