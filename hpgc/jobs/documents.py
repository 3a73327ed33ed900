"""The JSON documents of jobs (statusInfo) and results, built from stored rows and a base URL.

The API answers with them and the notifier posts them to subscribers, so they live here, below both,
and know nothing of HTTP requests.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from hpgc.jobs.results import Output, OutputValue
from hpgc.models.ogc import Execute, StatusCode, TransmissionMode

JSON = "application/json"
HTML = "text/html"
INLINE_LIMIT = 8 * 1024 * 1024  # a file asked for by value larger than this is given by reference


def iso(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)



@lru_cache(maxsize=8192)  # a job's created/started/finished never change, and are rendered at every poll
def _time(ts: float | None) -> str | None:
    """A timestamp as pydantic writes a UTC datetime (…Z, microseconds only when there are some)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()[:-6] + "Z"


def link(href: str, rel: str, media_type: str, title: str) -> dict[str, str]:
    """A link as the Link model writes it, without the model."""
    return {"href": href, "rel": rel, "type": media_type, "title": title}


STATUSES = {s.value: s for s in StatusCode}  # a stored status by its name, without the enum's slow lookup
TERMINAL = frozenset(s.value for s in StatusCode if s.terminal)


def status_document(row: dict[str, Any], base: str) -> dict[str, Any]:
    """A job's statusInfo with links under `base` (callbacks build it without a request).

    Built as the plain dict that StatusInfo(...).wire() gives, without the models: it is what every client's
    poll renders, and the models were a third of its cost (docs/performance.md); tests/unit/test_documents.py
    holds it equal to the model's form."""
    job_url = f"{base}/jobs/{row['id']}"
    status = STATUSES[row["status"]].value
    links = [
        link(job_url, "self", JSON, "this job's status"),
        link(f"{job_url}?f=html", "alternate", HTML, "this job's status as HTML"),
        link(f"{job_url}/logs", "logs", JSON, "stdout, stderr and the event log"),
    ]
    if status == "successful":
        links.append(link(f"{job_url}/results", "http://www.opengis.net/def/rel/ogc/1.0/results", JSON, "results"))
    elif status == "failed":
        links.append(link(f"{job_url}/results", "http://www.opengis.net/def/rel/ogc/1.0/exceptions",
                          "application/problem+json", "why the job failed"))
    links.append(link(f"{base}/processes/{row['process_id']}", "up", JSON, "the process"))
    doc: dict[str, Any] = {"processID": row["process_id"], "type": "process", "jobID": row["id"], "status": status}
    if (message := row.get("message")) is not None:
        doc["message"] = message
    doc["created"] = _time(row["created"])
    for name in ("started", "finished", "updated"):
        if (ts := row.get(name)) is not None:
            doc[name] = _time(ts)
    if (progress := row.get("progress")) is not None:
        doc["progress"] = progress
    doc["links"] = links
    # hpgc's extensions: what the job asked for (to size the next run) and, once it ended, what it used
    if row.get("resources"):
        doc["hpgc:resources"] = row["resources"]
    if row.get("usage") and status in TERMINAL:
        doc["hpgc:usage"] = row["usage"]
    if row.get("tasks") is not None:  # a sweep: its tasks by state, and where each is
        doc["hpgc:tasks"] = row["tasks"]
        links.append(link(f"{job_url}/tasks", "hpgc:tasks", JSON,
                          "the sweep's tasks, each with its state and results"))
    return doc


def _is_text(media_type: str) -> bool:
    return media_type.startswith("text/") or media_type.endswith(("json", "xml"))


async def build_results_document(
    job_id: str, outputs: dict[str, Output], req: Execute, base: str, read: Callable[[str], Awaitable[bytes]]
) -> dict[str, Any]:
    """The results document with links under `base`; `read(output id)` gives a file's bytes when it is
    asked for by value, at most INLINE_LIMIT + 1 of them (more: the file goes by reference). Callbacks build it
    without a request."""
    wanted = req.outputs or {}
    selected = {oid: outputs[oid] for oid in (wanted or outputs) if oid in outputs}
    doc: dict[str, Any] = {}
    for oid, item in selected.items():
        mode = wanted[oid].transmissionMode if oid in wanted else None
        if isinstance(item, OutputValue):
            if mode == TransmissionMode.reference:
                doc[oid] = {"href": f"{base}/jobs/{job_id}/results/{oid}", "type": "application/json"}
            else:
                doc[oid] = item.value
            continue
        # `size` comes from outputs.json, which the job wrote: it decides nothing alone, the bytes read do
        data = await read(oid) if mode == TransmissionMode.value and (item.size or 0) <= INLINE_LIMIT else None
        if data is not None and len(data) <= INLINE_LIMIT:
            if _is_text(item.media_type):
                doc[oid] = {"value": data.decode(errors="replace"), "mediaType": item.media_type}
            else:
                doc[oid] = {"value": base64.b64encode(data).decode(), "mediaType": item.media_type,
                            "encoding": "base64"}
        elif item.delivered:  # copied where the request said (hpgc:outputs): that object, and its checksum
            doc[oid] = {"href": item.delivered["href"], "type": item.media_type,
                        "rel": "http://www.opengis.net/def/rel/iana/1.0/enclosure",
                        "hpgc:size": item.delivered.get("size"), "hpgc:sha256": item.delivered.get("sha256")}
        else:
            doc[oid] = {"href": item.public_url or f"{base}/jobs/{job_id}/results/{oid}", "type": item.media_type,
                        "rel": "http://www.opengis.net/def/rel/iana/1.0/enclosure"}
    return doc


