"""The server's log: readable lines (the default) or one JSON object per line (`log_format = "json"`), each
carrying what it is about — the request id, job, process, user, cluster and Slurm id — from context variables
that the request middleware and the job service set (`bind`), so no call site has to pass them along.

Nothing here logs a request's headers; tokens are never passed to a logger (tests/e2e/test_logs_e2e.py greps a
whole run's log for the bearer token)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

FIELDS = ("request_id", "job_id", "process_id", "user", "cluster", "slurm_id")
_context: ContextVar[dict[str, str]] = ContextVar("hpgc_log_context", default={})  # noqa: B039 (never mutated)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"


def bind(**fields: str | None) -> contextlib.AbstractContextManager[None]:
    """Within the block (and tasks started in it), every record carries these fields; None values are left out."""
    return _bound({k: v for k, v in fields.items() if v is not None})


@contextlib.contextmanager
def _bound(fields: dict[str, str]) -> Iterator[None]:
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def set_fields(**fields: str | None) -> None:
    """Add fields to the current context until it ends (a task's or a request's): for code that cannot
    wrap a block, e.g. a background task naming its job."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def current() -> dict[str, str]:
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record (`record.context` for the text format)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _context.get()
        for key in FIELDS:
            setattr(record, key, fields.get(key))
        shown = " ".join(f"{k}={fields[k]}" for k in FIELDS if k in fields)
        record.context = f" [{shown}]" if shown else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        out.update({k: v for k in FIELDS if (v := getattr(record, k, None)) is not None})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(level: str, fmt: str) -> None:
    """Set up the root logger once, for `hpgc serve`: text or json lines on stderr."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
