"""Domain errors. Services raise these; the API maps each to an HTTP status and an RFC 7807 body."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from hpgc.models.ogc import OGC_EXC


class HpgcError(Exception):
    status: ClassVar[int] = 400
    type: ClassVar[str] = "about:blank"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NoSuchProcess(HpgcError):
    status, type, title = 404, f"{OGC_EXC}/no-such-process", "No such process"


class NoSuchJob(HpgcError):
    status, type, title = 404, f"{OGC_EXC}/no-such-job", "No such job"


class ResultNotReady(HpgcError):
    status, type, title = 404, f"{OGC_EXC}/result-not-ready", "Result not ready"


class NoSuchOutput(HpgcError):
    status, type, title = 404, f"{OGC_EXC}/no-such-output", "No such output"


class InvalidParameterValue(HpgcError):
    status, type, title = 400, f"{OGC_EXC}/invalid-parameter-value", "Invalid parameter value"


class InvalidRequest(HpgcError):
    status, type, title = 400, f"{OGC_EXC}/invalid-request", "Invalid request"


class NotAllowed(HpgcError):
    status, type, title = 403, f"{OGC_EXC}/forbidden", "Forbidden"


class JobNotDismissable(HpgcError):
    status, type, title = 409, f"{OGC_EXC}/job-not-dismissable", "Job cannot be dismissed"


class JobFailed(HpgcError):
    """GET results of a failed job: the job's own exception is returned."""

    status, type, title = 500, f"{OGC_EXC}/job-failed", "Job failed"

    def __init__(self, detail: str, error: dict | None = None) -> None:
        super().__init__(detail)
        self.error = error or {}


class BackendUnavailable(HpgcError):
    status, type, title = 503, f"{OGC_EXC}/backend-unavailable", "Backend unavailable"


OGC_EXC_PART2 = "http://www.opengis.net/def/exceptions/ogcapi-processes-2/1.0"


class DuplicatedProcess(HpgcError):
    status, type, title = 409, f"{OGC_EXC_PART2}/duplicated-process", "Duplicated process"


class UnsupportedMediaType(HpgcError):
    status, type, title = 415, f"{OGC_EXC_PART2}/unsupported-media-type", "Unsupported media type"


class ImmutableProcess(HpgcError):
    status, type, title = 403, f"{OGC_EXC_PART2}/immutable-process", "Immutable process"


class WorkflowNotFound(HpgcError):
    status, type, title = 400, f"{OGC_EXC_PART2}/workflow-not-found", "Workflow not found"


class InvalidPackage(HpgcError):
    status, type, title = 400, f"{OGC_EXC_PART2}/invalid-package", "Invalid application package"


class ProcessNotReady(HpgcError):
    status, type, title = 409, f"{OGC_EXC}/process-not-ready", "Process not ready"


class LimitReached(HpgcError):
    """A per-user limit (hpgc/jobs/limits.py) is reached: 429, with when to try again and which setting it is."""

    status, type, title = 429, "about:blank", "Too Many Requests"

    def __init__(self, detail: str, limit: str, value: int, retry_after_s: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after_s)}
        self.extra = {"limit": limit, "setting": f"limits.{limit}", "value": value}


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], raw: Any, error: type[HpgcError], what: str, prefix: str = "") -> M:
    """A user's JSON object as `model`, or `error` (a 4xx) naming WHAT and the first problem's place."""
    if not isinstance(raw, dict):
        raise error(f"{what} must be a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        where, msg = first_error(exc)
        raise error(f"invalid {what} at '{prefix}{where or 'body'}': {msg}") from None


def first_error(exc: ValidationError) -> tuple[str, str]:
    """(dotted location, message) of a pydantic validation error's first problem, for a 400's detail."""
    err = exc.errors()[0]
    return ".".join(str(p) for p in err["loc"]), err["msg"]
