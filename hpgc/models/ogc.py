"""OGC API - Processes - Part 1: Core 1.0 documents, as pydantic v2 models.

Field names follow the standard (camelCase) so that `model_dump(exclude_none=True)` is the wire form.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hpgc.models.resources import ResourceRequest
from hpgc.models.sweep import SweepRequest

OGC_EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"
CONF_PART1 = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf"
REL_OGC = "http://www.opengis.net/def/rel/ogc/1.0"


class Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class Link(Model):
    href: str
    rel: str | None = None
    type: str | None = None
    hreflang: str | None = None
    title: str | None = None


class LandingPage(Model):
    title: str | None = None
    description: str | None = None
    links: list[Link]


class ConfClasses(Model):
    conformsTo: list[str]


class JobControlOption(StrEnum):
    sync = "sync-execute"
    async_ = "async-execute"
    dismiss = "dismiss"


class TransmissionMode(StrEnum):
    value = "value"
    reference = "reference"


class AdditionalParameters(Model):
    """The 1.0 form: an object with a `parameters` list; package authors often send the bare list."""

    title: str | None = None
    role: str | None = None
    href: str | None = None
    parameters: list[dict[str, Any]] = Field(default_factory=list)


class InputDescription(Model):
    title: str | None = None
    description: str | None = None
    keywords: list[str] | None = None
    metadata: list[dict[str, Any]] | None = None
    additionalParameters: AdditionalParameters | None = None
    minOccurs: int = 1
    maxOccurs: int | Literal["unbounded"] | None = None
    schema_: dict[str, Any] = Field(alias="schema")


class OutputDescription(Model):
    title: str | None = None
    description: str | None = None
    keywords: list[str] | None = None
    metadata: list[dict[str, Any]] | None = None
    additionalParameters: AdditionalParameters | None = None
    schema_: dict[str, Any] = Field(alias="schema")


class ProcessSummary(Model):
    id: str
    version: str = "1.0.0"
    title: str | None = None
    description: str | None = None
    keywords: list[str] | None = None
    metadata: list[dict[str, Any]] | None = None
    additionalParameters: AdditionalParameters | None = None
    jobControlOptions: list[JobControlOption] = Field(
        default_factory=lambda: [JobControlOption.async_, JobControlOption.sync, JobControlOption.dismiss]
    )
    outputTransmission: list[TransmissionMode] = Field(
        default_factory=lambda: [TransmissionMode.value, TransmissionMode.reference]
    )
    links: list[Link] = Field(default_factory=list)


class ProcessDescription(ProcessSummary):
    inputs: dict[str, InputDescription] = Field(default_factory=dict)
    outputs: dict[str, OutputDescription] = Field(default_factory=dict)

    def summary(self) -> ProcessSummary:
        return ProcessSummary.model_validate(self.model_dump(exclude={"inputs", "outputs"}, by_alias=True))


class ProcessList(Model):
    processes: list[ProcessSummary]
    links: list[Link]


class Subscriber(Model):
    """Callback URLs (Part 1 `callback` class); where hpgc may post is checked again by the notifier."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    successUri: str | None = Field(default=None, max_length=2048)
    inProgressUri: str | None = Field(default=None, max_length=2048)
    failedUri: str | None = Field(default=None, max_length=2048)

    @field_validator("successUri", "inProgressUri", "failedUri")
    @classmethod
    def _http_only(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an absolute http or https URL")
        return value


class OutputRequest(Model):
    format: dict[str, Any] | None = None
    transmissionMode: TransmissionMode = TransmissionMode.value


class ResponseType(StrEnum):
    raw = "raw"
    document = "document"


class OutputDelivery(Model):
    """hpgc's extension of an execute request: deliver the file outputs to an object store prefix."""

    model_config = ConfigDict(extra="forbid")

    destination: str = Field(max_length=1100, description="s3://bucket/prefix/: each file output goes to "
                             "PREFIX<output id><its extension>.")


class Execute(Model):
    """An execute request. Inputs stay loosely typed here: they are checked against the process schemas."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, OutputRequest] | None = None
    response: ResponseType = ResponseType.raw
    subscriber: Subscriber | None = None
    mode: str | None = None  # 1.0 drafts sent it; accepted and ignored in favour of Prefer
    delivery: OutputDelivery | None = Field(
        default=None, alias="hpgc:outputs",
        description="hpgc's extension: where the job's file outputs go after it succeeded, e.g. "
        "{\"destination\": \"s3://bucket/prefix/\"} (docs/data.md).")
    resources: ResourceRequest | None = Field(
        default=None, alias="hpgc:resources",
        description="hpgc's extension: resources for this job (CPUs, memory, time, scratch, GPUs, partition), "
        "within what the process and the site allow; asking for more is a 400 naming the limit (docs/api.md).")
    sweep: SweepRequest | None = Field(
        default=None, alias="hpgc:sweep",
        description="hpgc's extension: run the process once per value (or combination of values) of some inputs, "
        "as one job of many tasks (a Slurm job array); docs/api.md.")


class StatusCode(StrEnum):
    accepted = "accepted"
    running = "running"
    successful = "successful"
    failed = "failed"
    dismissed = "dismissed"

    @property
    def terminal(self) -> bool:
        return self in (StatusCode.successful, StatusCode.failed, StatusCode.dismissed)


class StatusInfo(Model):
    processID: str | None = None
    type: str = "process"
    jobID: str
    status: StatusCode
    message: str | None = None
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    updated: datetime | None = None
    progress: int | None = Field(default=None, ge=0, le=100)
    links: list[Link] = Field(default_factory=list)


class JobList(Model):
    jobs: list[StatusInfo]
    links: list[Link]


class Problem(Model):
    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
