"""A job list query (GET /jobs's filters and keyset page) and one page of its answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class JobQuery:
    owner: str | None = None
    process_ids: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    created_min: float | None = None
    created_max: float | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    limit: int = 10
    after: tuple[float, str] | None = None  # next page: older than this (created, id)
    before: tuple[float, str] | None = None  # previous page: newer than this


@dataclass
class JobPage:
    rows: list[dict[str, Any]]  # the columns a statusInfo document shows (hpgc/store/jobs.py's LIST_COLUMNS)
    has_older: bool
    has_newer: bool
