"""Plain text tables and values for people (scripts use --json)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hpgc.models.ogc import StatusInfo


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str = "(none)") -> str:
    if not rows:
        return empty
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def when(status: StatusInfo) -> str:
    return status.created.astimezone().strftime("%Y-%m-%d %H:%M:%S") if status.created else ""


def jobs_table(jobs: Sequence[StatusInfo]) -> str:
    rows = [(j.jobID, j.processID or "", j.status.value, "" if j.progress is None else f"{j.progress}%", when(j),
             " ".join((j.message or "").split())[:60]) for j in jobs]
    return table(["JOB", "PROCESS", "STATUS", "PROGRESS", "CREATED", "MESSAGE"], rows, "(no jobs)")


def value_text(value: Any) -> str:
    """A result value on one line: links as their href, strings as they are, the rest as JSON."""
    if isinstance(value, dict) and "href" in value:
        return str(value["href"])
    if isinstance(value, dict) and "value" in value and not isinstance(value["value"], dict | list):
        return str(value["value"])
    if isinstance(value, str):
        return value.rstrip("\n")
    return json.dumps(value)


def results_text(doc: dict[str, Any]) -> str:
    return "\n".join(f"{name}: {value_text(value)}" for name, value in doc.items()) or "(no outputs)"
