"""The rows of each table as the store hands them out (JSON columns decoded), so that what a row holds is
written down once. A row is a plain dict at run time: the types are for readers and type checkers."""

from __future__ import annotations

from typing import Any, TypedDict


class ProcessRow(TypedDict, total=False):
    id: str
    kind: str  # builtin | deployed
    owner: str | None
    media_type: str  # application/cwl+json (packed CWL) or application/ogcapppkg+json
    package: dict[str, Any]  # {"run": what runs, "source": the document as deployed, "source_type": its type}
    description: dict[str, Any]  # the OGC process description (1.0 form)
    backend: str | None
    status: str  # ready | deploying | failed: ...
    created: float
    updated: float


class JobRow(TypedDict, total=False):
    id: str
    process_id: str
    owner: str  # the Principal's subject (issuer prefix + sub)
    unix_user: str | None
    status: str  # accepted | running | successful | failed | dismissed
    message: str | None
    progress: int | None
    backend: str
    external_id: str | None  # the backend's id; only the backend reads it
    cluster: str | None
    created: float
    started: float | None
    finished: float | None
    updated: float
    request: dict[str, Any]  # the execute request as validated
    results: dict[str, Any] | None  # outputs.json, CWL output-object form
    error: dict[str, Any] | None
    subscriber: dict[str, str] | None
    exit_code: int | None
    base_url: str | None
    resources: dict[str, Any] | None  # what the job asked its backend for, in hpgc:resources' form
    usage: dict[str, Any] | None  # what it used, once it ended (Slurm: sacct's Elapsed, TotalCPU, MaxRSS)


class EventRow(TypedDict):
    id: int
    job_id: str
    ts: float
    status: str
    progress: int | None
    message: str | None
    details: dict[str, Any] | None


class OutboxRow(TypedDict, total=False):
    id: int
    job_id: str
    event: str  # success | failed | in-progress
    url: str
    host: str
    payload: str  # the exact bytes to send, as text
    delivery_id: str
    attempts: int
    created: float
    next_attempt: float | None
    last_status: int | None
    last_error: str | None
    delivered: float | None
    given_up: float | None
    history: list[dict[str, Any]]  # job_outbox only: the attempts
