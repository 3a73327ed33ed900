"""Per-user limits: how much of the server one user may hold at once.

They protect everyone from one user (or one runaway script with their token): past a limit the request is
refused with 429, a `Retry-After` header and a problem body naming the limit and its setting. Every user
counts, administrators included (a limit guards the server; raise it in the configuration if a site needs
more). Counts are store queries on indexes, made in the database worker thread in the same transaction as
the insert they guard, so concurrent requests cannot overshoot a limit.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class LimitSettings(BaseModel):
    active_jobs_per_user: int = Field(
        default=100, ge=0,
        description="Jobs one user may have accepted or running at once (synchronous executes included); one "
        "more execute → 429 until one ends. 0: no limit.")
    processes_per_user: int = Field(
        default=50, ge=0,
        description="Processes one user may have deployed (Part 2); one more deploy → 429 (replace and undeploy "
        "stay allowed). 0: no limit.")
    retry_after_s: int = Field(
        default=30, ge=1, description="Seconds sent in the Retry-After header of a 429 over a per-user limit.")
    sweep_max_tasks: int = Field(
        default=10000, ge=1,
        description="Tasks one sweep (`hpgc:sweep` in an execute) may make; a larger sweep is a 400 saying so. A "
        "sweep counts as one job toward active_jobs_per_user.")
