"""Settings of what the operations team runs against: /metrics, the health checks and retention
(`[metrics]`, `[health]`, `[retention]`; docs/operations.md)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class MetricsSettings(BaseModel):
    enabled: bool = Field(default=True, description="Serve Prometheus metrics at /metrics.")
    listen: str | None = Field(
        default=None,
        description="host:port of a second listener that serves only /metrics, without authentication (e.g. "
        "127.0.0.1:9464, for a Prometheus on the same host or network; the reverse proxy never forwards it). "
        "None: no second listener. Either way /metrics on the main address needs an administrator's token "
        "(auth.admin_scopes) when authentication is on.",
        pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$",
    )


class HealthSettings(BaseModel):
    timeout_s: float = Field(
        default=5.0, gt=0,
        description="Time limit of each check of /health/ready (the database, each cluster's SSH); a check "
        "past it is failed.")
    outbox_stuck_s: float = Field(
        default=300.0, gt=0,
        description="/health/ready fails when a callback's next delivery attempt is overdue by longer than this "
        "(the dispatcher is not getting through the outbox).")


class RetentionSettings(BaseModel):
    job_days: float = Field(
        default=0, ge=0,
        description="Days after it ended (successful or failed) that a job's files are deleted (on the cluster "
        "or locally, through its backend) and its row becomes a tombstone: status dismissed, an event saying why, "
        "still listed. 0: jobs are kept forever (until their users dismiss them).")
    interval_s: float = Field(default=3600.0, gt=0, description="Seconds between two retention sweeps.")
    batch: int = Field(
        default=100, ge=1,
        description="Jobs deleted at once in a sweep (their removals run together over the pooled connections); "
        "a sweep goes on batch after batch until nothing has expired.")
